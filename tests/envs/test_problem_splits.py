"""Held-out means unseen: train and eval seeds draw disjoint problems, in every environment, at
every difficulty, also for reasoning-gym datasets and admitted programs."""

import importlib.util
import random

import pytest

from worldsmith import Environment, envs
from worldsmith.envs import checks, contract
from worldsmith.envs.contract import (
    EVAL_FRACTION,
    Instance,
    SplitExhausted,
    problem_id,
    problem_split,
    seed_split,
    split_seed,
)

DRAWS = 300
DIFFICULTIES = (0.0, 0.5, 1.0)
#: The fewest distinct eval problems in DRAWS eval draws, per environment and difficulty, measured:
#: a large problem space gives nearly DRAWS; the small ones at difficulty 0 are named.
FEW_AT_EASIEST = {"arithmetic_chain": 50, "fraction_sum": 50, "graph_coloring": 60, "grid_paths": 100,
                  "gcd_euclid": 180, "sat_planted": 190}


def draws(env, split: str, difficulty: float, n: int = DRAWS) -> list[Instance]:
    return [env.sample(split_seed(split, i), difficulty) for i in range(n)]


def assert_disjoint(train: list[Instance], evals: list[Instance]) -> None:
    train_ids, eval_ids = {i.problem_id for i in train}, {i.problem_id for i in evals}
    assert not train_ids & eval_ids
    assert {i.split for i in train} == {"train"} and {i.split for i in evals} == {"eval"}


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("name", envs.names())
def test_train_and_eval_seeds_draw_disjoint_problems(name, difficulty):
    env = envs.get(name)
    train, evals = draws(env, "train", difficulty), draws(env, "eval", difficulty)
    assert_disjoint(train, evals)
    distinct = len({i.problem_id for i in evals})
    floor = FEW_AT_EASIEST.get(name, 290) if difficulty == 0.0 else 290
    assert distinct >= floor, f"{name} d={difficulty}: {distinct} distinct eval problems in {DRAWS} draws"


def test_the_identity_is_the_prompt_not_the_seed_or_the_private_data():
    env = envs.get("graph_coloring")  # feasibility: data carries a planted colouring the prompt does not show
    a = env.sample(split_seed("train", 0), 0.5)
    assert a.problem_id == problem_id(a.prompt) and len(a.problem_id) == 16
    twin = Instance(env="other", seed=12345, difficulty=1.0, prompt=a.prompt, reference="", data={"planted": [9]})
    assert twin.problem_id == a.problem_id and twin.split == a.split == "train"
    assert problem_id(" " + a.prompt.replace(" ", "  ") + "\n") == a.problem_id
    assert problem_id(a.prompt + ".") != a.problem_id


def test_a_quarter_of_problems_are_eval_problems():
    ids = [problem_id(f"problem {i}") for i in range(40_000)]
    share = sum(problem_split(p) == "eval" for p in ids) / len(ids)
    assert EVAL_FRACTION == 0.25
    assert share == pytest.approx(0.25, abs=0.01)  # 4.6 standard deviations of a binomial share


def test_every_seed_draws_a_problem_of_its_own_split():
    env = envs.get("gcd_euclid")
    for seed in range(-50, 50):  # any integer, not only split_seed's
        assert env.sample(seed, 0.5).split == seed_split(seed)


class Coin(Environment):
    """Two problems: one lands in each split, whichever the hash says."""

    name = "coin_for_test"

    def generate(self, rng, difficulty):
        return {"side": rng.choice(self.sides)}

    def solve(self, instance):
        return instance["side"]

    def render(self, instance):
        return f"Call {instance['side']}."

    def score(self, instance, answer):
        return float(answer == instance["side"])


def one_split_sides(split: str) -> list[str]:
    sides = [f"side{i}" for i in range(400)]
    return [s for s in sides if problem_split(problem_id(f"Call {s}.")) == split][:2]


def test_a_space_with_no_problem_of_a_split_is_an_error_not_a_leak():
    env = Coin()
    env.sides = one_split_sides("train")
    assert {env.sample(split_seed("train", i)).reference for i in range(40)} == set(env.sides)
    with pytest.raises(SplitExhausted, match=r"coin_for_test at difficulty 0: no eval-split problem in 100 draws"):
        env.sample(split_seed("eval", 0))
    result = checks.check_splits(env, 10)
    assert not result.passed and "too few distinct problems to split" in result.detail


def test_the_check_counts_distinct_eval_problems_and_names_a_small_space():
    env = Coin()
    env.sides = one_split_sides("train") + one_split_sides("eval")
    result = checks.check_splits(env, 10)
    assert result.passed, result.detail
    assert result.detail == ("200 train and 200 eval draws share no problem; distinct eval problems: "
                             "d=0 2 (small problem space), d=0.5 2 (small problem space), d=1 2 (small problem space)")
    assert checks.distinct_problems(env, 200, 0.0) == 2
    assert checks.distinct_problems(envs.get("sort_composite"), 200, 0.5) == 200


def test_the_check_catches_a_sampler_that_ignores_the_split():
    class Leaky(Environment):
        name = "leaky_split_for_test"

        def generate(self, rng, difficulty):
            return {"x": rng.randint(0, 5)}

        def solve(self, instance):
            return str(instance["x"])

        def render(self, instance):
            return f"Say {instance['x']}."

        def score(self, instance, answer):
            return float(answer == str(instance["x"]))

        def sample(self, seed, difficulty=0.0):  # the pre-split sampler: the first draw, whatever its split
            data = self.generate(random.Random(contract.stable_hash(self.name, seed)), difficulty)
            return Instance(self.name, seed, difficulty, self.render(data), self.solve(data), data)

    result = checks.check_splits(Leaky(), 10)
    assert not result.passed and "d=0: " in result.detail


@pytest.mark.skipif(importlib.util.find_spec("reasoning_gym") is None, reason="reasoning-gym is not installed")
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_a_reasoning_gym_dataset_splits_its_problems(difficulty):
    env = envs.get("rg:gcd")
    train, evals = draws(env, "train", difficulty, 150), draws(env, "eval", difficulty, 150)
    assert_disjoint(train, evals)
    assert len({i.problem_id for i in evals}) >= 140


def test_an_admitted_program_splits_its_problems():
    # an admitted program samples through its SandboxedEnvironment (the pool only renames the
    # instances), so this is its sampling path without the torch import of the synth loop
    from worldsmith.synth import corpus
    from worldsmith.synth.sandboxed_env import SandboxedEnvironment

    source = {item.name: item.source for item in corpus.load()}["matrix_trace"]
    env = SandboxedEnvironment(source, "matrix_trace")
    train = env.sample_grid([split_seed("train", i) for i in range(DRAWS)], DIFFICULTIES)  # one sandbox run
    evals = env.sample_grid([split_seed("eval", i) for i in range(DRAWS)], DIFFICULTIES)
    for d in DIFFICULTIES:
        assert_disjoint(train[d], evals[d])
        assert len({i.problem_id for i in evals[d]}) >= 290


SPLIT_BLIND_PROGRAM = """
import random
from worldsmith.envs.contract import Environment, Instance


class SplitBlind(Environment):
    name = "split_blind"
    description = "Repeat a number."

    def generate(self, rng, difficulty):
        return {"x": rng.randint(0, 10**9)}

    def solve(self, instance):
        return str(instance["x"])

    def render(self, instance):
        return f"Say {instance['x']}."

    def score(self, instance, answer):
        return float(answer == str(instance["x"]))

    def sample(self, seed, difficulty=0.0):
        data = self.generate(random.Random(seed), difficulty)
        return Instance(self.name, seed, float(difficulty), self.render(data), self.solve(data), data)
"""


def test_a_program_whose_sampler_ignores_the_split_is_refused():
    from worldsmith.synth.sandboxed_env import SandboxedEnvError, SandboxedEnvironment

    env = SandboxedEnvironment(SPLIT_BLIND_PROGRAM, "split_blind")
    with pytest.raises(SandboxedEnvError, match=r"drew a train-split problem for a seed of the eval split"):
        env.sample_many([split_seed("eval", i) for i in range(16)], 0.5)
