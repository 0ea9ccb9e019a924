"""Safety rows 14-19 of specs/safety.md, as tests over every registered environment.

Each hostile response must score exactly 0, never raise, never run anything, and finish within a
budget, also when grading runs in threads.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worldsmith import envs
from worldsmith.envs.answers import parse_int
from worldsmith.envs.contract import split_seed

NAMES = envs.names()
BUDGET_S = 20.0  # generous wall-clock bound for a whole battery; a hang or blow-up exceeds it


def instances(name, n=5, difficulty=0.5):
    env = envs.get(name)
    return env, [env.sample(split_seed("train", i), difficulty) for i in range(n)]


def assert_zero(env, inst, response, label):
    score = env.grade(inst, response)
    assert score.value == 0.0 and not score.passed, f"{env.name}: {label} scored {score.value}: {response[:80]!r}"
    assert score.reason


@pytest.mark.parametrize("name", NAMES)
def test_row14_answer_sprays_score_zero(name):
    env, insts = instances(name)
    for inst in insts:
        ref = inst.reference
        assert env.grade(inst, env.wrap(ref)).passed
        for label, response in {
            "two boxes": f"<answer>\\boxed{{{ref}}}\\boxed{{{ref}7}}</answer>",
            "bare two boxes": f"\\boxed{{{ref}}} or maybe \\boxed{{{ref}7}}\n\\boxed{{{ref}}}\\boxed{{{ref}7}}",
            "either-or": f"<answer>{ref} or {ref}1</answer>",
            "count to 100": "<answer>" + " ".join(map(str, range(1, 101))) + "</answer>",
            "comma count to 100": "<answer>" + ", ".join(map(str, range(1, 101))) + "</answer>",
            "repeated": f"<answer>{ref}{ref}</answer>",
            "repeated with space": f"<answer>{ref} {ref}</answer>",
        }.items():
            assert_zero(env, inst, response, label)


@pytest.mark.parametrize("name", NAMES)
def test_row15_empty_junk_and_format_only_score_zero(name):
    env, insts = instances(name)
    for inst in insts:
        ref = inst.reference
        for label, response in {
            "empty": "",
            "whitespace": " \n\t",
            "empty tag": "<answer></answer>",
            "space tag": "<answer> \n </answer>",
            "format only": "<answer>...</answer>",
            "placeholder": "<answer>the final answer</answer>",
            "buried": f"<answer>after much thought: {ref}. Done</answer>",
            "prefixed": f"<answer>Answer: {ref}</answer>",
            "not text": None,
        }.items():
            assert_zero(env, inst, response, label)


@pytest.mark.parametrize("name", NAMES)
def test_row16_tolerance_abuse_scores_zero(name):
    env, insts = instances(name)
    integer_refs = [i for i in insts if parse_int(i.reference) is not None]
    for inst in integer_refs:
        value = int(inst.reference)
        for label, answer in {
            "decimal tail": f"{value}.4",
            "just below": f"{value - 1}.9999",
            "float form": f"{value}.0",
            "nan": "nan",
            "inf": "inf",
            "overflow": "1e309",
            "hex": hex(value),
            "leading zero": f"0{value}" if value >= 0 else f"-0{-value}",
            "scientific": f"{value}e0",
            "thousands": f"{value:,}" if abs(value) >= 1000 else f"{value}.",
        }.items():
            assert_zero(env, inst, env.wrap(answer), label)


@pytest.mark.parametrize("name", NAMES)
def test_row17_answer_only_in_reasoning_scores_zero(name):
    env, insts = instances(name)
    for inst in insts:
        ref = inst.reference
        assert_zero(env, inst, f"Step by step... so the result is {ref}.", "no anchor")
        assert_zero(env, inst, f"{ref}\n{ref}", "bare answer")
        assert_zero(env, inst, f"<answer>{ref}", "unclosed tag")
        if not env.allow_boxed:
            assert_zero(env, inst, f"\\boxed{{{ref}}}", "box in a non-math environment")


@pytest.mark.parametrize("name", NAMES)
def test_row18_injection_is_never_evaluated(name, tmp_path):
    env, insts = instances(name, n=2)
    marker = tmp_path / "pwned"
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"exec(\"open('{marker}', 'w').write('x')\")",
        "4) or (True",
        "1 if True else 0",
        "().__class__.__bases__[0].__subclasses__()",
    ]
    for inst in insts:
        for payload in payloads:
            assert_zero(env, inst, env.wrap(payload), "injection")
            assert_zero(env, inst, f"\\boxed{{{payload}}}", "boxed injection")
    assert not marker.exists()


HOSTILE_DOS = {
    "power tower": "<answer>9^{9^{9^9}}</answer>",
    "boxed power tower": "\\boxed{9^{9^{9^{9^{9}}}}}",
    "nested braces": "<answer>" + "{" * 100_000 + "}" * 100_000 + "</answer>",
    "boxed nested braces": "\\boxed{" + "{" * 100_000 + "1" + "}" * 100_001,
    "ten megabytes": "<answer>" + "1" * 10_000_000 + "</answer>",
    "many tags": "<answer>" * 50_000 + "1",
    "backtracking bait": "<answer>" + "a" * 50_000 + "!" + "</answer" * 1_000,
    "huge factorial": "<answer>100000!</answer>",
    "huge exponent": "<answer>10^{10^{10}}</answer>",
}


def _run_battery(name):
    env, insts = instances(name, n=2)
    for inst in insts:
        for label, response in HOSTILE_DOS.items():
            assert_zero(env, inst, response, label)


@pytest.mark.parametrize("name", NAMES)
def test_row19_parser_denial_of_service_is_bounded(name):
    errors = []

    def run():
        try:
            _run_battery(name)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)  # off the main thread, as in a trainer
    worker.start()
    worker.join(BUDGET_S)
    assert not worker.is_alive(), f"{name}: hostile grading did not finish within {BUDGET_S}s"
    if errors:
        raise errors[0]


def test_row19_grading_in_a_thread_pool():
    jobs = [(name, i) for name in NAMES for i in range(3)]

    def grade(job):
        name, i = job
        env = envs.get(name)
        inst = env.sample(split_seed("train", i), 1.0)
        good = env.grade(inst, env.wrap(inst.reference)).value
        bad = env.grade(inst, HOSTILE_DOS["power tower"]).value
        return good, bad

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(grade, jobs, timeout=BUDGET_S * 3))
    assert results == [(1.0, 0.0)] * len(jobs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300))
def test_grade_never_raises_and_stays_in_range(text):
    for name in NAMES:
        env = envs.get(name)
        inst = env.sample(split_seed("train", 0), 0.5)
        for response in (text, env.wrap(text)):
            score = env.grade(inst, response)
            assert 0.0 <= score.value <= 1.0
            if score.passed:  # random text may only pass by being a valid answer itself
                assert env.score(inst.data, score.answer) == 1.0


#: reasoning-gym datasets whose own scorer evaluates the answer as Python (docs/reasoning-gym.md).
RG_EVALUATING = ["binary_matrix", "spiral_matrix", "string_insertion", "n_queens", "countdown", "puzzle24",
                 "polynomial_multiplication", "simple_integration", "intermediate_integration"]


@pytest.mark.filterwarnings("ignore:sandbox fallback mode")
@pytest.mark.parametrize("dataset", RG_EVALUATING)
def test_row18_reasoning_gym_scorers_that_evaluate_answers_run_nothing_on_the_host(dataset, tmp_path):
    """On the code as it was, both answers created the file (and countdown paid 0.05 for them)."""
    pytest.importorskip("reasoning_gym")
    from worldsmith.envs import gym

    env = gym.make(dataset, use_rg_scorer=True)
    inst = env.sample(split_seed("train", 1), 0.0)
    target = tmp_path / "created_by_the_answer"
    answers = [f"__import__('pathlib').Path({str(target)!r}).touch()", f"__import__('os').system('touch {target}')"]
    scores = env.grade_many([inst, inst], [env.wrap(a) for a in answers])
    assert not target.exists()
    assert [s.value for s in scores] == [0.0, 0.0] and all("SideEffect" in s.reason for s in scores), scores
