"""Benchmarks that compare with a peer need that peer installed: say so in one line, not a traceback.

    from extras import require
    require("trl", "datasets")   # exits 2 with one line naming the missing module and the fix

The peers are the ``bench`` extra of the package (``make bench`` installs it).
"""

from __future__ import annotations

import importlib.util
import sys

INSTALL_HINT = "make bench (or: .venv/bin/python -m pip install -e '.[bench]')"


def missing(*modules: str) -> list[str]:
    """The top-level modules among ``modules`` that cannot be imported here."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def require(*modules: str, script: str | None = None) -> None:
    """Exit with status 2 and one line on stderr when any of ``modules`` is not installed."""
    absent = missing(*modules)
    if absent:
        name = script or sys.argv[0].rsplit("/", 1)[-1]
        print(f"{name}: needs {', '.join(absent)} (the bench extra); install it with {INSTALL_HINT}",
              file=sys.stderr)
        raise SystemExit(2)
