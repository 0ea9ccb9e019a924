"""G2RL (spec §5.8): features equal autograd, novelty and weights by hand, clipping, the map's ordering."""

import math

import pytest
import torch

from worldsmith.rl.advantages import get_advantage
from worldsmith.rl.g2rl import (
    G2RLConfig,
    g2rl_features,
    g2rl_metrics,
    g2rl_novelty,
    g2rl_shape,
    g2rl_weights,
)
from worldsmith.rl.head import head_statistics

EPS = 1e-6


def toy_head(seed=0, B=3, T=4, d=5, V=7, bias=True):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, d, generator=g, dtype=torch.float64)
    weight = torch.randn(V, d, generator=g, dtype=torch.float64)
    b = torch.randn(V, generator=g, dtype=torch.float64) if bias else None
    tokens = torch.randint(0, V, (B, T), generator=g)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)[:B, :T]
    return hidden, weight, b, tokens, mask


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("bias", [True, False])
def test_phi_is_the_autograd_gradient_of_log_p_times_temperature(temperature, bias):
    hidden, weight, b, tokens, mask = toy_head(bias=bias)
    h = hidden.clone().requires_grad_(True)
    logits = h @ weight.T + (b if b is not None else 0.0)  # (B, T, V)
    logp = torch.log_softmax(logits / temperature, -1).gather(-1, tokens[..., None])[..., 0]  # (B, T)
    (logp * mask).sum().backward()  # each h_t only reaches its own log p(y_t)
    grads = h.grad  # (B, T, d): d log p(y_t) / d h_t at every valid t, 0 elsewhere
    expected = temperature * grads.sum(1) / (mask.sum(1, keepdim=True) + EPS)  # token mean of phi_t
    phi = g2rl_features(hidden, weight, tokens, mask, bias=b, temperature=temperature, eps=EPS)
    assert phi.dtype == torch.float32 and phi.shape == (3, 5)
    torch.testing.assert_close(phi.double(), expected, rtol=0, atol=1e-5)


def test_phi_token_by_token_is_a_row_gather_minus_the_mean_row():
    hidden, weight, _, tokens, mask = toy_head(bias=False)
    one = torch.zeros_like(mask)
    one[0, 1] = True  # a single valid token: Phi = phi_t / (1 + eps)
    p = torch.softmax(hidden[0, 1] @ weight.T, -1)
    phi_t = weight[tokens[0, 1]] - p @ weight
    phi = g2rl_features(hidden, weight, tokens, one, eps=EPS)
    torch.testing.assert_close(phi[0].double(), phi_t / (1 + EPS), rtol=0, atol=1e-6)
    assert phi[1:].abs().max() == 0  # no valid token: Phi = 0


def test_chunking_and_dtype_do_not_change_phi_and_entropy_matches_the_distribution():
    hidden, weight, b, tokens, mask = toy_head()
    whole, ent = head_statistics(hidden, weight, tokens, mask, bias=b, chunk=1024, entropy=True)
    bits, ent2 = head_statistics(hidden.half(), weight.half(), tokens, mask, bias=b, chunk=1, entropy=True)
    torch.testing.assert_close(bits, whole, rtol=0, atol=5e-2)  # fp16 inputs, fp32 maths
    torch.testing.assert_close(head_statistics(hidden, weight, tokens, mask, bias=b, chunk=2)[0], whole)
    logp = torch.log_softmax(hidden @ weight.T + b, -1)
    expected = torch.where(mask, -(logp.exp() * logp).sum(-1), 0.0)
    torch.testing.assert_close(ent.double(), expected, rtol=0, atol=1e-5)


def test_weights_exclude_self_and_each_row_sums_to_one():
    r = torch.tensor([1.0, -1.0, 1.0, 0.5])
    w = g2rl_weights(r, eps=EPS)
    assert torch.all(w.diagonal() == 0)
    torch.testing.assert_close(w.sum(1), torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-6)
    e = torch.exp(r.double())
    assert w[1, 0].item() == pytest.approx(float(e[0] / (e[0] + e[2] + e[3] + EPS)), abs=1e-12)


def test_novelty_is_one_for_orthogonal_and_zero_for_identical_features():
    r = torch.tensor([1.0, 0.0, 1.0, 0.0])
    orthogonal = torch.eye(4) * torch.tensor([[3.0], [0.5], [1.0], [7.0]])  # any scale
    torch.testing.assert_close(g2rl_novelty(orthogonal, r, eps=EPS), torch.ones(4), rtol=0, atol=1e-6)
    identical = torch.tensor([[1.0, 2.0, -1.0]]).repeat(4, 1) * torch.tensor([[1.0], [2.0], [0.1], [5.0]])
    assert g2rl_novelty(identical, r, eps=EPS).abs().max() < 1e-5
    assert g2rl_novelty(torch.tensor([[1.0, 0.0]]), torch.tensor([1.0])).item() == 1.0  # a group of one


def test_novelty_by_hand_and_per_group():
    # Phi: (1, 0), (1, 1), (0, 1); cos^2: S12 = S23 = 1/2, S13 = 0; signed rewards 1, 1, -1
    feats = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    r = torch.tensor([1.0, 1.0, -1.0])
    e, ie = math.e, 1 / math.e
    s2 = (1 / ((1 + EPS) * (math.sqrt(2) + EPS))) ** 2  # S12^2 = S23^2, with eps in the norms
    expected = [1 - s2 * e / (e + ie + EPS), 1 - s2 * (e + ie) / (e + ie + EPS), 1 - s2 * e / (2 * e + EPS)]
    torch.testing.assert_close(g2rl_novelty(feats, r, eps=EPS).double(), torch.tensor(expected, dtype=torch.float64),
                               rtol=0, atol=1e-6)
    # two groups are scored independently: stacking another group changes nothing
    both = g2rl_novelty(torch.cat([feats, torch.eye(2, 2)[[0, 0]]]), torch.cat([r, torch.ones(2)]),
                        torch.tensor([0, 0, 0, 1, 1]), eps=EPS)
    torch.testing.assert_close(both[:3].double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-6)
    assert both[3:].abs().max() < 1e-5


def test_shaped_rewards_are_clipped_at_three():
    r = torch.tensor([1.0, 1.0, 0.0, 0.0])
    nu = torch.tensor([1.0, 0.0, 1.0, 0.0])  # min-max: nu~ = nu
    shaped = g2rl_shape(r, nu, torch.zeros(4, dtype=torch.long), G2RLConfig(lam=5.0))
    assert shaped.tolist() == [3.0, 1.0, -3.0, -1.0]  # +-6 clipped; unclipped values untouched
    assert g2rl_shape(r, nu, torch.zeros(4, dtype=torch.long), G2RLConfig(lam=1.5)).tolist() == [2.5, 1.0, -2.5, -1.0]


def _advantages(reward_map):
    # correct-novel, correct-redundant, incorrect-novel, incorrect-near-miss
    r = torch.tensor([1.0, 1.0, 0.0, 0.0])
    nu = torch.tensor([0.9, 0.1, 0.9, 0.1])
    groups = torch.zeros(4, dtype=torch.long)
    shaped = g2rl_shape(r, nu, groups, G2RLConfig(lam=1.0, reward_map=reward_map))
    return shaped, get_advantage("grpo")(shaped, torch.ones(4, 1, dtype=torch.bool), groups)[:, 0]


def test_default_map_follows_the_ordering_table_of_spec_5_6():
    shaped, adv = _advantages("multiplicative")
    assert shaped.tolist() == pytest.approx([2.0, 1.0, -2.0, -1.0])
    # correct novel boosted > correct redundant > incorrect near-miss (least negative) > incorrect novel
    assert adv[0] > adv[1] > adv[3] > adv[2]
    assert adv[1] > 0 > adv[3]


def test_literal_eq12_is_an_additive_bonus_that_breaks_the_table():
    shaped, adv = _advantages("literal_eq12")
    assert shaped.tolist() == pytest.approx([2.0, 1.0, 0.0, -1.0])  # r + lam nu~ for r in {-1, +1}
    assert adv[2] > adv[3]  # a novel wrong answer is penalised less than a near-miss


def test_groups_with_equal_base_rewards_get_advantages_from_novelty():
    r = torch.ones(3)
    nu = torch.tensor([0.2, 0.4, 0.8])
    groups = torch.zeros(3, dtype=torch.long)
    shaped = g2rl_shape(r, nu, groups)
    assert shaped.tolist() == pytest.approx([1.0, 1 + 1 / 3, 2.0])  # nu~ = (nu - 0.2) / 0.6
    assert get_advantage("grpo")(shaped, torch.ones(3, 1, dtype=torch.bool), groups).abs().min() > 0.2
    m = g2rl_metrics(torch.eye(3), nu, r, shaped, groups)
    assert m["g2rl/equal_reward_group_fraction"] == 1.0 and m["g2rl/cosine_mean"] == 0.0
    assert m["g2rl/nu_mean"] == pytest.approx(1.4 / 3)
    # identity transform and unsigned rewards
    raw = g2rl_shape(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]), torch.zeros(2, dtype=torch.long),
                     G2RLConfig(nu_transform="identity", signed_rewards=False))
    assert raw.tolist() == [1.5, 0.0]
