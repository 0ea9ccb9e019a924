"""pass@k, maj@k and summaries against brute force and hand-computed values."""

import itertools
import math
import subprocess
import sys

import pytest

from worldsmith.eval import EvalRecord, maj_at_k, pass_at_k, summarise


def brute_pass_at_k(n, c, k):
    """Fraction of the k-subsets of n samples (the first c correct) that contain a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_enumeration_over_subsets():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_values_and_stability():
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5, abs=1e-12)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3, abs=1e-12)
    assert pass_at_k(5, 0, 5) == 0.0 and pass_at_k(5, 1, 5) == 1.0
    # large n: binomials of this size overflow a float, the product form does not
    expected = 1 - math.comb(1990, 100) / math.comb(2000, 100)
    assert pass_at_k(2000, 10, 100) == pytest.approx(expected, abs=1e-9)
    for bad in ((3, 4, 1), (3, 1, 0), (3, 1, 4), (3, -1, 1)):
        with pytest.raises(ValueError):
            pass_at_k(*bad)


def test_maj_at_k_majority_and_ties():
    answers, correct = ["a", "b", "b", "a"], [True, False, False, True]
    assert maj_at_k(answers, correct, 4) == 1.0  # a:2, b:2, a occurs first
    assert maj_at_k(answers, correct, 3) == 0.0  # b:2 wins among the first three
    assert maj_at_k(answers, correct, 1) == 1.0
    assert maj_at_k(["b", "a", "a", "b"], [False, True, True, False], 4) == 0.0  # tie, b occurs first


def test_maj_at_k_none_does_not_vote():
    assert maj_at_k([None, None, None, "x"], [False, False, False, True], 4) == 1.0
    assert maj_at_k([None, "x", None, "y"], [False, False, False, True], 4) == 0.0  # x and y tie, x first
    assert maj_at_k([None, None], [False, False], 2) == 0.0
    assert maj_at_k(["x", None, "y"], [True, False, False], 1) == 1.0
    with pytest.raises(ValueError):
        maj_at_k(["x"], [True, False], 1)
    with pytest.raises(ValueError):
        maj_at_k(["x"], [True], 2)


RECORDS = [
    dict(env="e1", difficulty=0.0, seed=1, greedy_passed=True, passed=[True, False, False, False],
         answers=["1", "2", "2", None], text="extra keys are ignored"),
    dict(env="e1", difficulty=0.0, seed=2, greedy_passed=False, passed=[False] * 4, answers=[None] * 4),
    EvalRecord(env="e1", difficulty=0.5, seed=3, greedy_passed=True, passed=(True, True, False, True),
               answers=("5", "5", "6", "5")),
    dict(env="e2", difficulty=0.0, seed=4, passed=[True] * 4),
]


def test_summarise_overall_per_env_and_per_difficulty():
    s = summarise(RECORDS)
    assert s["k"] == 4
    assert s["overall"] == pytest.approx(
        {"problems": 4, "greedy_accuracy": 2 / 3, "pass@1": 0.5, "pass@k": 0.75, "maj@k": 1 / 3, "step_validity": None}, abs=1e-12)
    assert s["per_env"]["e1"] == pytest.approx(
        {"problems": 3, "greedy_accuracy": 2 / 3, "pass@1": 1 / 3, "pass@k": 2 / 3, "maj@k": 1 / 3, "step_validity": None}, abs=1e-12)
    assert s["per_env"]["e2"] == {"problems": 1, "greedy_accuracy": None, "pass@1": 1.0, "pass@k": 1.0, "maj@k": None, "step_validity": None}
    by_difficulty = s["per_env_difficulty"]["e1"]
    assert list(by_difficulty) == [0.0, 0.5]
    assert by_difficulty[0.0] == pytest.approx(
        {"problems": 2, "greedy_accuracy": 0.5, "pass@1": 0.125, "pass@k": 0.5, "maj@k": 0.0, "step_validity": None}, abs=1e-12)
    assert by_difficulty[0.5] == pytest.approx(
        {"problems": 1, "greedy_accuracy": 1.0, "pass@1": 0.75, "pass@k": 1.0, "maj@k": 1.0, "step_validity": None}, abs=1e-12)
    assert list(s["per_env_difficulty"]["e2"]) == [0.0]


def test_summarise_with_explicit_k():
    s = summarise(RECORDS, k=2)
    # pass@2 per problem: 1 - C(3,2)/C(4,2) = 0.5, 0, 1, 1; maj@2: tie "1" first -> 1, 0, "5" -> 1
    assert s["overall"]["pass@k"] == pytest.approx(0.625, abs=1e-12)
    assert s["overall"]["maj@k"] == pytest.approx(2 / 3, abs=1e-12)
    with pytest.raises(ValueError, match="fewest is 4"):
        summarise(RECORDS, k=5)


def test_summarise_greedy_only_and_record_checks():
    s = summarise([dict(env="e", difficulty=0.1, seed=0, greedy_passed=True)])
    assert s["k"] is None and s["overall"]["pass@1"] is None and s["overall"]["greedy_accuracy"] == 1.0
    with pytest.raises(ValueError):
        EvalRecord(env="e", difficulty=0.0, seed=0, passed=(True, False), answers=("x",))


def test_eval_does_not_import_torch():
    code = "import sys, worldsmith.eval; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_step_validity_checks_every_step_before_the_answer():
    from worldsmith import envs
    from worldsmith.envs.contract import split_seed
    from worldsmith.eval.metrics import step_validity

    env = envs.get("arithmetic_chain")
    inst = env.sample(split_seed("eval", 3), 0.3)
    steps = env.steps(inst.data)
    good = "\n".join(steps) + f"\n<answer>{inst.reference}</answer>"
    assert step_validity(env, inst, good) is True
    wrong = "\n".join([*steps[:-1], steps[-1] + "1"]) + f"\n<answer>{inst.reference}</answer>"
    assert step_validity(env, inst, wrong) is False
    assert step_validity(env, inst, f"<answer>{inst.reference}</answer>") is False  # no steps at all
    assert step_validity(envs.get("graph_coloring"), inst, good) is None or envs.get("graph_coloring").has_steps()


def test_summaries_report_step_validity_where_there_are_steps():
    rows = [EvalRecord("a", 0.0, 1, None, (True, False), steps_valid=(True, False)),
            EvalRecord("a", 0.0, 2, None, (True, True), steps_valid=(True, True)),
            EvalRecord("b", 0.0, 3, None, (False,))]
    out = summarise(rows)
    assert out["overall"]["step_validity"] == 0.75 and out["per_env"]["b"]["step_validity"] is None
