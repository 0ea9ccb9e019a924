"""Shared test setup: this folder is importable, so tests can use ``local_server``.

Untrusted programs run in bubblewrap; where it cannot run, the library refuses them unless the user
opts in to unisolated runs. The suite must pass on both kinds of machine, so:

- ``WORLDSMITH_TEST_HIDE_BWRAP=1`` runs the suite as on a machine without bubblewrap: ``PATH``
  (this process's and every subprocess's) is replaced by a copy without ``bwrap``. Read here only,
  by the test suite, never by the library.
- Where bubblewrap cannot run (really, or hidden), the suite opts in to unisolated runs, the way
  a user would (``sandbox.allow_unisolated()`` in this process, ``WORLDSMITH_UNSAFE_NO_ISOLATION=1``
  for the commands it starts): ``TEST_SUITE_OPTS_IN_TO_UNISOLATED_RUNS`` says whether it did.
  Tests of the refusal itself take the ``no_isolation`` fixture, which hides bwrap and takes the
  opt-in back.
"""

import pytest
from isolation import path_without_bwrap, runner, sandbox


@pytest.fixture
def no_isolation(monkeypatch):
    """This process as on a machine where bwrap cannot run, without the suite's opt-in."""
    monkeypatch.setattr(runner, "bwrap_available", lambda: False)
    monkeypatch.setattr(runner, "_UNISOLATED_ALLOWED", False)
    monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)
    monkeypatch.setenv("PATH", path_without_bwrap())
    yield
