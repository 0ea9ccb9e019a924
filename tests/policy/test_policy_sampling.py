"""CUTS: the kept set against hand-computed cases, uniformity of the draw, the HF backend hook."""

import math

import pytest
import torch

from worldsmith.policy.backend import SamplingParams, merge_rollouts
from worldsmith.policy.hf_backend import HFBackend, sequence_logprobs
from worldsmith.policy.sampling import CUTS, cuts_logits, cuts_mask, cuts_sample


def logits_of(probs):
    return torch.log(torch.tensor([probs], dtype=torch.float64)).float()


@pytest.mark.parametrize(
    ("probs", "k", "delta", "kept"),
    [
        # top-5 = {0..4}; p > 0.03 keeps {0, 1, 2, 3}; token 4 (0.02) and 5 (0.01) are out
        ([0.5, 0.3, 0.15, 0.04, 0.02, 0.01], 5, 0.03, [0, 1, 2, 3]),
        # k = 2 caps the set even though four tokens pass delta
        ([0.5, 0.3, 0.15, 0.04, 0.02, 0.01], 2, 0.03, [0, 1]),
        # strictly greater than delta: exactly 0.25 does not pass delta = 0.25
        ([0.4, 0.25, 0.2, 0.15], 5, 0.25, [0]),
        # a confident model: |S_t| = 1, the step is deterministic
        ([0.97, 0.01, 0.01, 0.01], 5, 0.03, [0]),
        # nothing passes delta: fall back to the whole top-k
        ([0.2] * 5 + [0.0], 3, 0.5, None),
        # the order inside the vocabulary does not matter
        ([0.01, 0.6, 0.02, 0.37], 5, 0.03, [1, 3]),
    ],
)
def test_cuts_mask_is_the_constrained_top_k(probs, k, delta, kept):
    mask = cuts_mask(logits_of(probs), k=k, delta=delta)[0]
    if kept is None:  # five tied tokens: any 3 of them, never the zero-probability one
        assert int(mask.sum()) == 3 and not mask[5]
    else:
        assert mask.nonzero().squeeze(-1).tolist() == kept


def test_cuts_mask_uses_temperature_one_probabilities_and_batches():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
    p = torch.softmax(logits[0], -1)  # 0.644, 0.237, 0.087, 0.032
    mask = cuts_mask(logits, k=5, delta=0.05)
    assert mask[0].tolist() == (p > 0.05).tolist() == [True, True, True, False]
    assert mask[1].all()  # four tokens at 0.25 each
    assert cuts_mask(logits[None], k=5, delta=0.05).shape == (1, 2, 4)  # any leading dims


def test_cuts_logits_are_finite_and_uniform_in_fp16():
    logits = logits_of([0.5, 0.3, 0.15, 0.04, 0.01]).half()
    out = cuts_logits(logits)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    p = torch.softmax(out.float(), -1)[0]
    assert p[:4].tolist() == pytest.approx([0.25] * 4) and p[4] == 0


def test_cuts_draw_is_uniform_over_the_kept_set():
    # S_t = {0, 1, 2}; the policy's own preference (0.6 / 0.25 / 0.1) must be discarded
    n = 30_000
    logits = logits_of([0.6, 0.25, 0.1, 0.03, 0.02]).expand(n, -1)
    gen = torch.Generator().manual_seed(0)
    tokens, logp = cuts_sample(logits, step=5, generator=gen)
    counts = torch.bincount(tokens, minlength=5).double()
    assert counts[3:].sum() == 0
    expected = n / 3
    chi2 = float(((counts[:3] - expected) ** 2 / expected).sum())
    assert chi2 < 13.8  # chi-square, 2 degrees of freedom, p = 0.001
    assert torch.allclose(logp, torch.full((n,), -math.log(3)))
    # under the policy, token 0 would be drawn 6x as often as token 2
    assert counts[0] / counts[2] < 1.1


def test_before_warmup_the_draw_is_the_policy():
    n = 20_000
    logits = logits_of([0.6, 0.25, 0.1, 0.03, 0.02]).expand(n, -1)
    tokens, logp = CUTS(warmup=5).sample(logits, step=4, generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(tokens, minlength=5).double() / n
    assert freq.tolist() == pytest.approx([0.6, 0.25, 0.1, 0.03, 0.02], abs=0.015)
    assert torch.allclose(logp, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0])


def test_cuts_processor_leaves_warmup_logits_alone():
    op = CUTS(k=2, delta=0.0, warmup=3)
    z = torch.randn(4, 10)
    assert op(z, step=2) is z
    assert (op(z, step=3) == 0).sum(-1).tolist() == [2] * 4
    with pytest.raises(ValueError):
        CUTS(k=0)


def test_hf_backend_passes_the_step_and_cuts_tokens_are_uniform_draws_from_s_t(tok, tiny):
    op = CUTS(k=5, delta=0.03, warmup=3)
    prompts = ["abc", "hello world", "x", "12+7="] * 4
    backend = HFBackend(tiny, tok)
    r = backend.generate(prompts, SamplingParams(max_new_tokens=10, seed=0), logits_processor=op)
    with torch.no_grad():
        policy_logp, hidden = sequence_logprobs(tiny, r.prompt_ids, r.prompt_mask, r.completion_ids,
                                                r.completion_mask, return_hidden=True)
        logits = tiny.lm_head(hidden)  # (B, T, V) raw logits at each position
    m = r.completion_mask
    # warm-up tokens: ordinary sampling, behaviour = policy log-prob
    assert torch.allclose(r.behaviour_logp[:, :3][m[:, :3]], policy_logp[:, :3][m[:, :3]], atol=1e-5)
    # afterwards: the token lies in S_t and its behaviour log-prob is -log |S_t|
    keep = cuts_mask(logits[:, 3:], op.k, op.delta)  # (B, T-3, V)
    later = m[:, 3:]
    in_set = keep.gather(-1, r.completion_ids[:, 3:, None])[..., 0]
    assert in_set[later].all()
    sizes = keep.sum(-1).float()
    assert torch.allclose(r.behaviour_logp[:, 3:][later], -sizes.log()[later], atol=1e-6)
    assert (sizes[later] > 1).any()


def test_a_processor_without_a_step_parameter_still_works(tok, tiny):
    calls = []
    z = tok.convert_tokens_to_ids("z")

    def only_z(logits):  # (B, V) -> (B, V): every other token impossible, end-of-sequence included
        calls.append(logits.shape[0])
        forced = torch.full_like(logits, float("-inf"))
        forced[:, z] = 0.0
        return forced

    r = HFBackend(tiny, tok, logits_processor=only_z).generate(["ab", "c"], SamplingParams(max_new_tokens=3, seed=0))
    assert calls == [2, 2, 2]  # called at every decoding step, on the rows still decoding
    assert r.texts == ["zzz", "zzz"]
    assert r.completion_mask.all() and (r.completion_ids == z).all()
    # the behaviour log-prob is that of the processed distribution: log 1 = 0
    assert torch.equal(r.behaviour_logp, torch.zeros_like(r.behaviour_logp))


def test_merge_rollouts_restores_group_order_and_repads(tok, tiny):
    backend = HFBackend(tiny, tok)
    a = backend.generate(["a", "a much longer prompt"], SamplingParams(max_new_tokens=4, seed=0))
    b = backend.generate(["bb"], SamplingParams(max_new_tokens=7, seed=1))
    merged = merge_rollouts([a, b], [[0, 2], [1]], pad_id=backend.pad_id)
    assert merged.texts == [a.texts[0], b.texts[0], a.texts[1]]
    assert merged.prompt_ids.shape[1] == a.prompt_ids.shape[1]
    assert merged.completion_ids.shape[1] == max(a.completion_ids.shape[1], b.completion_ids.shape[1])
    assert merged.finished.tolist() == [a.finished[0], b.finished[0], a.finished[1]]
    assert merged.step_spans == [a.step_spans[0], b.step_spans[0], a.step_spans[1]]
    # recomputed log-probs do not depend on the extra padding
    with torch.no_grad():
        lp_b = sequence_logprobs(tiny, b.prompt_ids, b.prompt_mask, b.completion_ids, b.completion_mask)
        lp_m = sequence_logprobs(tiny, merged.prompt_ids, merged.prompt_mask, merged.completion_ids,
                                 merged.completion_mask)
    w = b.completion_ids.shape[1]
    assert torch.allclose(lp_m[1, :w], lp_b[0], atol=1e-5)
    assert torch.equal(merged.behaviour_logp[1, :w], b.behaviour_logp[0])
    with pytest.raises(ValueError):
        merge_rollouts([a, b], [[0, 1], [1]])
