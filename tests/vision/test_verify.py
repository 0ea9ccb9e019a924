"""Verification at three levels, the hybrid reward's gates, stage attribution and the image-removed
perturbation test. Programs run in the real sandbox (bubblewrap, or the suite's opt-in fallback)."""

import random

import pytest

from worldsmith import envs
from worldsmith.envs.contract import split_seed
from worldsmith.vision.envs import VISION_ENVIRONMENTS
from worldsmith.vision.verify import (
    ExecReport,
    VerifyConfig,
    attribute,
    attribution_report,
    check_process,
    hybrid_reward,
    image_ablation,
    split_response,
    verify,
)

pytestmark = pytest.mark.filterwarnings("ignore:sandbox fallback mode")


def _chart():
    env = envs.get("vis_chart")
    return env, env.sample(split_seed("train", 7), 0.5)


@pytest.mark.parametrize("name", VISION_ENVIRONMENTS)
def test_reference_response_passes_all_three_levels(name):
    env = envs.get(name)
    inst = env.sample(split_seed("eval", 1), 1.0)
    v = verify(env, inst, env.reference_response(inst.data))
    assert v.answer_correct and v.process.score == 1.0 and v.executable.score == 1.0
    assert v.executable.n_claims == len(env.steps(inst.data)) and v.executable.answer_consistent
    assert all(s.grounded for s in v.process.steps if s.stage == "perception")
    assert v.reward == 1.0 and v.gate is None and attribute(v) is None


def test_right_answer_through_a_wrong_perception_step_earns_nothing():
    env, inst = _chart()
    steps = env.steps(inst.data)
    name, value = steps[0].split(" = ")
    forged = steps.copy()
    forged[0] = f"{name} = {int(value) + 1}"  # misread bar, answer still right
    v = verify(env, inst, "\n".join(forged) + "\n" + env.wrap(inst.reference))
    assert v.answer_correct and v.reward == 0.0
    assert v.gate.startswith("perception step 0") and attribute(v) == "perception"
    assert v.process.steps[0].grounded is False


def test_right_answer_with_a_contradicting_program_earns_nothing():
    env, inst = _chart()
    a, b = (s.split(" = ")[0].lower() for s in env.steps(inst.data)[:2])
    program = env.program(inst.data).replace(f"abs({a} - {b})", f"{a} + {b}")
    response = "\n".join(env.steps(inst.data)) + f"\n<program>\n{program}\n</program>\n" + env.wrap(inst.reference)
    v = verify(env, inst, response)
    assert v.answer_correct and v.process.score == 1.0
    assert v.executable.executes and v.executable.contradicted and "difference" in v.executable.contradictions[0]
    assert v.reward == 0.0 and attribute(v) == "alignment"


def test_a_program_cannot_forge_its_values_by_defining_main():
    env, inst = _chart()
    steps = env.steps(inst.data)
    claimed = {s.split(" = ")[0].lower(): int(s.split(" = ")[1]) for s in steps}
    program = ("difference = -1\nanswer = -1\n"
               f"def main(args):\n    return {claimed!r} | {{'answer': {inst.reference}}}\n")
    response = "\n".join(steps) + f"\n<program>\n{program}</program>\n" + env.wrap(inst.reference)
    v = verify(env, inst, response)
    assert v.executable.contradicted and v.reward == 0.0


def test_wrong_computed_value_is_a_reasoning_failure():
    env = envs.get("vis_count")
    inst = env.sample(split_seed("train", 2), 0.5)
    steps = env.steps(inst.data)
    steps[-1] = f"total = {int(steps[-1].split(' = ')[1]) + 1}"
    v = verify(env, inst, "\n".join(steps) + "\n" + env.wrap(inst.reference))
    assert v.reward == 0.0 and attribute(v) == "reasoning" and v.process.first_error.stage == "reasoning"


def test_bare_answers_broken_programs_and_unknown_claims():
    env, inst = _chart()
    cfg = VerifyConfig(lam=0.5, no_trace_credit=0.5, no_program_credit=0.5)
    bare = verify(env, inst, env.wrap(inst.reference), cfg)
    assert bare.reward == pytest.approx(0.5) and bare.executable.status == "absent"
    wrong = verify(env, inst, env.wrap(str(int(inst.reference) + 1)), cfg)
    assert wrong.reward == 0.0 and attribute(wrong) == "unattributed"
    crash = verify(env, inst, "\n".join(env.steps(inst.data)) + "\n<program>\nanswer = 1 / 0\n</program>\n"
                   + env.wrap(inst.reference), cfg)
    assert crash.executable.status == "error" and crash.reward == pytest.approx(0.5) and attribute(crash) == "alignment"
    extra = check_process(env, inst.data, "colour of sky = blue\n" + "\n".join(env.steps(inst.data)))
    assert extra.steps[0].valid is None and extra.score == 1.0


def test_claims_hidden_in_the_answer_or_program_are_not_claims():
    lines, program = split_response("a = 1\n<program>\nb = 2\n</program>\n<answer>c = 3</answer>")
    assert lines == ["a = 1"] and program.strip() == "b = 2"


def test_no_single_corrupted_claim_is_ever_paid():
    """Every response that states one wrong fact (any step, any environment) earns 0, whatever
    else it gets right: the gate is checked on reports, without running programs."""
    rng = random.Random(0)
    for name in VISION_ENVIRONMENTS:
        env = envs.get(name)
        for i in range(10):
            inst = env.sample(split_seed("train", i), rng.random())
            steps = env.steps(inst.data)
            k = rng.randrange(len(steps))
            key, value = steps[k].split(" = ")
            steps[k] = f"{key} = {int(value) + rng.choice((-2, -1, 1, 2))}" if value.lstrip("-").isdigit() \
                else f"{key} = {'red' if value != 'red' else 'blue'}"
            process = check_process(env, inst.data, "\n".join(steps))
            for exec_report in (ExecReport("absent"), ExecReport("ok")):
                assert hybrid_reward(1.0, process, exec_report)[0] == 0.0


def test_attribution_report_counts_stages():
    env, inst = _chart()
    steps = env.steps(inst.data)
    bad_read = [f"{steps[0].split(' = ')[0]} = 999", *steps[1:]]
    verdicts = [verify(env, inst, env.reference_response(inst.data)),
                verify(env, inst, "\n".join(bad_read) + "\n" + env.wrap(inst.reference)),
                verify(env, inst, env.wrap("-5"))]
    report = attribution_report(verdicts)
    assert report["stages"] == {"perception": 1, "alignment": 0, "reasoning": 0, "unattributed": 1}
    assert report["gated_right_answers"] == 1 and report["answer_accuracy"] == pytest.approx(2 / 3)


def test_image_ablation_separates_seeing_from_guessing():
    env = envs.get("vis_count")
    instances = [env.sample(split_seed("eval", i), 0.5) for i in range(12)]
    references = {inst.prompt: inst.reference for inst in instances}

    def looks_at_the_image_double(prompt, png):  # a test double: right when it has the picture
        return env.wrap(references[prompt] if png is not None else "3")

    report = image_ablation(env, instances, looks_at_the_image_double)
    guessed = sum(inst.reference == "3" for inst in instances) / len(instances)
    assert report["accuracy_with_image"] == 1.0
    assert report["accuracy_without_image"] == pytest.approx(guessed)
    assert report["image_gain"] == pytest.approx(1.0 - guessed) and report["prior_share"] == pytest.approx(guessed)
    blind = image_ablation(env, instances, lambda prompt, png: env.wrap("3"))
    assert blind["image_gain"] == 0.0


def test_hanging_and_oversized_programs_fail_the_executable_level_only():
    env, inst = _chart()
    steps = "\n".join(env.steps(inst.data))
    cfg = VerifyConfig(wall_s=1.0)
    hang = verify(env, inst, f"{steps}\n<program>\nwhile True:\n    pass\n</program>\n" + env.wrap(inst.reference), cfg)
    assert hang.executable.status == "timeout"
    assert hang.executable.score == 0.0 and hang.reward == pytest.approx(0.5) and attribute(hang) == "alignment"
    huge = verify(env, inst, f"{steps}\n<program>\n" + "x = 1\n" * 1000 + "</program>\n" + env.wrap(inst.reference), cfg)
    assert huge.executable.status == "too_long" and huge.executable.score == 0.0
