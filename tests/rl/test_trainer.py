"""The RL spine end to end on the tiny model: learning, parameter updates, resume, bad rewards."""

import json

import pytest
import torch

from worldsmith import Environment, envs
from worldsmith.configuration import build
from worldsmith.envs.contract import Score
from worldsmith.policy.model import build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl.config import RunConfig
from worldsmith.rl.trainer import Trainer
from worldsmith.runs import RunDir


class LetterA(Environment):
    """Trivially learnable: the reward is the fraction of the response's characters that are 'a'.

    It overrides ``grade`` (no answer tags needed), so an untrained model already gets a spread of
    rewards and the learning signal is dense.
    """

    name = "test_letter_a"
    description = "Write the letter a."

    def generate(self, rng, difficulty):
        return {"n": rng.randint(0, 9)}

    def solve(self, instance):
        return "a"

    def render(self, instance):
        return f"Write a {instance['n']}"

    def score(self, instance, answer):
        return float(answer == "a")

    def grade(self, instance, response):
        if not response:
            return Score(0.0, False, "empty")
        value = response.count("a") / len(response)
        return Score(value, value == 1.0, "fraction of a")


class FlakyReward(LetterA):
    """A grader that misbehaves on purpose: NaN, None, a string, 2.0, or a raise."""

    name = "test_flaky_reward"

    def grade(self, instance, response):
        bad = len(response) % 5
        if bad == 0:
            raise RuntimeError("grader crashed")
        return [None, float("nan"), "yes", 2.0][bad - 1]


for cls in (LetterA, FlakyReward):
    if cls.name not in envs.names():
        envs.register(cls)


def make(tmp_path, env="test_letter_a", **train):
    cfg = build(RunConfig, {
        "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
        "pool": [{"name": env}],
        "sampling": {"max_new_tokens": 8, "temperature": 1.0},
        "optim": {"lr": 3e-3},
        "train": {"steps": 4, "prompts_per_step": 4, "group_size": 4, "minibatch_size": 8,
                  "microbatch_size": 4, "checkpoint_every": 2, "seed": 3, **train},
    })
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, cfg.model.tiny, seed=0)
    return cfg, model, tok


def params_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_reward_rises_and_parameters_change(tmp_path):
    torch.manual_seed(0)
    cfg, model, tok = make(tmp_path, steps=30, prompts_per_step=8, group_size=8, minibatch_size=64,
                           microbatch_size=64, checkpoint_every=0)
    cfg.optim.lr = 1e-2
    start = params_of(model)
    rows = Trainer(cfg, model, tok).fit(RunDir(tmp_path), progress=False)
    first = sum(r["reward/mean"] for r in rows[:5]) / 5
    last = sum(r["reward/mean"] for r in rows[-5:]) / 5
    assert last > first + 0.2, (first, last)
    changed = [k for k, v in params_of(model).items() if not torch.equal(v, start[k])]
    assert len(changed) == len(start)
    for phase in ("generate", "grade", "backward", "optimizer"):
        assert rows[-1][f"time/{phase}"] > 0


def test_resume_continues_the_same_trajectory(tmp_path):
    cfg, model, tok = make(tmp_path)
    straight = RunDir(tmp_path / "straight")
    Trainer(cfg, model, tok).fit(straight, progress=False)

    cfg2 = cfg.model_copy(deep=True)
    cfg2.train.steps = 2
    _, model2, _ = make(tmp_path)
    split = RunDir(tmp_path / "split")
    Trainer(cfg2, model2, tok).fit(split, progress=False)
    # a fresh process would rebuild everything from the config and the checkpoint
    _, model3, _ = make(tmp_path)
    resumed = Trainer(cfg, model3, tok)
    assert resumed.resume(split) and resumed.step_index == 2
    resumed.fit(split, progress=False)

    a, b = params_of(model), params_of(resumed.acc.unwrap_model(resumed.model))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    keys = ("step", "reward/mean", "loss/loss", "entropy")
    assert [r[k] for r in straight.read_metrics() for k in keys] == pytest.approx(
        [r[k] for r in split.read_metrics() for k in keys], abs=1e-6)
    assert len(split.read_metrics()) == 4


def test_invalid_rewards_are_counted_and_never_reach_advantages(tmp_path):
    cfg, model, tok = make(tmp_path, env="test_flaky_reward", steps=2)
    rows = Trainer(cfg, model, tok).fit(RunDir(tmp_path), progress=False)
    for row in rows:
        assert row["reward/invalid"] == 16  # every reward of the batch was invalid
        assert row["reward/mean"] == 0.0
        assert all(v is None or v == v for v in row.values() if isinstance(v, float))  # no NaN
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("reward/invalid_exception", 0) for r in logged) > 0


def test_checkpoints_are_written_atomically_and_pruned(tmp_path):
    cfg, model, tok = make(tmp_path, steps=6, checkpoint_every=2)
    run = RunDir(tmp_path)
    Trainer(cfg, model, tok).fit(run, progress=False)
    names = sorted(p.name for p in run.checkpoint_dir.iterdir())
    assert names == ["step_4.pt", "step_6.pt"]  # keep_checkpoints=2; no temp files left
    assert (tmp_path / "config.yaml").exists()
