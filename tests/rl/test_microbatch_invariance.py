"""The loss and its gradient do not depend on how a minibatch is split into microbatches.

One real rollout batch of the tiny model (completions of 1 to 40 tokens in the same minibatch) goes
through the real ``Trainer.update`` with microbatch 1, 3, 8 and the whole minibatch, for every
aggregation; the gradient handed to the optimizer and the logged loss must agree to 1e-6 relative.
Microbatch 8 = two whole groups of 4 sharing a prompt takes the grouped-forward path.
"""

import copy

import pytest
import torch

from worldsmith import Environment, envs
from worldsmith.configuration import build
from worldsmith.envs.contract import Score
from worldsmith.policy.model import build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl.config import RunConfig
from worldsmith.rl.trainer import PhaseTimer, Trainer


class LengthReward(Environment):
    """Rewards that differ within every group (and correlate with length, where a per-microbatch
    normaliser biases the loss most)."""

    name = "test_length_reward"
    description = "Any text; longer is better."

    def generate(self, rng, difficulty):
        return {"n": rng.randint(0, 9)}

    def solve(self, instance):
        return "a"

    def render(self, instance):
        return f"Say {instance['n']}"

    def score(self, instance, answer):
        return 1.0

    def grade(self, instance, response):
        return Score(min(1.0, len(response) / 40), False, "length")


@pytest.fixture(autouse=True, scope="module")
def registered():
    envs.register(LengthReward)
    yield
    envs.registry.unregister(LengthReward.name)


def config(aggregation, norm_length, microbatch, kl_coef=0.0):
    return build(RunConfig, {
        "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
        "pool": [{"name": LengthReward.name}],
        "sampling": {"max_new_tokens": 40, "temperature": 1.0},
        "optim": {"lr": 1e-3, "grad_clip": None},
        "train": {"steps": 1, "prompts_per_step": 4, "group_size": 4, "minibatch_size": 16,
                  "microbatch_size": microbatch, "seed": 5,
                  "loss_cfg": {"aggregation": aggregation, "norm_length": norm_length, "kl_coef": kl_coef}},
    })


@pytest.fixture(scope="module")
def start():
    tok = build_char_tokenizer()
    cfg = config("token", None, 16)
    model = build_tiny_model(tok, cfg.model.tiny, seed=0)
    trainer = Trainer(cfg, copy.deepcopy(model), tok)
    torch.manual_seed(0)
    batch, _ = trainer.collect(0, PhaseTimer())
    # an untrained model rarely stops early: cut completions to lengths from 1 to 40 tokens (the
    # tokens after the cut leave the mask, as after an end-of-sequence token)
    mask = batch.rollouts.completion_mask
    for row, keep in enumerate([1, 40, 3, 25, 2, 40, 7, 12, 40, 1, 33, 5, 18, 40, 2, 9]):
        mask[row, keep:] = False
    # group-normalised advantages sum to ~0, and so would the first step's loss: shift them so that
    # the loss itself is far from 0 and its comparison means something
    batch.advantages = batch.advantages + torch.linspace(0.2, 0.9, len(mask)).unsqueeze(1)
    return model, tok, batch


def gradient_and_loss(model, tok, batch, cfg, ref=None):
    trainer = Trainer(cfg, copy.deepcopy(model), tok, ref_model=ref)
    captured = []
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    trainer.optimizer.step = lambda *a, **k: captured.append(
        torch.cat([p.grad.detach().flatten().clone() for p in params]))
    metrics = trainer.update(batch, 0, PhaseTimer())
    assert len(captured) == 1
    return captured[0], metrics


def test_the_batch_mixes_very_different_lengths(start):
    _, _, batch = start
    lengths = batch.rollouts.completion_mask.sum(1)
    assert int(lengths.min()) == 1 and int(lengths.max()) >= 30, lengths.tolist()


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
@pytest.mark.parametrize("aggregation,norm_length", [("token", None), ("sequence", None),
                                                      ("token_sum_norm", None), ("token_sum_norm", 48)])
def test_loss_and_gradient_agree_for_every_microbatch_size(start, aggregation, norm_length):
    model, tok, batch = start
    whole_grad, whole = gradient_and_loss(model, tok, batch, config(aggregation, norm_length, 16))
    assert whole_grad.norm() > 0
    for microbatch in (1, 3, 8):
        grad, metrics = gradient_and_loss(model, tok, batch, config(aggregation, norm_length, microbatch))
        rel = float((grad - whole_grad).norm() / whole_grad.norm())
        assert rel < 1e-6, (aggregation, norm_length, microbatch, rel)
        assert abs(whole["loss/loss"]) > 0.01
        assert metrics["loss/loss"] == pytest.approx(whole["loss/loss"], rel=1e-6)
        assert metrics["loss/n_tokens"] == whole["loss/n_tokens"]
        assert metrics["loss/clip_fraction"] == pytest.approx(whole["loss/clip_fraction"], abs=1e-9)


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_the_kl_term_is_normalised_over_the_minibatch_too(start):
    model, tok, batch = start
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.01 * torch.randn_like(p))
    from worldsmith.policy.hf_backend import sequence_logprobs

    r = batch.rollouts
    batch = copy.copy(batch)
    batch.ref_logp = sequence_logprobs(ref, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask)
    whole_grad, whole = gradient_and_loss(model, tok, batch, config("token", None, 16, kl_coef=0.5), ref)
    grad, metrics = gradient_and_loss(model, tok, batch, config("token", None, 3, kl_coef=0.5), ref)
    assert float((grad - whole_grad).norm() / whole_grad.norm()) < 1e-6
    assert metrics["loss/kl_loss"] == pytest.approx(whole["loss/kl_loss"], rel=1e-6)
