"""Advantage estimators against hand-computed values (tolerance 1e-6)."""

import math

import pytest
import torch

from worldsmith.rl.advantages import AdvantageConfig, get_advantage, register_advantage
from worldsmith.rl.registry import ADVANTAGES

EPS = 1e-6
T, F = True, False


def close(actual, expected, tol=1e-6):
    expected = torch.tensor(expected, dtype=torch.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.allclose(actual.double(), expected, atol=tol, rtol=0), actual


# rewards [1, 0, 0, 1 | 1, 1, 1, 1]: group 0 has mean 0.5 and population std 0.5; group 1 is constant.
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
FULL = torch.ones(8, 2, dtype=torch.bool)


def test_grpo_group_std_is_the_population_std():
    a = 0.5 / (0.5 + EPS)  # (r - 0.5) / (std + eps), std = sqrt(mean((r - 0.5)^2)) = 0.5
    adv = get_advantage("grpo")(REWARDS, FULL, GROUPS, AdvantageConfig())
    close(adv[:, 0], [a, -a, -a, a, 0, 0, 0, 0])
    close(adv[:, 1], adv[:, 0].tolist())
    # the unbiased std (n - 1) would give 0.5 / sqrt(1/3) = 0.8660..., which is not what we use
    assert abs(adv[0, 0].item() - 0.5 / math.sqrt(1 / 3)) > 0.1


def test_grpo_batch_std_uses_group_mean_and_batch_population_std():
    # batch mean 0.75; variance (6 * 0.25^2 + 2 * 0.75^2) / 8 = 0.1875
    a = 0.5 / (math.sqrt(0.1875) + EPS)
    adv = get_advantage("grpo")(REWARDS, FULL, GROUPS, AdvantageConfig(std_scale="batch"))
    close(adv[:, 0], [a, -a, -a, a, 0, 0, 0, 0])


def test_grpo_without_std_and_dr_grpo_are_the_centred_rewards():
    expected = [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]
    close(get_advantage("grpo")(REWARDS, FULL, GROUPS, AdvantageConfig(std_scale="none"))[:, 0], expected)
    close(get_advantage("dr_grpo")(REWARDS, FULL, GROUPS, AdvantageConfig(std_scale="group"))[:, 0], expected)


def test_eps_is_added_to_the_std():
    adv = get_advantage("grpo")(REWARDS, FULL, GROUPS, AdvantageConfig(eps=0.5))
    close(adv[:4, 0], [0.5, -0.5, -0.5, 0.5])  # 0.5 / (0.5 + 0.5)


def test_mask_zeroes_but_does_not_drop_sequences():
    rewards = torch.tensor([1.0, 0.0])
    mask = torch.tensor([[T, T, F], [F, F, F]])  # the second sequence has no valid token yet counts
    adv = get_advantage("grpo")(rewards, mask, torch.tensor([4, 4]), None)
    a = 0.5 / (0.5 + EPS)
    close(adv, [[a, a, 0.0], [0.0, 0.0, 0.0]])


def test_group_ids_may_be_any_integers_in_any_order():
    rewards = torch.tensor([1.0, 5.0, 0.0, 1.0, 0.0])
    ids = torch.tensor([7, -3, 7, 7, 7])  # group 7 = [1, 0, 1, 0], group -3 a singleton
    adv = get_advantage("dr_grpo")(rewards, torch.ones(5, 1, dtype=torch.bool), ids, None)
    close(adv[:, 0], [0.5, 0.0, -0.5, 0.5, -0.5])


def test_rloo_leave_one_out_mean():
    adv = get_advantage("rloo")(torch.tensor([1.0, 2.0, 3.0]), torch.ones(3, 1, dtype=torch.bool),
                                torch.zeros(3, dtype=torch.long), None)
    close(adv[:, 0], [1 - 2.5, 2 - 2.0, 3 - 1.5])


def test_rloo_singleton_groups_get_zero():
    rewards = torch.tensor([1.0, 5.0, 2.0, 3.0])
    ids = torch.tensor([0, 9, 0, 0])
    adv = get_advantage("rloo")(rewards, torch.ones(4, 2, dtype=torch.bool), ids, None)
    close(adv[:, 0], [-1.5, 0.0, 0.0, 1.5])


# token-level returns: valid entries 1, 3 (sequence 0) and 5 (sequence 1); padding holds NaN, 100, -inf
TOKEN_R = torch.tensor([[1.0, 3.0, float("nan")], [5.0, 100.0, -float("inf")]])
TOKEN_M = torch.tensor([[T, T, F], [T, F, F]])
SAME = torch.tensor([0, 0])


def test_token_level_grpo_pools_valid_tokens_of_the_group():
    # mean (1 + 3 + 5) / 3 = 3, population variance (4 + 0 + 4) / 3 = 8 / 3
    s = math.sqrt(8 / 3) + EPS
    adv = get_advantage("grpo")(TOKEN_R, TOKEN_M, SAME, None)
    close(adv, [[-2 / s, 0.0, 0.0], [2 / s, 0.0, 0.0]])
    close(get_advantage("dr_grpo")(TOKEN_R, TOKEN_M, SAME, None), [[-2.0, 0.0, 0.0], [2.0, 0.0, 0.0]])


def test_token_level_rloo_uses_the_other_sequences_tokens():
    # sequence 0 baseline: mean of sequence 1's tokens = 5; sequence 1 baseline: mean(1, 3) = 2
    adv = get_advantage("rloo")(TOKEN_R, TOKEN_M, SAME, None)
    close(adv, [[-4.0, -2.0, 0.0], [3.0, 0.0, 0.0]])


def test_output_dtype_and_finiteness():
    ids = torch.tensor([0, 0])
    mask = torch.ones(2, 2, dtype=torch.bool)
    assert get_advantage("grpo")(torch.tensor([1, 0]), mask, ids, None).dtype == torch.float32
    assert get_advantage("rloo")(torch.tensor([1.0, 0.0], dtype=torch.float64), mask, ids, None).dtype == torch.float64
    for name in ("grpo", "dr_grpo", "rloo"):
        adv = get_advantage(name)(TOKEN_R, TOKEN_M, SAME, None)
        assert torch.isfinite(adv).all() and (adv[~TOKEN_M] == 0).all()


def test_non_finite_rewards_and_bad_shapes_raise():
    mask = torch.ones(2, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="finite"):
        get_advantage("grpo")(torch.tensor([1.0, float("nan")]), mask, SAME, None)
    with pytest.raises(ValueError, match="rewards must be"):
        get_advantage("grpo")(torch.ones(3), mask, SAME, None)
    with pytest.raises(ValueError, match="group_ids"):
        get_advantage("rloo")(torch.ones(2), mask, torch.zeros(3, dtype=torch.long), None)


def test_config_rejects_unknown_values():
    with pytest.raises(ValueError):
        AdvantageConfig(std_scale="sequence")
    with pytest.raises(ValueError):
        AdvantageConfig(eps=0.0)
    with pytest.raises(ValueError):
        AdvantageConfig(std="group")


def test_register_advantage_adds_to_the_registry():
    @register_advantage("zz_test_reward_as_is")
    def as_is(rewards, mask, group_ids, cfg):
        return torch.where(mask, rewards[:, None].float(), 0.0)

    assert ADVANTAGES.get("zz_test_reward_as_is") is as_is
    with pytest.raises(ValueError):
        register_advantage("zz_test_reward_as_is")(as_is)
