"""Held-out means unseen: train and eval seeds draw disjoint problems, for every environment kind."""

import pytest

from worldsmith import envs
from worldsmith.envs.checks import run_checks, split_report
from worldsmith.envs.contract import (
    EVAL_SHARE,
    Environment,
    SplitUnavailable,
    problem_id,
    problem_split,
    seed_split,
    split_seed,
)

BUILTIN = [n for n in envs.names() if not n.startswith(("rg:", "game:"))]


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("difficulty", [0.0, 0.5, 1.0])
def test_no_eval_problem_is_ever_drawn_by_a_train_seed(name, difficulty):
    env = envs.get(name)
    n_train, n_eval, shared = split_report(env, 300, difficulty)
    assert shared == 0
    assert n_train > 0 and n_eval > 0
    if difficulty >= 0.5:  # the spaces are large here: held-out problems are plentiful
        assert n_eval >= 280, (name, difficulty, n_eval)


def test_a_sample_belongs_to_its_seeds_split_and_repeats():
    env = envs.get("arithmetic_chain")
    for i in range(50):
        for split in ("train", "eval"):
            inst = env.sample(split_seed(split, i), 0.5)
            assert problem_split(env.name, inst.prompt) == split == seed_split(inst.seed)
            assert inst == env.sample(split_seed(split, i), 0.5)
            assert inst.problem_id == problem_id(env.name, inst.prompt)


def test_about_eval_share_of_problems_are_held_out():
    held = sum(problem_split("x", f"problem {k}") == "eval" for k in range(20_000))
    assert abs(held / 20_000 - EVAL_SHARE) < 0.02


class Tiny(Environment):
    """Two problems only: one split can get none of them."""

    name = "test_two_problems"

    def generate(self, rng, difficulty):
        return {"k": rng.randint(0, 1)}

    def solve(self, instance):
        return str(instance["k"])

    def render(self, instance):
        return f"Say {instance['k']}"

    def score(self, instance, answer):
        return float(answer == str(instance["k"]))


def test_a_split_without_problems_says_so_instead_of_pretending():
    env = Tiny()
    splits = {problem_split(env.name, f"Say {k}") for k in (0, 1)}
    missing = ({"train", "eval"} - splits).pop()  # with two problems one split is empty (checked below)
    assert len(splits) == 1
    with pytest.raises(SplitUnavailable, match="too few distinct problems"):
        env.sample(split_seed(missing, 0))
    splits_check = next(r for r in run_checks(env, 10) if r.name == "splits")
    assert not splits_check.passed and "too few distinct problems" in splits_check.detail


def test_an_rg_dataset_keeps_its_splits_apart():
    pytest.importorskip("reasoning_gym")
    env = envs.get("rg:basic_arithmetic")
    n_train, n_eval, shared = split_report(env, 100, 0.5)
    assert shared == 0 and n_eval > 50
