"""ppo_clip against hand-computed values (tolerance 1e-6)."""

import math

import pytest
import torch

from worldsmith.rl.losses import LossConfig, aggregate, get_loss, kl_estimate, ppo_clip
from worldsmith.rl.registry import LOSSES

T, F = True, False
NAN, INF = float("nan"), float("inf")


def one_token(ratio, adv, **cfg):
    """Loss, metrics and d loss / d logp for one token with the given ratio and advantage."""
    logp = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, metrics = ppo_clip(logp, torch.zeros(1, 1), torch.tensor([[float(adv)]]),
                             torch.ones(1, 1, dtype=torch.bool), LossConfig(**cfg))
    loss.backward()
    return loss.item(), metrics, logp.grad.item()


@pytest.mark.parametrize(
    "ratio, adv, expected_loss, expected_grad, clipped",
    [
        (1.1, 1.0, -1.1, -1.1, 0.0),  # A > 0 inside the clip range: -ratio * A
        (0.5, 1.0, -0.5, -0.5, 0.0),  # A > 0 below the range: the unclipped term is smaller, kept
        (1.5, 1.0, -1.2, 0.0, 1.0),  # A > 0 above 1 + 0.2: clipped, no gradient
        (0.9, -1.0, 0.9, 0.9, 0.0),  # A < 0 inside the range
        (1.5, -1.0, 1.5, 1.5, 0.0),  # A < 0 above the range: unclipped (no dual clip)
        (0.5, -1.0, 0.8, 0.0, 1.0),  # A < 0 below 1 - 0.2: clipped, no gradient
        (0.5, -2.0, 1.6, 0.0, 1.0),  # same with |A| = 2: 0.8 * 2
    ],
)
def test_clipped_and_unclipped_regions(ratio, adv, expected_loss, expected_grad, clipped):
    loss, metrics, grad = one_token(ratio, adv)
    assert loss == pytest.approx(expected_loss, abs=1e-6)
    assert grad == pytest.approx(expected_grad, abs=1e-6)
    assert metrics["clip_fraction"] == clipped
    assert metrics["loss"] == pytest.approx(expected_loss, abs=1e-6)


def test_clip_fraction_splits_low_and_high():
    assert one_token(1.5, 1.0)[1]["clip_fraction_high"] == 1.0
    assert one_token(1.5, 1.0)[1]["clip_fraction_low"] == 0.0
    assert one_token(0.5, -1.0)[1]["clip_fraction_low"] == 1.0
    assert one_token(0.5, -1.0)[1]["clip_fraction_high"] == 0.0


def test_asymmetric_clip():
    # clip-higher: upper bound 1.28, lower bound 0.9
    cfg = dict(clip_low=0.1, clip_high=0.28)
    assert one_token(1.25, 1.0, **cfg)[0] == pytest.approx(-1.25, abs=1e-6)  # symmetric 0.2 would give -1.2
    assert one_token(1.25, 1.0)[0] == pytest.approx(-1.2, abs=1e-6)
    assert one_token(1.5, 1.0, **cfg)[0] == pytest.approx(-1.28, abs=1e-6)
    assert one_token(0.85, -1.0, **cfg)[0] == pytest.approx(0.9, abs=1e-6)  # clipped at 1 - 0.1
    assert one_token(0.85, -1.0)[0] == pytest.approx(0.85, abs=1e-6)  # inside 0.8..1.2


def test_dual_clip_bounds_negative_advantage_loss():
    loss, metrics, grad = one_token(5.0, -1.0, dual_clip=3.0)
    assert loss == pytest.approx(3.0, abs=1e-6) and grad == 0.0
    assert metrics["dual_clip_fraction"] == 1.0 and metrics["clip_fraction"] == 0.0
    assert one_token(5.0, -1.0)[0] == pytest.approx(5.0, abs=1e-5)  # without dual clip: unbounded
    assert one_token(5.0, -2.0, dual_clip=3.0)[0] == pytest.approx(6.0, abs=1e-6)  # -c * A
    loss, metrics, grad = one_token(2.0, -1.0, dual_clip=3.0)  # below c: ordinary PPO
    assert loss == pytest.approx(2.0, abs=1e-6) and grad == pytest.approx(2.0, abs=1e-6)
    assert metrics["dual_clip_fraction"] == 0.0
    assert one_token(5.0, 1.0, dual_clip=3.0)[0] == pytest.approx(-1.2, abs=1e-6)  # A > 0 unaffected


# ratio 1 everywhere, so the per-token loss is -A; 9s sit on padding and must be ignored
RAGGED_ADV = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0], [9.0, 9.0, 9.0]])
RAGGED_MASK = torch.tensor([[T, T, T], [T, F, F], [F, F, F]])


@pytest.mark.parametrize(
    "cfg, expected, token_grad",
    [
        (dict(aggregation="token"), -10 / 4, 1 / 4),  # 4 valid tokens
        (dict(aggregation="sequence"), (-6 / 3 - 4 / 1) / 2, None),  # 2 sequences with tokens
        (dict(aggregation="token_sum_norm"), -10 / (3 * 3), 1 / 9),  # B * T
        (dict(aggregation="token_sum_norm", norm_length=5), -10 / (3 * 5), 1 / 15),
    ],
)
def test_aggregation_modes_on_a_ragged_mask(cfg, expected, token_grad):
    logp = torch.zeros(3, 3, requires_grad=True)
    loss, metrics = ppo_clip(logp, torch.zeros(3, 3), RAGGED_ADV, RAGGED_MASK, LossConfig(**cfg))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    assert (logp.grad[~RAGGED_MASK] == 0).all()
    if token_grad is not None:  # d loss / d logp = -A * ratio * weight
        expected_grad = torch.where(RAGGED_MASK, -RAGGED_ADV * token_grad, 0.0)
        assert torch.allclose(logp.grad, expected_grad, atol=1e-6)
    else:  # sequence: weight 1 / (len * n_seq) -> [1/6, 1/6, 1/6], [1/2]
        assert torch.allclose(logp.grad[0], -torch.tensor([1.0, 2.0, 3.0]) / 6, atol=1e-6)
        assert logp.grad[1, 0].item() == pytest.approx(-4 / 2, abs=1e-6)


def test_aggregate_with_no_valid_token_is_zero_and_differentiable():
    x = torch.ones(2, 3, requires_grad=True)
    none = torch.zeros(2, 3, dtype=torch.bool)
    for mode in ("token", "sequence", "token_sum_norm"):
        out = aggregate(x, none, mode)
        assert out.item() == 0.0
        out.backward()
    with pytest.raises(ValueError, match="valid: token, sequence, token_sum_norm"):
        aggregate(x, none, "mean")


# log r = ref_logp - logp = [0.5, -1.0]
LOGP = torch.tensor([[-1.0, -2.0]])
REF = torch.tensor([[-0.5, -3.0]])
K = {
    "k1": (-0.5 + 1.0) / 2,
    "k2": (0.5 * 0.25 + 0.5 * 1.0) / 2,
    "k3": ((math.exp(0.5) - 1 - 0.5) + (math.exp(-1.0) - 1 + 1.0)) / 2,
}


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_kl_estimators_on_given_log_probs(estimator):
    assert aggregate(kl_estimate(LOGP, REF, estimator), torch.ones(1, 2, dtype=torch.bool)).item() == \
        pytest.approx(K[estimator], abs=1e-6)
    logp = LOGP.clone().requires_grad_(True)
    cfg = LossConfig(kl_coef=0.1, kl_estimator=estimator)
    loss, metrics = ppo_clip(logp, LOGP, torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool), cfg, ref_logp=REF)
    assert loss.item() == pytest.approx(0.1 * K[estimator], abs=1e-6)  # A = 0: only the KL term
    assert metrics["kl"] == pytest.approx(K[estimator], abs=1e-6)
    assert metrics["kl_loss"] == pytest.approx(0.1 * K[estimator], abs=1e-6)
    assert metrics["pg_loss"] == 0.0


def test_kl_gradients():
    log_r = torch.tensor([0.5, -1.0])
    expected = {"k1": torch.ones(2), "k2": -log_r, "k3": 1 - log_r.exp()}  # d/dlogp of each estimator
    for estimator, d in expected.items():
        logp = LOGP.clone().requires_grad_(True)
        loss, _ = ppo_clip(logp, LOGP, torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool),
                           LossConfig(kl_coef=0.1, kl_estimator=estimator), ref_logp=REF)
        loss.backward()
        assert torch.allclose(logp.grad[0], 0.1 * d / 2, atol=1e-6), estimator


def test_kl_is_reported_but_not_added_when_kl_coef_is_zero():
    loss, metrics = ppo_clip(LOGP, LOGP, torch.ones(1, 2), torch.ones(1, 2, dtype=torch.bool), ref_logp=REF)
    assert loss.item() == pytest.approx(-1.0, abs=1e-6)
    assert metrics["kl"] == pytest.approx(K["k3"], abs=1e-6) and metrics["kl_loss"] == 0.0
    assert "kl" not in ppo_clip(LOGP, LOGP, torch.ones(1, 2), torch.ones(1, 2, dtype=torch.bool))[1]
    with pytest.raises(ValueError, match="ref_logp"):
        ppo_clip(LOGP, LOGP, torch.ones(1, 2), torch.ones(1, 2, dtype=torch.bool), LossConfig(kl_coef=0.1))


def test_ratio_and_approx_kl_metrics():
    logp = torch.tensor([[math.log(0.5), math.log(2.0), 50.0]])  # the third token is padding
    mask = torch.tensor([[T, T, F]])
    _, m = ppo_clip(logp, torch.zeros(1, 3), torch.zeros(1, 3), mask)
    assert m["ratio_mean"] == pytest.approx(1.25, abs=1e-6)
    assert m["ratio_min"] == pytest.approx(0.5, abs=1e-6)
    assert m["ratio_max"] == pytest.approx(2.0, abs=1e-6)
    assert m["n_tokens"] == 2.0
    # k3 with log r = old - new = [log 2, -log 2]: (2 - 1 - log 2) and (0.5 - 1 + log 2)
    assert m["approx_kl"] == pytest.approx(((1 - math.log(2)) + (-0.5 + math.log(2))) / 2, abs=1e-6)
    assert all(isinstance(v, float) for v in m.values())


def test_padding_may_hold_nan_and_inf():
    logp = torch.tensor([[-1.0, NAN], [-2.0, -INF]], requires_grad=True)
    old = torch.tensor([[-1.0, INF], [-2.0, NAN]])
    adv = torch.tensor([[1.0, NAN], [-1.0, INF]])
    ref = torch.tensor([[-1.0, -INF], [-2.0, NAN]])
    mask = torch.tensor([[T, F], [T, F]])
    loss, metrics = ppo_clip(logp, old, adv, mask, LossConfig(kl_coef=0.5), ref_logp=ref)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # (-1 + 1) / 2 and zero KL
    assert torch.isfinite(logp.grad).all() and (logp.grad[:, 1] == 0).all()
    assert all(math.isfinite(v) for v in metrics.values())


def test_extreme_ratios_stay_finite():
    logp = torch.tensor([[100.0, -100.0]], requires_grad=True)
    loss, metrics = ppo_clip(logp, torch.zeros(1, 2), torch.tensor([[-1.0, 1.0]]), torch.ones(1, 2, dtype=torch.bool))
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(logp.grad).all()
    assert all(math.isfinite(v) for v in metrics.values())


def test_no_valid_tokens_gives_zero_loss_that_backpropagates():
    logp = torch.zeros(2, 2, requires_grad=True)
    loss, metrics = ppo_clip(logp, torch.zeros(2, 2), torch.ones(2, 2), torch.zeros(2, 2, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and metrics["ratio_max"] == 0.0 and metrics["n_tokens"] == 0.0


def test_shapes_and_config_are_checked():
    with pytest.raises(ValueError, match="advantages"):
        ppo_clip(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3, dtype=torch.bool))
    for bad in (dict(dual_clip=1.0), dict(clip_low=1.0), dict(kl_estimator="k4"),
                dict(aggregation="mean"), dict(kl_coef=-1.0), dict(clip=0.2)):
        with pytest.raises(ValueError):
            LossConfig(**bad)


def test_registered_as_ppo_clip():
    assert LOSSES.get("ppo_clip") is ppo_clip and get_loss("ppo_clip") is ppo_clip


@pytest.mark.parametrize("mode,norm_length", [("token", None), ("sequence", None), ("token_sum_norm", None),
                                              ("token_sum_norm", 12)])
def test_slices_with_the_whole_batch_denominator_add_up_to_the_whole_loss(mode, norm_length):
    from worldsmith.rl.losses import aggregate, aggregation_denominator

    g = torch.Generator().manual_seed(4)
    values = torch.randn(7, 10, generator=g)  # (B, T)
    lengths = torch.tensor([1, 10, 3, 0, 7, 2, 10])
    mask = torch.arange(10).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    whole = aggregate(values, mask, mode, norm_length)
    den = aggregation_denominator(mask, mode, norm_length)
    # by hand: token 33 tokens; sequence 6 non-empty sequences; token_sum_norm 7 x (12 or 10)
    assert den == {"token": 33.0, "sequence": 6.0}.get(mode, 7.0 * (norm_length or 10))
    for rows in ([0, 1, 2], [3], [4, 5, 6]), ([i] for i in range(7)):
        parts = sum(aggregate(values[r][:, : max(1, int(lengths[r].max()))], mask[r][:, : max(1, int(lengths[r].max()))],
                              mode, norm_length, den) for r in rows)
        assert float(parts) == pytest.approx(float(whole), rel=1e-6)
