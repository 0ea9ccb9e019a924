"""Where the test suite runs untrusted programs: bubblewrap, or an explicit opt-in where it cannot run.

Imported first by ``conftest.py`` (so it takes effect before any test) and by tests that need its
names (``from isolation import needs_bwrap``). It is a module of its own because several folders of
the suite have a ``conftest.py`` and only one of them can be imported as ``conftest``.
"""


import atexit
import os
import shutil
import tempfile

import pytest


def path_without_bwrap() -> str:
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
    os.environ["PATH"] = path_without_bwrap()

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
