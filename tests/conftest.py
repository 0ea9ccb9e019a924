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

import atexit
import os
import shutil
import tempfile

import pytest


def _path_without_bwrap() -> str:
    """A folder of links to every program on PATH except bwrap (first one of each name wins)."""
    shadow = tempfile.mkdtemp(prefix="ws-test-path-")
    atexit.register(shutil.rmtree, shadow, True)
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = os.path.join(shadow, name)
            if name != "bwrap" and not os.path.lexists(target):
                os.symlink(os.path.join(folder, name), target)
    return shadow


if os.environ.get("WORLDSMITH_TEST_HIDE_BWRAP") == "1":
    os.environ["PATH"] = _path_without_bwrap()

from worldsmith import sandbox  # noqa: E402
from worldsmith.sandbox import runner  # noqa: E402

runner.bwrap_available.cache_clear()
TEST_SUITE_OPTS_IN_TO_UNISOLATED_RUNS = not sandbox.bwrap_available()
if TEST_SUITE_OPTS_IN_TO_UNISOLATED_RUNS:
    sandbox.allow_unisolated()
    os.environ[sandbox.UNSAFE_ENV] = "1"

#: Skip marker for tests of the bwrap mode itself.
needs_bwrap = pytest.mark.skipif(not sandbox.bwrap_available(),
                                 reason="bubblewrap cannot run here (missing, hidden, or no user namespaces)")


@pytest.fixture
def no_isolation(monkeypatch):
    """This process as on a machine where bwrap cannot run, without the suite's opt-in."""
    monkeypatch.setattr(runner, "bwrap_available", lambda: False)
    monkeypatch.setattr(runner, "_UNISOLATED_ALLOWED", False)
    monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)
    monkeypatch.setenv("PATH", _path_without_bwrap())
    yield
