"""MSSR (spec §4): the Beta tracker's updates and forgetting rate, the advantage and its shaping bounds."""

import math

import pytest
import torch

from worldsmith.rl.advantages import AdvantageConfig, call_advantage, get_advantage
from worldsmith.rl.mssr import BetaTracker, MSSRConfig, mssr_shaping, sampled_token_entropy

MID = (0.875 + 0.96) / 2


def test_initialisation_and_unseen_prompts():
    tr = BetaTracker()
    assert tr.n0 == pytest.approx(8.0)  # 1 / (1 - 0.875)
    tr.initialise(["a", "a", "b"], [1.0, 0.0, 1.0])
    assert (tr.alpha["a"], tr.beta["a"]) == pytest.approx((4.0, 4.0))
    assert (tr.alpha["b"], tr.beta["b"]) == pytest.approx((8.0, 0.0))
    assert tr.values(["a", "b", "never"]).tolist() == pytest.approx([0.5, 1.0, 0.5])
    assert tr.seen(["a", "never"]) == [True, False] and tr.initialised
    assert BetaTracker(MSSRConfig(v_init=0.25)).values(["x"]).item() == pytest.approx(0.25)


def test_rho_follows_the_kl_rule():
    tr = BetaTracker(MSSRConfig(kl_window=2))
    assert tr.rho() == pytest.approx(MID)  # empty window
    tr.kl_window.append(0.005)  # half the target: rho = rho_min + 0.5 (rho_max - rho_min)
    assert tr.rho() == pytest.approx(0.875 + 0.5 * 0.085)
    tr.kl_window.append(0.03)  # mean 0.0175 > 0.01: rho jumps to rho_min
    assert tr.rho() == pytest.approx(0.875)
    tr.kl_window.append(0.001)
    tr.kl_window.append(0.001)  # window of 2: the older values are gone, mean 0.001
    assert list(tr.kl_window) == [0.001, 0.001]
    assert tr.rho() == pytest.approx(0.875 + 0.1 * 0.085)
    tr.kl_window.clear()
    tr.kl_window.append(0.01)  # exactly at the target: tau = 1, rho = rho_max
    assert tr.rho() == pytest.approx(0.96)
    assert MSSRConfig().kl_window == 20
    with pytest.raises(ValueError):
        MSSRConfig(rho_min=0.97)


def test_update_is_alpha_rho_plus_b_in_batch_order():
    tr = BetaTracker()
    tr.initialise(["a"], [0.5])  # alpha = beta = 4
    rho = tr.update(["a", "new", "a"], [1.0, 0.0, 0.0], kl=0.005)  # the KL is appended first
    assert rho == pytest.approx(0.9175)
    a1, b1 = rho * 4 + 1, rho * 4  # first sample of "a"
    assert tr.alpha["a"] == pytest.approx(rho * a1 + 0)
    assert tr.beta["a"] == pytest.approx(rho * b1 + 1)
    assert (tr.alpha["new"], tr.beta["new"]) == pytest.approx((rho * 4, rho * 4 + 1))  # from v_init
    # without a KL the window stays empty and rho is the midpoint
    fresh = BetaTracker()
    assert fresh.update(["x"], [1.0]) == pytest.approx(MID) and not fresh.kl_window


def test_state_dict_round_trip():
    tr = BetaTracker(MSSRConfig(kl_window=3))
    tr.initialise(["a", "b"], [1.0, 0.0])
    for kl in (0.1, 0.2, 0.3, 0.4):
        tr.update(["a", "c"], [0.0, 1.0], kl=kl)
    again = BetaTracker(MSSRConfig(kl_window=3))
    again.load_state_dict(tr.state_dict())
    assert again.state_dict() == tr.state_dict()
    assert again.rho() == tr.rho() and again.kl_window.maxlen == 3
    assert torch.equal(again.values(["a", "b", "c"]), tr.values(["a", "b", "c"]))


MASK = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
R = torch.tensor([1.0, 0.0, 1.0, 0.0])
V = torch.tensor([0.5, 0.5, 0.25, 0.75])
GROUPS = torch.arange(4)


def test_mssr_advantage_is_batch_normalised_against_the_tracked_baseline():
    # a = r - v = [0.5, -0.5, 0.75, -0.75]; mean 0; population variance 0.40625
    a = torch.tensor([0.5, -0.5, 0.75, -0.75], dtype=torch.float64) / math.sqrt(0.40625)
    cfg = AdvantageConfig(entropy_coef=0.0)
    adv = get_advantage("mssr")(R, MASK, GROUPS, cfg, baseline=V)
    torch.testing.assert_close(adv.double(), torch.where(MASK, a[:, None], 0.0), rtol=0, atol=1e-6)
    # entropy is ignored when entropy_coef = 0 (MVSR)
    same = get_advantage("mssr")(R, MASK, GROUPS, cfg, baseline=V, entropy=torch.ones(4, 3))
    assert torch.equal(adv, same)


def test_mssr_shaping_by_hand_small_and_capped_entropy():
    a = torch.tensor([0.5, -0.5, 0.75, -0.75], dtype=torch.float64) / math.sqrt(0.40625)
    small = get_advantage("mssr")(R, MASK, GROUPS, AdvantageConfig(), baseline=V, entropy=torch.full((4, 3), 0.1))
    # psi = min(0.4 * 0.1, |A| / 2) = 0.04 < min |A| / 2 = 0.78
    torch.testing.assert_close(small.double(), torch.where(MASK, a[:, None] + 0.04, 0.0), rtol=0, atol=1e-6)
    big = get_advantage("mssr")(R, MASK, GROUPS, AdvantageConfig(), baseline=V, entropy=torch.full((4, 3), 5.0))
    # psi = |A| / 2: positive advantages grow by half, negative ones shrink by half
    expected = torch.where(a > 0, 1.5 * a, 0.5 * a)
    torch.testing.assert_close(big.double(), torch.where(MASK, expected[:, None], 0.0), rtol=0, atol=1e-6)


def test_shaping_bounds_hold_everywhere():
    g = torch.Generator().manual_seed(0)
    adv = torch.randn(64, 9, generator=g, dtype=torch.float64)
    adv[:4] = 0.0
    ent = torch.rand(64, 9, generator=g, dtype=torch.float64) * 3
    mask = torch.rand(64, 9, generator=g) > 0.2
    psi = mssr_shaping(adv, ent, mask, 0.4, 2.0)
    assert (psi >= 0).all() and (psi[~mask] == 0).all()
    assert (psi <= adv.abs() / 2.0 + 1e-12).all() and (psi <= 0.4 * ent + 1e-12).all()
    assert (psi[:4] == 0).all()  # no bonus at A = 0
    assert ((psi == adv.abs() / 2) | (psi == 0.4 * ent))[mask].all()  # psi is one of the two


def test_constant_raw_advantages_hit_the_variance_floor_and_give_zero():
    adv = get_advantage("mssr")(torch.ones(3), torch.ones(3, 2, dtype=torch.bool), torch.arange(3),
                                baseline=torch.full((3,), 0.25), entropy=torch.ones(3, 2))
    assert adv.abs().max() == 0  # A = 0 everywhere, so psi = 0 as well
    with pytest.raises(ValueError, match="baseline"):
        get_advantage("mssr")(torch.ones(3), torch.ones(3, 2, dtype=torch.bool), torch.arange(3))


def test_sampled_token_entropy_is_minus_p_log_p_of_the_sampled_token():
    logp = torch.tensor([[-1.0, 0.0, math.log(0.5)], [-5.0, -1.0, -30.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    h = sampled_token_entropy(logp, mask)
    expected = [[1 / math.e, 0.0, 0.5 * math.log(2)], [5 * math.exp(-5), 1 / math.e, 0.0]]
    torch.testing.assert_close(h.double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-6)
    assert sampled_token_entropy(-torch.rand(100, 5) * 10, torch.ones(100, 5, dtype=torch.bool)).max() <= 1 / math.e + 1e-7


def test_call_advantage_passes_only_accepted_keywords():
    def old_style(rewards, mask, group_ids, cfg):
        return torch.zeros(mask.shape)

    out = call_advantage(old_style, R, MASK, GROUPS, None, baseline=V, prompt_keys=["a"] * 4)
    assert out.shape == MASK.shape
    adv = call_advantage(get_advantage("grpo"), R, MASK, torch.zeros(4, dtype=torch.long), None, baseline=V)
    assert adv[0, 0] > 0 > adv[1, 0]
