"""Mixed-CUTS bookkeeping: the group plan, Eq. 5's variance decomposition, the logged diagnostics."""

import math

import pytest
import torch

from worldsmith.rl.cuts import cuts_rows, mixed_cuts_metrics, variance_decomposition


def test_plan_puts_the_cuts_members_last_in_each_group():
    assert cuts_rows(2, 3, 1).tolist() == [False, False, False, True] * 2
    assert cuts_rows(1, 0, 2).tolist() == [True, True]


def test_equal_halves_follow_eq_5():
    # standard [1, 1, 1, 0]: mu 0.75, var 0.1875; CUTS [1, 0, 0, 0]: mu 0.25, var 0.1875
    r = torch.tensor([1.0, 1, 1, 0, 1, 0, 0, 0])
    m = variance_decomposition(r, cuts_rows(1, 4, 4), torch.zeros(8, dtype=torch.long))
    assert m["cuts/var_within"] == pytest.approx(0.5 * (0.1875 + 0.1875))
    assert m["cuts/var_between"] == pytest.approx(0.25 * 0.5**2)
    assert m["cuts/var_mixed"] == pytest.approx(0.25) == m["cuts/var_within"] + m["cuts/var_between"]
    assert m["cuts/reward_gap"] == pytest.approx(-0.5)


def test_unequal_split_and_several_groups():
    # group 0: standard [1, 1, 0], CUTS [0]: within 3/4 * 2/9 = 1/6, between 3/4 * 1/4 * (2/3)^2 = 1/12
    # group 1: all ones: everything 0
    r = torch.tensor([1.0, 1, 0, 0, 1, 1, 1, 1])
    m = variance_decomposition(r, cuts_rows(2, 3, 1), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    assert m["cuts/var_within"] == pytest.approx((1 / 6) / 2)
    assert m["cuts/var_between"] == pytest.approx((1 / 12) / 2)
    assert m["cuts/var_mixed"] == pytest.approx(0.25 / 2)
    assert variance_decomposition(r, torch.zeros(8, dtype=torch.bool), torch.zeros(8, dtype=torch.long)) == {}


def test_diagnostics_read_set_sizes_from_behaviour_logp_and_guard_old_logp():
    # row 0 standard, row 1 CUTS with warmup 2: positions 2, 3, 4 were uniform draws from |S| = 3, 1, 5
    behaviour = torch.tensor([[-0.1, -0.2, -0.3, -0.4, -0.5, 0.0],
                              [-0.7, -0.9, -math.log(3), 0.0, -math.log(5), 0.0]])
    old = torch.tensor([[-0.1, -0.2, -0.3, -0.4, -0.5, 0.0],
                        [-0.7, -0.9, -0.5, -2.0, -math.log(2), 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    m = mixed_cuts_metrics(torch.tensor([1.0, 0.0]), torch.tensor([False, True]), torch.zeros(2, dtype=torch.long),
                           behaviour, old, mask, warmup=2, k=5)
    assert m["cuts/reward_mean_standard"] == 1.0 and m["cuts/reward_mean_cuts"] == 0.0
    assert m["cuts/set_size_mean"] == pytest.approx(3.0)
    assert [m[f"cuts/set_size_frac_{j}"] for j in range(1, 6)] == pytest.approx([1 / 3, 0, 1 / 3, 0, 1 / 3])
    assert m["cuts/behaviour_logp_mean"] == pytest.approx(-(math.log(3) + math.log(5)) / 3)
    assert m["cuts/policy_logp_mean"] == pytest.approx((-0.5 - 2.0 - math.log(2)) / 3)
    assert m["cuts/old_logp_uniform_fraction"] == pytest.approx(1 / 3)  # -log 2 looks like a uniform draw
    assert m["cuts/entropy_standard"] == pytest.approx(0.3)
    assert m["cuts/var_between"] == pytest.approx(0.25)
