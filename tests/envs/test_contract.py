"""The contract battery over the whole registry, and the registry's own rules."""

import json
import random

import pytest

from worldsmith import Environment, envs
from worldsmith.envs.checks import CHECKS, run_checks
from worldsmith.envs.contract import problem_id, problem_split, split_seed, stable_hash

NAMES = envs.names()


def test_ten_seed_environments_are_registered():
    assert len(NAMES) >= 10, NAMES
    kinds = {envs.get(n).oracle for n in NAMES}
    assert kinds == {"equality", "feasibility"}
    with_steps = [n for n in NAMES if envs.get(n).has_steps()]
    assert len(with_steps) >= 4, with_steps


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", NAMES)
def test_contract(name, check):
    result = check(envs.get(name), 20)
    assert result.passed, f"{name}: {result.name}: {result.detail}"


def test_rng_is_seeded_from_a_stable_hash_of_name_and_seed():
    env = envs.get("arithmetic_chain")
    first_draws_kept = 0
    for seed in range(5, 25):
        # draw 0 from hash(name, seed), draw k from hash(name, seed, k); the first in the seed's split wins
        draws = [env.generate(random.Random(stable_hash("arithmetic_chain", seed)), 0.5)]
        draws += [env.generate(random.Random(stable_hash("arithmetic_chain", seed, k)), 0.5) for k in range(1, 40)]
        kept = next(k for k, d in enumerate(draws) if problem_split(problem_id(env.render(d))) == envs.seed_split(seed))
        assert env.sample(seed, 0.5).data == draws[kept]
        first_draws_kept += kept == 0
    assert 0 < first_draws_kept < 20
    # adjacent seeds are not adjacent streams
    assert env.sample(5, 0.5).data != env.sample(6, 0.5).data


def test_sample_rejects_bad_arguments():
    env = envs.get("arithmetic_chain")
    with pytest.raises(ValueError, match="difficulty"):
        env.sample(0, 1.5)
    with pytest.raises(TypeError, match="seed"):
        env.sample("x", 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="difficulty"):
        env.sample(0, "hard")  # type: ignore[arg-type]


def test_train_and_eval_seeds_are_disjoint_by_construction():
    train = {split_seed("train", i) for i in range(50_000)}
    evals = {split_seed("eval", i) for i in range(50_000)}
    assert len(train) == 50_000 and len(evals) == 50_000
    assert not train & evals
    assert all(envs.seed_split(s) == "train" for s in train)
    assert all(envs.seed_split(s) == "eval" for s in evals)
    # the same index in the two splits gives different instances
    env = envs.get("arithmetic_chain")
    same = sum(env.sample(split_seed("train", i), 0.5) == env.sample(split_seed("eval", i), 0.5) for i in range(100))
    assert same == 0


def test_duplicate_names_are_rejected():
    class Twin(Environment):
        name = "arithmetic_chain"

    with pytest.raises(ValueError, match="already registered"):
        envs.register(Twin)


def test_registering_a_non_environment_fails():
    with pytest.raises(TypeError):
        envs.register(dict)  # type: ignore[arg-type]


def test_unknown_name_is_a_one_line_error_with_suggestions():
    with pytest.raises(envs.UnknownEnvironment) as info:
        envs.get("arithmetic_chian")
    message = str(info.value)
    assert "\n" not in message
    assert "did you mean arithmetic_chain" in message


def test_grade_never_raises_on_a_broken_scorer():
    class Broken(Environment):
        name = "broken_for_test"

        def generate(self, rng, difficulty):
            return {"x": rng.randint(0, 9)}

        def solve(self, instance):
            return str(instance["x"])

        def render(self, instance):
            return f"{instance['x']}?"

        def score(self, instance, answer):
            return {"1": float("nan"), "2": 2.0, "3": "yes", "4": True}.get(answer) or 1 / 0

    env = Broken()
    inst = env.sample(0, 0.0)
    for answer in ("1", "2", "3", "4", "5"):
        score = env.grade(inst, env.wrap(answer))
        assert score.value == 0.0 and not score.passed and score.reason


def test_run_checks_reports_a_leaking_environment():
    class Leaky(Environment):
        name = "leaky_for_test"
        oracle = "equality"

        def generate(self, rng, difficulty):
            return {"x": rng.randint(1000, 10**6 * (1 + int(difficulty * 9)))}

        def solve(self, instance):
            return str(instance["x"])

        def render(self, instance):
            return f"The answer is {instance['x']}."

        def score(self, instance, answer):
            return float(answer == str(instance["x"]))

    results = {r.name: r for r in run_checks(Leaky(), n=10)}
    assert not results["no_leak"].passed
    assert results["reference"].passed


def test_instances_are_plain_json():
    for name in NAMES:
        inst = envs.get(name).sample(split_seed("train", 1), 0.5)
        assert json.loads(json.dumps(inst.to_json()))["data"] == inst.data
