"""Shared test setup: this folder is importable, so tests can use ``local_server``."""
