"""Groups of rows sharing a prompt: one prefill per distinct prompt in generation, and one prompt
forward per group in the training log-probs, with the same values and gradients as the plain path."""

import pytest
import torch

from worldsmith import envs
from worldsmith.policy.backend import SamplingParams
from worldsmith.policy.hf_backend import (
    HFBackend,
    grouped_sequence_logprobs,
    sequence_logprobs,
    shares_prompts,
)
from worldsmith.policy.model import LoraOptions, TinyModelConfig, apply_lora, build_tiny_model

ENV = envs.get("arithmetic_chain")
DISTINCT = [ENV.sample(envs.split_seed("eval", i), 0.4 * i).prompt for i in range(3)] + ["ab c"]
GROUP = 4
GROUPED = [p for p in DISTINCT for _ in range(GROUP)]


def _stop_chars(tok, chars="aeio"):
    return [tok.eos_token_id, *(tok.convert_tokens_to_ids(c) for c in chars)]


def _rollouts(model, tok, max_new_tokens=12, seed=0):
    backend = HFBackend(model, tok, eos_ids=_stop_chars(tok))
    return backend.generate(GROUPED, SamplingParams(max_new_tokens=max_new_tokens, temperature=1.0, seed=seed))


def _logp_and_grads(model, r, grouped, temperature=1.0, chunk=None):
    model.zero_grad(set_to_none=True)
    args = (r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask)
    if grouped:
        logp = grouped_sequence_logprobs(model, *args, group_size=GROUP, temperature=temperature, chunk=chunk)
    else:
        logp = sequence_logprobs(model, *args, temperature=temperature, chunk=chunk)
    weights = torch.linspace(-1.0, 1.0, logp.numel()).reshape(logp.shape)  # a loss that uses every token
    (torch.exp(logp - logp.detach()) * weights * r.completion_mask).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return logp.detach(), grads


def _assert_same(model, r, **kw):
    plain, plain_grads = _logp_and_grads(model, r, grouped=False, **kw)
    shared, shared_grads = _logp_and_grads(model, r, grouped=True, **kw)
    torch.testing.assert_close(shared, plain, rtol=0, atol=1e-5)
    assert shared_grads.keys() == plain_grads.keys()
    for name, g in plain_grads.items():
        assert g.abs().sum() > 0, name
        torch.testing.assert_close(shared_grads[name], g, rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_grouped_logprobs_and_gradients_match_the_plain_path(tok, arch):
    model = build_tiny_model(tok, TinyModelConfig(arch=arch), seed=1)
    r = _rollouts(model, tok)
    assert len(set(r.completion_mask.sum(1).tolist())) > 2  # ragged completions
    assert len(set(r.prompt_mask.sum(1).tolist())) > 2  # and left padding of different widths
    model.train()
    _assert_same(model, r)
    _assert_same(model, r, temperature=0.7, chunk=3)


def test_grouped_logprobs_through_lora_and_a_ddp_style_wrapper(tok, tiny):
    r = _rollouts(tiny, tok, max_new_tokens=6)
    model = apply_lora(tiny, LoraOptions(r=4))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    model.train()
    _assert_same(model, r)

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, **kwargs):
            return self.module(**kwargs)

    args = (r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask)
    with torch.no_grad():
        wrapped = grouped_sequence_logprobs(Wrapper(model), *args, group_size=GROUP)
        torch.testing.assert_close(wrapped, sequence_logprobs(model, *args), rtol=0, atol=1e-5)


def test_grouped_logprobs_edge_cases(tok, tiny):
    r = _rollouts(tiny, tok)
    args = (r.prompt_ids, r.prompt_mask)
    with torch.no_grad():
        one = grouped_sequence_logprobs(tiny, *args, r.completion_ids[:, :1], r.completion_mask[:, :1], GROUP)
        torch.testing.assert_close(one, sequence_logprobs(tiny, *args, r.completion_ids[:, :1],
                                                          r.completion_mask[:, :1]), rtol=0, atol=1e-5)
        empty = grouped_sequence_logprobs(tiny, *args, r.completion_ids[:, :0], r.completion_mask[:, :0], GROUP)
        assert empty.shape == (len(GROUPED), 0)
        singles = grouped_sequence_logprobs(tiny, *args, r.completion_ids, r.completion_mask, 1)
        torch.testing.assert_close(singles, sequence_logprobs(tiny, *args, r.completion_ids, r.completion_mask))
    assert shares_prompts(r.prompt_ids, r.prompt_mask, GROUP)
    assert shares_prompts(r.prompt_ids, r.prompt_mask, 2)
    assert not shares_prompts(r.prompt_ids, r.prompt_mask, 2 * GROUP)
    assert not shares_prompts(r.prompt_ids, r.prompt_mask, 3)
    with pytest.raises(ValueError):
        grouped_sequence_logprobs(tiny, *args, r.completion_ids, r.completion_mask, 2 * GROUP)
    with pytest.raises(ValueError):
        grouped_sequence_logprobs(tiny, *args, r.completion_ids, r.completion_mask, 3)


def test_generation_prefills_each_distinct_prompt_once(tok, tiny):
    calls = []
    hook = tiny.register_forward_pre_hook(lambda _m, _a, kw: calls.append(kw["input_ids"].shape), with_kwargs=True)
    try:
        HFBackend(tiny, tok).generate(GROUPED, SamplingParams(max_new_tokens=4, seed=0))
        HFBackend(tiny, tok, share_prompts=False).generate(GROUPED, SamplingParams(max_new_tokens=4, seed=0))
    finally:
        hook.remove()
    prefills = [s for s in calls if s[1] > 1]
    assert [s[0] for s in prefills] == [len(DISTINCT), len(GROUPED)]


@pytest.mark.parametrize("batch_size", [64, 6])
def test_shared_prefill_gives_the_same_rollouts(tok, tiny, batch_size):
    greedy = SamplingParams(max_new_tokens=12, temperature=0)
    shared = HFBackend(tiny, tok, batch_size=batch_size).generate(GROUPED, greedy)
    plain = HFBackend(tiny, tok, batch_size=batch_size, share_prompts=False).generate(GROUPED, greedy)
    assert shared.texts == plain.texts and torch.equal(shared.completion_ids, plain.completion_ids)
    torch.testing.assert_close(shared.behaviour_logp, plain.behaviour_logp, rtol=0, atol=1e-5)
    assert torch.equal(shared.prompt_ids, plain.prompt_ids)

    sampled = SamplingParams(max_new_tokens=12, temperature=1.0, seed=7)
    backend = HFBackend(tiny, tok, batch_size=batch_size, eos_ids=_stop_chars(tok))
    a, b = backend.generate(GROUPED, sampled), backend.generate(GROUPED, sampled)
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.behaviour_logp, b.behaviour_logp)
    assert len(set(a.texts)) > len(DISTINCT)  # the members of a group still differ
    with torch.no_grad():
        again = sequence_logprobs(tiny, a.prompt_ids, a.prompt_mask, a.completion_ids, a.completion_mask)
    torch.testing.assert_close(again, a.behaviour_logp, rtol=0, atol=1e-4)
