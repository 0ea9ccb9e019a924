"""The batch ops of the sandbox: ``score_many`` (many answers scored in one run) and ``many``
(several ops in one run), in every isolation mode available here.

One item's exception is that item's error marker; a hang, ``sys.exit`` or memory exhaustion in any
item still ends the whole run as it would for ``score``.
"""

import pytest

from worldsmith.sandbox import Limits, available_modes, run

pytestmark = pytest.mark.filterwarnings("ignore:sandbox fallback mode")

SMALL = Limits(wall_s=2.0, cpu_s=2, memory_mb=256, file_mb=4, tmpfs_mb=16,
               output_bytes=4096, max_output_bytes=1 << 20, result_bytes=1 << 20)

PICKY = """
from worldsmith import Environment

class Picky(Environment):
    name = "picky"
    description = "echo n"

    def generate(self, rng, difficulty):
        return {"n": rng.randint(0, 9)}

    def solve(self, instance):
        return str(instance["n"])

    def render(self, instance):
        return f"Echo {instance['n']}."

    def score(self, instance, answer):
        if answer == "boom":
            raise KeyError("no such answer")
        if answer == "nan":
            return float("nan")
        if answer == "set":
            return {1}
        if answer == "true":
            return True
        if answer == "hang":
            while True:
                pass
        if answer == "exit":
            import sys
            sys.exit(3)
        if answer == "memory":
            return "x" * (1 << 30)
        return 1.0 if answer == str(instance["n"]) else 0
"""


@pytest.fixture(params=available_modes())
def mode(request):
    return request.param


def test_score_many_returns_one_entry_per_item(mode):
    items = [[{"n": 4}, "4"], [{"n": 4}, "5"], [{"n": 4}, "boom"], [{"n": 4}, "nan"],
             [{"n": 4}, "set"], [{"n": 4}, "true"], [{"n": 2}, "2"]]
    res = run(PICKY, {"op": "score_many", "items": items}, SMALL, mode=mode)
    assert res.status == "ok", res
    value = res.value
    assert len(value) == len(items)
    assert value[0] == {"value": 1.0} and type(value[0]["value"]) is float
    assert value[1] == {"value": 0} and type(value[1]["value"]) is int
    assert value[2] == {"error": "KeyError", "message": "'no such answer'"}
    assert value[3]["unsendable"] == "ValueError" and "JSON compliant" in value[3]["message"]
    assert value[4]["unsendable"] == "TypeError" and "JSON serializable" in value[4]["message"]
    assert value[5] == {"value": True}
    assert value[6] == {"value": 1.0}


@pytest.mark.parametrize("answer, status", [("hang", "timeout"), ("exit", "no_result"),
                                            ("memory", "memory_exceeded")])
def test_one_bad_item_still_ends_the_run(mode, answer, status):
    items = [[{"n": 1}, "1"], [{"n": 1}, answer], [{"n": 1}, "1"]]
    res = run(PICKY, {"op": "score_many", "items": items}, SMALL, mode=mode)
    assert res.status == status, res
    assert res.value is None


def test_many_performs_ops_in_order_in_one_run(mode):
    tasks = [{"op": "describe"}, {"op": "sample", "seeds": [1, 2], "difficulty": 0.5},
             {"op": "score_many", "items": [[{"n": 3}, "3"]]}]
    res = run(PICKY, {"op": "many", "tasks": tasks}, SMALL, mode=mode)
    assert res.status == "ok", res
    info, samples, scores = res.value
    assert info["name"] == "picky"
    assert [s["seed"] for s in samples] == [1, 2] and all(s["difficulty"] == 0.5 for s in samples)
    assert scores == [{"value": 1.0}]
    nested = run(PICKY, {"op": "many", "tasks": [{"op": "many", "tasks": []}]}, SMALL, mode=mode)
    assert nested.status == "error" and "unknown op" in nested.reason
