"""No unisolated run by default: ``mode="auto"`` is bubblewrap or a refusal, the opt-in is explicit.

Also the isolated ``score_many`` (one launch, one forked process per answer) and the read-only
extra ``paths`` a run can import from.
"""

import os
import sys
import time
import warnings

import pytest
from isolation import needs_bwrap

from worldsmith import sandbox
from worldsmith.sandbox import FALLBACK_WARNING, NO_ISOLATION, Limits, SandboxUnavailable, resolve_mode, run

EVAL_SCORER = """
from worldsmith import Environment

class Evaluating(Environment):
    name = "evaluating"

    def score(self, instance, answer):
        try:
            value = eval(answer)
        except Exception:
            return 0.01
        return 1.0 if value == instance["n"] else 0.05
"""

ISOLATE = {"wall_s": 1.5, "cpu_s": 1, "guard": True}


def test_auto_refuses_where_no_isolation_works(no_isolation):
    with pytest.raises(SandboxUnavailable) as info:
        resolve_mode("auto")
    message = str(info.value)
    assert message == NO_ISOLATION and "\n" not in message
    assert "--unsafe-no-isolation" in message and "apt-get install bubblewrap" in message
    with pytest.raises(SandboxUnavailable):
        run("x = 1")  # the library default: no silent fallback
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        resolve_mode("bwrap")


def test_explicit_fallback_still_runs_with_its_warning(no_isolation):
    with pytest.warns(RuntimeWarning, match=FALLBACK_WARNING):
        res = run("x = 1", mode="fallback")
    assert res.ok and res.isolation == "fallback" and res.details["warning"] == FALLBACK_WARNING


@pytest.mark.parametrize("how", ["allow_unisolated", "environment"])
def test_the_opt_in_makes_auto_fall_back_with_its_warning(no_isolation, monkeypatch, how):
    if how == "allow_unisolated":
        sandbox.allow_unisolated()
    else:
        monkeypatch.setenv(sandbox.UNSAFE_ENV, "1")
    assert sandbox.unisolated_allowed() and resolve_mode("auto") == "fallback"
    with pytest.warns(RuntimeWarning, match=FALLBACK_WARNING):
        res = run("x = 1")
    assert res.ok and res.isolation == "fallback"
    sandbox.allow_unisolated(False)
    monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)
    with pytest.raises(SandboxUnavailable):
        resolve_mode("auto")


def test_only_the_value_1_opts_in(no_isolation, monkeypatch):
    for value in ("0", "yes", "", "true"):
        monkeypatch.setenv(sandbox.UNSAFE_ENV, value)
        with pytest.raises(SandboxUnavailable):
            resolve_mode("auto")


@needs_bwrap
def test_auto_is_bwrap_where_it_works():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        res = run("x = 1")
    assert resolve_mode("auto") == "bwrap" and res.ok and res.isolation == "bwrap"


# --- isolated score_many ------------------------------------------------------------------------------


def _modes():
    return [pytest.param("bwrap", marks=needs_bwrap), "fallback"]


@pytest.mark.filterwarnings("ignore:sandbox fallback mode")
@pytest.mark.parametrize("mode", _modes())
def test_isolated_items_fail_alone(tmp_path, mode):
    """A hang, a side effect and a SystemExit cost only their own item, in one run."""
    target = tmp_path / "touched"
    items = [[{"n": 2}, "1+1"],
             [{"n": 2}, f"__import__('os').system('touch {target}')"],
             [{"n": 2}, f"open({str(target)!r}, 'w').write('x')"],
             [{"n": 2}, "9**9**9"],
             [{"n": 2}, "__import__('sys').exit(3)"],
             [{"n": 2}, "3"]]
    started = time.monotonic()
    res = run(EVAL_SCORER, {"op": "score_many", "items": items, "isolate": ISOLATE}, Limits(wall_s=30), mode)
    seconds = time.monotonic() - started
    assert res.ok, res.reason
    ok, system, write, hang, exit_, wrong = res.value
    assert ok == {"value": 1.0} and wrong == {"value": 0.05}
    assert system["error"] == "SideEffect" and "os.system" in system["message"]
    assert write["error"] == "SideEffect" and "open" in write["message"]
    assert hang["error"] == "Timeout"
    assert exit_ == {"error": "SystemExit", "message": "3"}
    assert not target.exists()
    assert seconds < 1.5 + 10  # the hang was cut at its own 1.5 s


@pytest.mark.filterwarnings("ignore:sandbox fallback mode")
@pytest.mark.parametrize("mode", _modes())
def test_one_answer_cannot_change_what_the_next_one_meets(mode):
    patch = "__import__('builtins').__dict__.__setitem__('eval', lambda s: 2)"
    items = [[{"n": 2}, patch], [{"n": 2}, "7"]]
    res = run(EVAL_SCORER, {"op": "score_many", "items": items, "isolate": {"wall_s": 5, "cpu_s": 5}},
              Limits(wall_s=30), mode)
    assert res.ok and res.value[1] == {"value": 0.05}, res.value
    shared = run(EVAL_SCORER, {"op": "score_many", "items": items}, Limits(wall_s=30), mode)
    assert shared.ok and shared.value[1] == {"value": 1.0}  # without isolation the patch carries over


@pytest.mark.filterwarnings("ignore:sandbox fallback mode")
@pytest.mark.parametrize("mode", _modes())
def test_prepare_scoring_runs_once_before_the_forks(mode):
    code = """
from worldsmith import Environment

class Counted(Environment):
    name = "counted"
    prepared = []

    def prepare_scoring(self, instances):
        self.prepared.append(len(instances))

    def score(self, instance, answer):
        return float(self.prepared == [3])
"""
    items = [[{}, "a"], [{}, "b"], [{}, "c"]]
    res = run(code, {"op": "score_many", "items": items, "isolate": {"wall_s": 5, "cpu_s": 5}}, Limits(wall_s=30), mode)
    assert res.ok and res.value == [{"value": 1.0}] * 3


@pytest.mark.filterwarnings("ignore:sandbox fallback mode")
@pytest.mark.parametrize("mode", _modes())
def test_extra_paths_are_importable_and_read_only(tmp_path, mode):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "helper_mod_xyz.py").write_text("VALUE = 41\n")
    code = f"""
import helper_mod_xyz
from worldsmith import Environment

class UsesHelper(Environment):
    name = "uses_helper"

    def score(self, instance, answer):
        try:
            open({str(lib / 'new.txt')!r}, 'w').write('x')
        except OSError:
            pass
        return helper_mod_xyz.VALUE / 100
"""
    res = run(code, {"op": "score", "instance": {}, "answer": "a"}, Limits(wall_s=30), mode, paths=[str(lib)])
    assert res.ok and res.value == 0.41, res.reason
    assert (lib / "new.txt").exists() == (mode == "fallback")  # bwrap binds it read-only
    assert not run(code, None, Limits(wall_s=30), mode).ok  # not importable without the path
    with pytest.raises(ValueError, match="not a folder"):
        run(code, None, Limits(wall_s=30), mode, paths=[str(tmp_path / "missing")])


def test_the_suite_opted_in_only_where_bwrap_cannot_run():
    import isolation

    assert isolation.TEST_SUITE_OPTS_IN_TO_UNISOLATED_RUNS == (not sandbox.bwrap_available())
    assert sandbox.unisolated_allowed() == isolation.TEST_SUITE_OPTS_IN_TO_UNISOLATED_RUNS
    assert os.environ.get(sandbox.UNSAFE_ENV) == ("1" if isolation.TEST_SUITE_OPTS_IN_TO_UNISOLATED_RUNS else None)
    assert sys.modules["worldsmith.sandbox.runner"].bwrap_available is sandbox.bwrap_available
