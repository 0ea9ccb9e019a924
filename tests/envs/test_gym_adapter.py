"""The reasoning-gym adapter: rg:<dataset> environments, sampled deterministically, graded exactly."""

import json
import sys
import time

import pytest

pytest.importorskip("reasoning_gym")

from worldsmith import envs  # noqa: E402
from worldsmith.envs import checks, gym  # noqa: E402
from worldsmith.envs.contract import split_seed  # noqa: E402

SEEDS = [split_seed("train", i) for i in range(8)]


@pytest.fixture(scope="module")
def gcd():
    return envs.get("rg:gcd")


def test_resolves_through_the_registry(gcd):
    assert gcd.name == "rg:gcd" and repr(gcd) == "<Environment rg:gcd>"
    assert "rg:gcd" not in envs.names()  # families are not expanded
    assert "curriculum" in gcd.description
    assert type(envs.get("rg:gcd")) is type(gcd)


def test_sampling_is_deterministic_per_seed_and_difficulty(gcd):
    fresh = type(gcd)()
    for seed in SEEDS:
        for d in (0.0, 0.5, 1.0):
            assert gcd.sample(seed, d) == fresh.sample(seed, d)
    questions = {gcd.sample(seed, 0.5).prompt for seed in SEEDS}
    assert len(questions) == len(SEEDS)


def test_instances_are_plain_json(gcd):
    inst = gcd.sample(SEEDS[0], 0.5)
    again = json.loads(json.dumps(inst.to_json()))
    assert again["data"] == inst.data
    assert inst.data["dataset"] == "gcd" and inst.data["answer"] == inst.reference
    assert inst.data["question"] in inst.prompt and "<answer>" in inst.prompt


def test_reference_passes_and_wrong_answers_fail(gcd):
    for seed in SEEDS:
        inst = gcd.sample(seed, 0.5)
        ref = inst.reference
        assert gcd.grade(inst, gcd.wrap(ref)).passed
        assert gcd.grade(inst, f"thinking...<answer>\n  {ref}  </answer>").passed  # whitespace only
        for wrong in (str(int(ref) + 1), ref + "0", f"{ref}.0", f"0{ref}", ""):
            score = gcd.grade(inst, gcd.wrap(wrong))
            assert score.value == 0.0 and not score.passed, wrong


def test_sprays_and_unanchored_answers_score_zero(gcd):
    for seed in SEEDS[:4]:
        inst = gcd.sample(seed, 0.5)
        ref = inst.reference
        for response in (
            "<answer>" + " ".join(str(i) for i in range(1, 101)) + "</answer>",
            "<answer>" + ", ".join(str(i) for i in range(1, 101)) + "</answer>",
            f"<answer>{ref} or {int(ref) + 1}</answer>",
            f"<answer>The GCD is {ref}</answer>",
            f"<answer>{ref}{ref}</answer>",
            f"The answer is {ref}.",
            f"\\boxed{{{ref}}}",
            None,
        ):
            score = gcd.grade(inst, response)
            assert score.value == 0.0, (response, score)


def test_reasoning_gym_scorer_is_opt_in():
    """Its default scorer gives partial credit to a spray that contains the answer; ours gives 0."""
    exact = envs.get("rg:gcd")
    lenient = gym.make("gcd", use_rg_scorer=True)
    inst = exact.sample(SEEDS[0], 0.5)
    spray = f"<answer>{inst.reference} or 7</answer>"
    assert exact.grade(inst, spray).value == 0.0
    assert 0.0 < lenient.grade(inst, spray).value < 1.0
    assert lenient.grade(inst, lenient.wrap(inst.reference)).passed


def test_difficulty_follows_the_curriculum(gcd):
    for seed in SEEDS:
        easy, hard = gcd.sample(seed, 0.0), gcd.sample(seed, 1.0)
        assert easy.data != hard.data
        assert easy.data["levels"] == {"num_terms": 0, "value": 0}
        assert hard.data["levels"] == {"num_terms": 3, "value": 3}
        assert len(easy.data["metadata"]["numbers"]) == 2
        assert len(hard.data["metadata"]["numbers"]) == 5


def test_contract_battery_on_an_adapted_dataset(gcd):
    for check in (
        checks.check_determinism,
        checks.check_json,
        checks.check_reference_passes,
        checks.check_malformed,
        checks.check_difficulty_scales,
    ):
        result = check(gcd, 5)
        assert result.passed, f"{result.name}: {result.detail}"


def test_dataset_without_curriculum_ignores_difficulty():
    env = envs.get("rg:acre")
    assert "difficulty is ignored" in env.description
    inst = env.sample(SEEDS[0], 0.3)
    assert env.grade(inst, env.wrap(inst.reference)).passed
    assert env.sample(SEEDS[0], 0.3) == inst


def test_unknown_dataset_is_a_one_line_error_with_suggestions():
    with pytest.raises(envs.UnknownEnvironment) as info:
        envs.get("rg:gdc")
    message = str(info.value)
    assert "\n" not in message and "'gdc'" in message and "rg:gcd" in message
    with pytest.raises(envs.UnknownEnvironment) as info:
        envs.get("rg:no_such_dataset_at_all")
    assert "\n" not in str(info.value)
    with pytest.raises(envs.UnknownEnvironment):
        envs.get("rg:")


def test_datasets_without_a_reference_answer_say_what_to_do():
    with pytest.raises(ValueError) as info:
        envs.get("rg:graph_color")
    message = str(info.value)
    assert "\n" not in message and "use_rg_scorer=True" in message


def test_metadata_is_made_json_safe():
    class Opaque:
        pass

    dropped = []
    value = gym.json_safe(
        {"a": (1, 2), 3: {"b": Opaque()}, "c": float("nan"), "d": {2, 1}, "e": [Opaque(), "x"]}, dropped, "m"
    )
    assert value == {"a": [1, 2], "3": {}, "d": [1, 2], "e": ["x"]}
    assert sorted(dropped) == ["m.3.b", "m.c", "m.e[0]"]
    json.dumps(value)


def test_missing_reasoning_gym_gives_the_install_hint(monkeypatch):
    for name in [m for m in sys.modules if m == "reasoning_gym" or m.startswith("reasoning_gym.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)
    with pytest.raises(ImportError) as info:
        gym.make("gcd")
    message = str(info.value)
    assert "\n" not in message and "pip install 'worldsmith[gym]'" in message


# --- reasoning-gym's own scorer runs in the sandbox -----------------------------------------------------


def _in_process_scores(env, pairs):
    """reasoning-gym's ``score_answer`` called here, in this process, on answers the test wrote
    (trusted text): what the sandboxed scorer must reproduce."""
    out = []
    for inst, answer in pairs:
        source = gym._source(inst.data["dataset"])
        levels = tuple((a, int(v)) for a, v in inst.data["levels"].items())
        dataset = source.template(levels).make(inst.data["rg_seed"])
        out.append(float(dataset.score_answer(answer, dataset[0])))
    return out


@pytest.fixture
def launches(monkeypatch):
    """Counts the sandbox launches the rg: scorer makes (the real ``run`` still runs)."""
    count = []
    real = gym.run
    monkeypatch.setattr(gym, "run", lambda *a, **k: count.append(1) or real(*a, **k))
    return count


@pytest.mark.filterwarnings("ignore:sandbox fallback mode")
def test_hostile_answers_to_the_rg_scorer_create_nothing_hang_nothing_and_score_0(tmp_path, launches):
    """On the code as it was: the file was created and the answer earned 0.05; 9**9**9 hung."""
    env = gym.make("countdown", use_rg_scorer=True)
    inst = env.sample(SEEDS[1], 0.0)
    target = tmp_path / "created_by_the_answer"
    answers = [f"__import__('os').system('touch {target}')", "9**9**9",
               f"__import__('pathlib').Path({str(target)!r}).touch()"]
    started = time.monotonic()
    scores = env.grade_many([inst] * 3, [env.wrap(a) for a in answers])
    seconds = time.monotonic() - started
    assert not target.exists()
    assert [s.value for s in scores] == [0.0, 0.0, 0.0]
    assert "os.system" in scores[0].reason and "SideEffect" in scores[0].reason
    assert "Timeout" in scores[1].reason
    assert "SideEffect" in scores[2].reason  # Path.touch: os.utime, then a write-mode open
    assert seconds < gym.RG_SETUP_S and launches == [1]


@pytest.mark.filterwarnings("ignore:sandbox fallback mode")
def test_the_sandboxed_rg_scorer_scores_as_reasoning_gym_does(launches):
    cases = []
    for name, seeds in (("countdown", SEEDS[1:4]), ("gcd", SEEDS[:3]), ("graph_color", SEEDS[:2])):
        env = gym.make(name, use_rg_scorer=True)
        for seed in seeds:
            inst = env.sample(seed, 0.0)
            answers = ["7", "", "1 2 3"]
            if inst.reference:
                answers += [inst.reference, f"{inst.reference} or 7"]
            if name == "countdown":
                answers.append(inst.reference.replace("+", "-", 1))
            if name == "graph_color":  # a proper colouring found here, and one that is not
                answers.append(json.dumps({str(v): 1 for v in range(10)}))
            cases += [(env, inst, a) for a in answers]
    values = []
    for env in {id(c[0]): c[0] for c in cases}.values():
        mine = [(inst, a) for e, inst, a in cases if e is env]
        scores = env.grade_many([i for i, _ in mine], [env.wrap(a) if a else "<answer></answer>" for _, a in mine])
        expected = _in_process_scores(env, [(i, a) for i, a in mine if a])
        got = [s.value for (_, a), s in zip(mine, scores) if a]
        assert got == expected, (env.name, got, expected)
        values += got
    assert 1.0 in values and any(0.0 < v < 1.0 for v in values)  # full and partial credit both seen
    assert len(launches) == 3  # one per environment's batch


@pytest.mark.filterwarnings("ignore:sandbox fallback mode")
def test_one_launch_per_batch_and_grades_read_the_prefetched_verdicts(launches, monkeypatch):
    env = gym.make("gcd", use_rg_scorer=True)
    instances = [env.sample(seed, 0.5) for seed in SEEDS]
    responses = [env.wrap(i.reference if k % 2 else f"{i.reference} or 7") for k, i in enumerate(instances)]
    env.prefetch_grades(instances, responses)
    assert launches == [1]
    scores = [env.grade(i, r) for i, r in zip(instances, responses)]
    assert launches == [1]  # read, not rescored
    assert [s.passed for s in scores] == [bool(k % 2) for k in range(len(SEEDS))]
    assert all(0.0 < s.value < 1.0 and s.reason == "partial credit" for s in scores[::2])
    monkeypatch.setattr(gym, "RG_SCORE_BATCH", 3)
    env.prefetch_grades(instances, [env.wrap(str(k)) for k in range(len(SEEDS))])
    assert len(launches) == 1 + 3  # 8 distinct answers, 3 per launch


def test_the_rg_scorer_refuses_without_isolation(no_isolation):
    from worldsmith.sandbox import SandboxUnavailable

    with pytest.raises(SandboxUnavailable, match="--unsafe-no-isolation"):
        gym.make("countdown", use_rg_scorer=True)
    envs.get("rg:gcd")  # exact grading runs no third-party code: still available
