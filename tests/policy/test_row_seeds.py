"""Per-row sampling seeds: a row's completion depends on its seed alone, not on its neighbours."""

import pytest
import torch

from worldsmith.policy.backend import SamplingParams
from worldsmith.policy.hf_backend import HFBackend, _draw

PROMPTS = ["Compute 3 + 4 * 2.", "What is 17 - 9?", "Q: 12 * 3 = ?", "Sum 1 2 3 4."]


def _texts(backend, prompts, seeds, **kw):
    params = SamplingParams(max_new_tokens=12, temperature=1.0, row_seeds=tuple(seeds), **kw)
    return backend.generate(prompts, params).texts


def test_a_row_draws_the_same_completion_whatever_else_is_in_the_call(tiny, tok):
    seeds = [11, 22, 33, 44]
    together = _texts(HFBackend(tiny, tok, batch_size=64), PROMPTS, seeds)
    one_at_a_time = _texts(HFBackend(tiny, tok, batch_size=1), PROMPTS, seeds)
    assert together == one_at_a_time
    alone = [_texts(HFBackend(tiny, tok), [p], [s])[0] for p, s in zip(PROMPTS[1:3], seeds[1:3])]
    assert alone == together[1:3]
    # the same prompt twice with two seeds: two draws (a group), each reproducible
    pair = _texts(HFBackend(tiny, tok), [PROMPTS[0]] * 2, [5, 6])
    assert pair[0] != pair[1]
    assert pair == _texts(HFBackend(tiny, tok), [PROMPTS[0]] * 2, [5, 6])


def test_for_rows_keeps_each_rows_seed():
    params = SamplingParams(row_seeds=(1, 2, 3))
    assert params.for_rows([2, 0]).row_seeds == (3, 1)
    assert SamplingParams(seed=4).for_rows([0]).seed == 4


def test_a_row_seed_count_that_does_not_match_is_refused(tiny, tok):
    with pytest.raises(ValueError, match="2 seeds for 3 prompts"):
        _texts(HFBackend(tiny, tok), PROMPTS[:3], [1, 2])


def test_inverse_cdf_draws_follow_the_distribution_and_skip_impossible_tokens():
    logp = torch.log(torch.tensor([[0.0, 0.25, 0.0, 0.75]])).expand(4000, 4)
    u = torch.rand(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tokens, lp = _draw(logp, SamplingParams(), None, u)
    assert set(tokens.tolist()) == {1, 3}
    assert float((tokens == 3).double().mean()) == pytest.approx(0.75, abs=0.03)
    edge, _ = _draw(logp[:2], SamplingParams(), None, torch.tensor([0.0, 1.0 - 1e-12], dtype=torch.float64))
    assert edge.tolist() == [1, 3]
    assert torch.equal(lp, logp.gather(-1, tokens[:, None]).squeeze(-1))
