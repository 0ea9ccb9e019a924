import math

import pytest
import torch

from worldsmith import envs
from worldsmith.policy.backend import GenerationBackend, SamplingParams
from worldsmith.policy.hf_backend import HFBackend, sampling_logprobs, sequence_logprobs
from worldsmith.policy.model import LoraOptions, TinyModelConfig, apply_lora, build_tiny_model

ENV = envs.get("arithmetic_chain")
PROMPTS = [ENV.sample(envs.split_seed("eval", i), 0.3 * (i % 3)).prompt for i in range(12)] + ["x", "ab c"]


def _stop_chars(tok, chars="aeio"):
    """EOS ids that a random model hits at varied points, so rows finish at different steps."""
    return [tok.eos_token_id, *(tok.convert_tokens_to_ids(c) for c in chars)]


def _recompute(model, r, temperature=1.0, **kw):
    with torch.no_grad():
        return sequence_logprobs(
            model, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask, temperature, **kw
        )


def test_is_a_generation_backend(tok, tiny):
    assert isinstance(HFBackend(tiny, tok), GenerationBackend)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_behaviour_logp_matches_sequence_logprobs_at_temperature_one(tok, arch):
    model = build_tiny_model(tok, TinyModelConfig(arch=arch), seed=2)
    backend = HFBackend(model, tok, batch_size=5, eos_ids=_stop_chars(tok))
    r = backend.generate(PROMPTS, SamplingParams(max_new_tokens=24, temperature=1.0, seed=0))
    lengths = r.completion_mask.sum(1)
    assert len(set(lengths.tolist())) > 2  # rows did stop at different steps
    assert r.behaviour_logp.dtype == torch.float32
    recomputed = _recompute(model, r)
    assert torch.allclose(recomputed, r.behaviour_logp, atol=1e-4)
    assert (r.behaviour_logp[~r.completion_mask] == 0).all()
    assert (r.behaviour_logp[r.completion_mask] < 0).all()


def test_behaviour_logp_at_other_temperatures(tok, tiny):
    backend = HFBackend(tiny, tok)
    r = backend.generate(PROMPTS, SamplingParams(max_new_tokens=12, temperature=0.6, seed=1))
    assert torch.allclose(_recompute(tiny, r, 0.6), r.behaviour_logp, atol=1e-4)
    assert not torch.allclose(_recompute(tiny, r, 1.0), r.behaviour_logp, atol=1e-2)


def test_filters_raise_the_probability_of_what_they_keep(tok, tiny):
    backend = HFBackend(tiny, tok)
    for params in (
        SamplingParams(max_new_tokens=12, temperature=1.0, top_k=5, seed=3),
        SamplingParams(max_new_tokens=12, temperature=1.0, top_p=0.5, seed=3),
    ):
        r = backend.generate(PROMPTS, params)
        full = _recompute(tiny, r)
        m = r.completion_mask
        assert (r.behaviour_logp[m] >= full[m] - 1e-5).all()
        assert (r.behaviour_logp[m] > full[m] + 1e-3).float().mean() > 0.9


def test_sampling_logprobs_top_k_and_top_p_exactly():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()

    def lp(**kw):
        return sampling_logprobs(logits, SamplingParams(**kw)).exp()

    assert torch.allclose(lp(), probs)
    assert torch.allclose(lp(top_k=2), torch.tensor([[0.625, 0.375, 0, 0]]))
    assert torch.allclose(lp(top_p=0.7), torch.tensor([[0.625, 0.375, 0, 0]]))
    assert torch.allclose(lp(top_p=0.85), torch.tensor([[0.5, 0.3, 0.15, 0]]) / 0.95)
    assert torch.allclose(lp(top_p=0.2), torch.tensor([[1.0, 0, 0, 0]]))
    assert torch.allclose(lp(temperature=0), probs)  # greedy reports the temperature-1 policy
    hot = lp(temperature=2.0)
    assert torch.allclose(hot, probs.sqrt() / probs.sqrt().sum())


def test_greedy_is_deterministic_and_top_k_one_equals_greedy(tok, tiny):
    backend = HFBackend(tiny, tok, batch_size=4)
    greedy = SamplingParams(max_new_tokens=16, temperature=0)
    a, b = backend.generate(PROMPTS, greedy), backend.generate(PROMPTS, greedy)
    assert torch.equal(a.completion_ids, b.completion_ids) and a.texts == b.texts
    assert torch.allclose(_recompute(tiny, a), a.behaviour_logp, atol=1e-4)
    k1 = backend.generate(PROMPTS, SamplingParams(max_new_tokens=16, temperature=1.3, top_k=1, seed=5))
    assert torch.equal(k1.completion_ids, a.completion_ids) and k1.texts == a.texts
    assert k1.behaviour_logp.abs().max() < 1e-6  # a one-token distribution


def test_fixed_seed_reproduces_samples(tok, tiny):
    backend = HFBackend(tiny, tok)
    p = SamplingParams(max_new_tokens=16, temperature=1.0, seed=11)
    a, b = backend.generate(PROMPTS, p), backend.generate(PROMPTS, p)
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.behaviour_logp, b.behaviour_logp)
    c = backend.generate(PROMPTS, SamplingParams(max_new_tokens=16, temperature=1.0, seed=12))
    assert not torch.equal(a.completion_ids, c.completion_ids)


def test_batching_and_left_padding_do_not_change_results(tok, tiny):
    greedy = SamplingParams(max_new_tokens=10, temperature=0)
    together = HFBackend(tiny, tok, batch_size=64).generate(PROMPTS, greedy)
    for i in (0, 5, len(PROMPTS) - 1):
        alone = HFBackend(tiny, tok).generate([PROMPTS[i]], greedy)
        assert alone.texts[0] == together.texts[i]
        n = alone.completion_ids.shape[1]
        assert torch.allclose(alone.behaviour_logp[0], together.behaviour_logp[i, :n], atol=1e-5)


def test_eos_stops_each_sequence_and_finished_rows_leave_the_batch(tok, tiny):
    eos = _stop_chars(tok)
    backend = HFBackend(tiny, tok, eos_ids=eos)
    rows_seen = []
    hook = tiny.register_forward_pre_hook(
        lambda _m, _a, kw: rows_seen.append(kw["input_ids"].shape), with_kwargs=True
    )
    try:
        r = backend.generate(PROMPTS, SamplingParams(max_new_tokens=30, temperature=1.0, seed=4))
    finally:
        hook.remove()
    lengths = r.completion_mask.sum(1).tolist()
    assert r.completion_ids.shape[1] == max(lengths)
    for i, n in enumerate(lengths):
        ids = r.completion_ids[i, :n].tolist()
        assert r.completion_mask[i, :n].all() and not r.completion_mask[i, n:].any()
        stops = [t for t in ids if t in eos]
        if r.finished[i]:
            assert stops == [ids[-1]]  # exactly one stop token, the last one
        else:
            assert n == 30 and not stops
        assert (r.completion_ids[i, n:] == tok.pad_token_id).all()
    assert r.finished.any() and len(set(lengths)) > 2
    decode_steps = rows_seen[1:]
    batch = [s[0] for s in decode_steps]
    assert all(s[1] == 1 for s in decode_steps)
    assert batch == sorted(batch, reverse=True) and batch[-1] < len(PROMPTS)
    # one decode row per token after the first, per sequence: no compute spent on finished rows
    assert sum(batch) == sum(n - 1 for n in lengths)


def test_texts_drop_specials_but_keep_answer_tags(tok, tiny):
    answer = tok.convert_tokens_to_ids(["<answer>", "4", "2", "</answer>"])
    script = [*answer, tok.bos_token_id, tok.eos_token_id]

    def force(logits):
        step = force.calls
        force.calls += 1
        out = torch.full_like(logits, float("-inf"))
        out[:, script[min(step, len(script) - 1)]] = 0.0
        return out

    force.calls = 0
    backend = HFBackend(tiny, tok, logits_processor=force)
    r = backend.generate(["p1", "p2"], SamplingParams(max_new_tokens=20, temperature=1.0, seed=0))
    assert r.texts == ["<answer>42</answer>"] * 2
    assert r.completion_mask.sum(1).tolist() == [6, 6] and r.finished.all()
    assert ENV.grade({"start": 40, "ops": [["+", 2]]}, r.texts[0]).passed
    # the processed distribution put all mass on one token: log-prob 0
    assert r.behaviour_logp.abs().max() < 1e-6


def test_logits_processor_restricting_to_k_tokens_samples_uniformly(tok, tiny):
    allowed = torch.tensor(tok.convert_tokens_to_ids(list("0123")))

    def only_digits(logits):
        out = torch.full_like(logits, float("-inf"))
        out[:, allowed] = 0.0
        return out

    backend = HFBackend(tiny, tok)
    r = backend.generate(PROMPTS, SamplingParams(max_new_tokens=8, seed=0), logits_processor=only_digits)
    assert all(set(t) <= set("0123") and len(t) == 8 for t in r.texts)
    assert torch.allclose(r.behaviour_logp, torch.full_like(r.behaviour_logp, -math.log(4)))
    plain = backend.generate(PROMPTS, SamplingParams(max_new_tokens=8, seed=0))
    assert not all(set(t) <= set("0123") for t in plain.texts)  # the override was per call


def test_generation_restores_training_mode(tok, tiny):
    tiny.train()
    HFBackend(tiny, tok).generate(["x"], SamplingParams(max_new_tokens=2))
    assert tiny.training


def test_sequence_logprobs_is_differentiable_on_rollout_tensors(tok, tiny):
    r = HFBackend(tiny, tok).generate(PROMPTS[:4], SamplingParams(max_new_tokens=8, seed=0))
    logp = sequence_logprobs(tiny, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask)
    ratio = torch.exp(logp - r.behaviour_logp)
    loss = -(ratio * r.completion_mask).sum()
    loss.backward()
    grads = [p.grad for p in tiny.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_sequence_logprobs_chunking_and_hidden_states(tok, tiny):
    r = HFBackend(tiny, tok).generate(PROMPTS, SamplingParams(max_new_tokens=10, seed=0))
    whole = _recompute(tiny, r)
    assert torch.allclose(_recompute(tiny, r, chunk=3), whole, atol=1e-6)
    with torch.no_grad():
        logp, hidden = sequence_logprobs(
            tiny, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask, return_hidden=True
        )
        assert hidden.shape == (*r.completion_ids.shape, tiny.config.hidden_size)
        again = torch.log_softmax(tiny.lm_head(hidden), -1).gather(-1, r.completion_ids[..., None])[..., 0]
    assert torch.allclose(logp, whole, atol=1e-6)
    m = r.completion_mask
    assert torch.allclose(again[m], logp[m], atol=1e-5)


def test_lora_policy_generates_and_recomputes(tok, tiny):
    model = apply_lora(tiny, LoraOptions(r=4))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    r = HFBackend(model, tok).generate(PROMPTS, SamplingParams(max_new_tokens=10, seed=0))
    assert torch.allclose(_recompute(model, r), r.behaviour_logp, atol=1e-4)


def test_step_spans_are_complete_lines(tok, tiny):
    backend = HFBackend(tiny, tok)
    ids = tok("7\n21\n\n16\n<answer>16</answer>", add_special_tokens=False)["input_ids"]
    assert backend.step_spans(ids) == [(0, 2), (2, 5), (6, 9)]
    assert [backend.decode(ids[a:b]) for a, b in backend.step_spans(ids)] == ["7\n", "21\n", "16\n"]


def test_rejects_empty_prompt_list(tok, tiny):
    with pytest.raises(ValueError):
        HFBackend(tiny, tok).generate([], SamplingParams())


class _Wrapper(torch.nn.Module):
    """Stands in for DDP: the model sits at ``.module`` and forward passes everything through."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, **kwargs):
        return self.module(**kwargs)


def test_sequence_logprobs_through_a_ddp_style_wrapper(tok, tiny):
    r = HFBackend(tiny, tok).generate(PROMPTS[:3], SamplingParams(max_new_tokens=6, seed=0))
    with torch.no_grad():
        logp, hidden = sequence_logprobs(
            _Wrapper(tiny),
            r.prompt_ids,
            r.prompt_mask,
            r.completion_ids,
            r.completion_mask,
            return_hidden=True,
        )
    assert torch.allclose(logp, _recompute(tiny, r), atol=1e-6)
    assert hidden.shape == (*r.completion_ids.shape, tiny.config.hidden_size)
