"""G2RL in the trainer: the novelty weights w_ij = exp(r_j) get the paper's signed rewards r = +-1.

A real collect on the tiny model with an environment whose scores are 0 or 1; the novelty the
trainer computes is checked against nu computed here by hand, member by member, from the same
features: nu_i = max(1 - sum_{j != i} w_ij cos(Phi_i, Phi_j)^2, 0), w_ij = exp(r_j) / sum_{k != i} exp(r_k).
"""

import math

import pytest
import torch

from worldsmith import Environment, envs
from worldsmith.configuration import build
from worldsmith.envs.contract import Score
from worldsmith.policy.model import build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl import g2rl as g2rl_module
from worldsmith.rl.config import RunConfig
from worldsmith.rl.trainer import PhaseTimer, Trainer


class EvenLength(Environment):
    """Passes (score 1) when the response has an even number of characters, else fails (score 0)."""

    name = "test_even_length"
    description = "Any text of even length."

    def generate(self, rng, difficulty):
        return {"n": rng.randint(0, 9)}

    def solve(self, instance):
        return "aa"

    def render(self, instance):
        return f"Say {instance['n']}"

    def score(self, instance, answer):
        return float(len(answer) % 2 == 0)

    def grade(self, instance, response):
        passed = len(response) % 2 == 0
        return Score(float(passed), passed, "parity")


@pytest.fixture(autouse=True, scope="module")
def registered():
    envs.register(EvenLength)
    yield
    envs.registry.unregister(EvenLength.name)


def hand_nu(features, scores):
    """nu of one group, with plain Python floats and loops."""
    r = [2.0 * s - 1.0 for s in scores]
    unit = [[x / math.sqrt(sum(y * y for y in f)) for x in f] for f in features]
    out = []
    for i in range(len(r)):
        others = [j for j in range(len(r)) if j != i]
        z = sum(math.exp(r[k]) for k in others)
        total = sum(math.exp(r[j]) / z * sum(a * b for a, b in zip(unit[i], unit[j])) ** 2 for j in others)
        out.append(max(1.0 - total, 0.0))
    return out


def test_novelty_uses_signed_rewards_and_matches_the_hand_computed_value(monkeypatch):
    seen = {}
    real = g2rl_module.g2rl_novelty

    def spy(features, rewards, group_ids, eps):
        seen.update(features=features.clone(), rewards=rewards.clone(), group_ids=group_ids.clone())
        seen["nu"] = real(features, rewards, group_ids, eps)
        return seen["nu"]

    monkeypatch.setattr(g2rl_module, "g2rl_novelty", spy)
    cfg = build(RunConfig, {
        "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
        "pool": [{"name": EvenLength.name}],
        "sampling": {"max_new_tokens": 9, "temperature": 1.0},
        "train": {"steps": 1, "prompts_per_step": 4, "group_size": 4, "minibatch_size": 16,
                  "microbatch_size": 16, "seed": 2, "shaping": {"g2rl": {"enabled": True}}},
    })
    tok = build_char_tokenizer()
    torch.manual_seed(1)
    batch, metrics = Trainer(cfg, build_tiny_model(tok, cfg.model.tiny, seed=0), tok).collect(0, PhaseTimer())
    scores = batch.rewards.double().cpu()
    assert set(scores.tolist()) == {0.0, 1.0}  # passes and fails in the batch
    assert torch.equal(seen["rewards"].cpu(), 2.0 * scores - 1.0)  # +1 for a pass, -1 for a fail
    mixed = 0
    for g in torch.unique(seen["group_ids"]):
        idx = (seen["group_ids"] == g).nonzero().squeeze(-1)
        expected = hand_nu(seen["features"][idx].double().tolist(), scores[idx].tolist())
        assert seen["nu"][idx].tolist() == pytest.approx(expected, rel=1e-4, abs=1e-5)
        mixed += len(set(scores[idx].tolist())) > 1
    assert mixed >= 1  # at least one group where the signed weights differ from the unsigned ones
    assert metrics["g2rl/nu_mean"] == pytest.approx(float(seen["nu"].mean()), rel=1e-6)
