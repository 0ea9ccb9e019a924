"""Policy losses, registered by name; each returns ``(loss, metrics)``.

Every loss has one signature, ``fn(logp, old_logp, advantages, mask, cfg, ref_logp=None, denominator=None)``:

    logp        (B, T) float, log-prob of each sampled token under the policy being trained (grad)
    old_logp    (B, T) float, log-prob under the policy that sampled it (no grad taken)
    advantages  (B, T) float (no grad taken)
    mask        (B, T) bool, True on completion tokens
    cfg         LossConfig, or None for the defaults
    ref_logp    (B, T) float or None, log-prob under the reference policy, for the KL term
    denominator float or None: the aggregation's normaliser computed over a larger batch that these
                rows are a slice of (``aggregation_denominator``); the slices' losses then add up
                exactly to the whole batch's loss, however the batch is split into microbatches.
                None normalises over the rows given.
    returns     loss () float32 with grad, metrics dict[str, float] (detached python floats)

Entries where mask is False are ignored and may hold anything (NaN and inf included): they
contribute neither to the loss nor to the gradient. Entropy is not computed here; add it in the
trainer with ``aggregate`` so that it is normalised like the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from worldsmith.rl.registry import LOSSES

#: Log-ratios are clamped to +-this before ``exp`` so that ratios stay finite (exp(20) ~ 4.9e8).
LOG_RATIO_LIMIT = 20.0

Aggregation = Literal["token", "sequence", "token_sum_norm"]
LossFn = Callable[..., "tuple[Tensor, dict[str, float]]"]


class LossConfig(BaseModel):
    """Settings of the clipped policy-gradient loss."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_low: float = Field(0.2, ge=0.0, lt=1.0, description="The ratio is clipped below at 1 - clip_low.")
    clip_high: float = Field(
        0.2, ge=0.0, description="The ratio is clipped above at 1 + clip_high (e.g. 0.28 for clip-higher)."
    )
    dual_clip: float | None = Field(
        None,
        gt=1.0,
        description="Dual-clip constant c > 1: for negative advantages the per-token loss is at most "
        "-c * A. None disables it.",
    )
    aggregation: Aggregation = Field(
        "token",
        description="'token': mean over all valid tokens of the batch; 'sequence': mean over each "
        "sequence's valid tokens, then over sequences that have any; 'token_sum_norm': sum over valid "
        "tokens / (B * norm_length), a constant normaliser as in Dr. GRPO. Every normaliser is computed "
        "over the whole minibatch (the global one under DDP), never per microbatch.",
    )
    norm_length: int | None = Field(
        None,
        ge=1,
        description="The length L in 'token_sum_norm'. None uses the longest completion of the minibatch "
        "(its unpadded width), which changes with the longest response; set it to the generation budget "
        "(max_new_tokens) for a truly constant normaliser.",
    )
    kl_coef: float = Field(0.0, ge=0.0, description="Weight of the KL(pi || ref) penalty added to the loss.")
    kl_estimator: Literal["k1", "k2", "k3"] = Field(
        "k3",
        description="Per-token estimator of KL(pi || ref) from log r = ref_logp - logp: k1 = -log r, "
        "k2 = (log r)^2 / 2, k3 = (r - 1) - log r.",
    )


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Decorator registering a policy loss under ``name`` (duplicates raise ValueError)."""
    return LOSSES.register(name)


def get_loss(name: str) -> LossFn:
    """The loss registered as ``name``; unknown names raise a one-line error listing valid ones."""
    return LOSSES.get(name)


# --- shared pieces ------------------------------------------------------------------------------
def aggregation_denominator(mask: Tensor, mode: Aggregation = "token", norm_length: int | None = None) -> float:
    """The normaliser ``aggregate`` divides by, for a batch with completion mask (B, T):
    'token': valid tokens; 'sequence': sequences with at least one valid token; 'token_sum_norm':
    B * L with L = ``norm_length`` or the longest completion (the batch's unpadded width). At least 1.

    Computed once over a whole minibatch and passed to the loss of each of its microbatches, it
    makes the microbatch losses add up to the minibatch's loss.

    >>> m = torch.tensor([[1, 1, 1], [1, 0, 0]])
    >>> [aggregation_denominator(m, a) for a in ("token", "sequence", "token_sum_norm")]
    [4.0, 2.0, 6.0]
    """
    mask = mask.bool()
    if mode == "token":
        n = int(mask.sum())
    elif mode == "sequence":
        n = int((mask.sum(1) > 0).sum())
    elif mode == "token_sum_norm":
        width = int(mask.sum(1).max()) if mask.numel() else 0
        n = mask.shape[0] * (norm_length or width)
    else:
        raise ValueError(f"unknown aggregation {mode!r}; valid: token, sequence, token_sum_norm")
    return float(max(n, 1))


def aggregate(values: Tensor, mask: Tensor, mode: Aggregation = "token", norm_length: int | None = None,
              denominator: float | None = None) -> Tensor:
    """Reduce per-token values (B, T) to a scalar over the valid tokens, per ``mode``.

    'token': sum / number of valid tokens. 'sequence': each sequence's mean over its valid tokens,
    then the mean over sequences with at least one. 'token_sum_norm': sum / (B * L), L =
    ``norm_length`` or the longest completion. With no valid token at all the result is 0 (still
    attached to the graph). ``denominator`` replaces the normaliser (see ``aggregation_denominator``).
    """
    mask = mask.bool()
    values = torch.where(mask, values, 0.0)  # (B, T)
    if mode == "sequence":
        lengths = mask.sum(1)  # (B,)
        numerator = (values.sum(1) / lengths.clamp_min(1)).sum()  # () sum of per-sequence means
    elif mode in ("token", "token_sum_norm"):
        numerator = values.sum()  # ()
    else:
        raise ValueError(f"unknown aggregation {mode!r}; valid: token, sequence, token_sum_norm")
    if denominator is None:
        denominator = aggregation_denominator(mask, mode, norm_length)
    return numerator / denominator


def kl_estimate(logp: Tensor, ref_logp: Tensor, estimator: Literal["k1", "k2", "k3"] = "k3") -> Tensor:
    """Per-token estimate of KL(pi || ref) for tokens sampled from pi, (B, T) -> (B, T).

    log r = ref_logp - logp (clamped to +-LOG_RATIO_LIMIT); k1 = -log r (unbiased, high variance,
    can be negative), k2 = (log r)^2 / 2 (biased, >= 0), k3 = (r - 1) - log r (unbiased, >= 0).
    """
    log_r = (ref_logp - logp).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * log_r.square()
    if estimator == "k3":
        return torch.expm1(log_r) - log_r
    raise ValueError(f"unknown kl estimator {estimator!r}; valid: k1, k2, k3")


def _check_shapes(mask: Tensor, **tensors: Tensor | None) -> None:
    if mask.dim() != 2:
        raise ValueError(f"mask must be (B, T), got shape {tuple(mask.shape)}")
    for name, t in tensors.items():
        if t is not None and t.shape != mask.shape:
            raise ValueError(f"{name} must have the mask's shape {tuple(mask.shape)}, got {tuple(t.shape)}")


# --- losses -------------------------------------------------------------------------------------
@register_loss("ppo_clip")
def ppo_clip(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    cfg: LossConfig | None = None,
    ref_logp: Tensor | None = None,
    denominator: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO clipped surrogate with asymmetric clip, optional dual clip and optional KL penalty.

    Per token: ratio = exp(logp - old_logp), loss = max(-ratio * A, -clip(ratio, 1 - lo, 1 + hi) * A),
    then, with dual clip c and A < 0, min(loss, -c * A). The batch loss is ``aggregate`` of that
    plus ``kl_coef * aggregate(kl_estimate(logp, ref_logp))``.

    Metrics: loss, pg_loss, kl_loss (kl_coef times the aggregated KL), clip_fraction (valid tokens
    where a clip bound is binding, split into clip_fraction_low / clip_fraction_high),
    dual_clip_fraction, approx_kl (token mean of k3 with log r = old_logp - logp),
    ratio_mean / ratio_min / ratio_max, kl (token mean of the chosen estimator; only when ref_logp
    is given), n_tokens.
    """
    cfg = cfg or LossConfig()
    _check_shapes(mask, logp=logp, old_logp=old_logp, advantages=advantages, ref_logp=ref_logp)
    if cfg.kl_coef > 0 and ref_logp is None:
        raise ValueError("kl_coef > 0 needs ref_logp")
    mask = mask.bool()
    logp = torch.where(mask, logp.float(), 0.0)  # (B, T) padding may hold anything: neutralise it
    old = torch.where(mask, old_logp.detach().float(), 0.0)  # (B, T)
    adv = torch.where(mask, advantages.detach().float(), 0.0)  # (B, T)

    log_ratio = (logp - old).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)  # (B, T)
    ratio = log_ratio.exp()  # (B, T)
    clipped = ratio.clamp(1.0 - cfg.clip_low, 1.0 + cfg.clip_high)  # (B, T)
    per_token = torch.maximum(-ratio * adv, -clipped * adv)  # (B, T)
    if cfg.dual_clip is not None:
        per_token = torch.where(adv < 0, torch.minimum(per_token, -cfg.dual_clip * adv), per_token)
    pg_loss = aggregate(per_token, mask, cfg.aggregation, cfg.norm_length, denominator)  # ()

    kl_loss = torch.zeros((), device=logp.device)
    if ref_logp is not None:
        ref = torch.where(mask, ref_logp.detach().float(), 0.0)  # (B, T)
        kl = kl_estimate(logp, ref, cfg.kl_estimator)  # (B, T)
        kl_loss = cfg.kl_coef * aggregate(kl, mask, cfg.aggregation, cfg.norm_length, denominator)  # ()
    loss = pg_loss + kl_loss

    with torch.no_grad():  # one device sync for all metrics
        n = mask.sum().clamp_min(1)
        low = mask & (adv < 0) & (ratio < 1.0 - cfg.clip_low)  # (B, T)
        high = mask & (adv > 0) & (ratio > 1.0 + cfg.clip_high)  # (B, T)
        dual = mask & (adv < 0) & (ratio > (cfg.dual_clip or float("inf")))  # (B, T)
        any_valid = mask.any()
        stats = {
            "loss": loss,
            "pg_loss": pg_loss,
            "kl_loss": kl_loss,
            "clip_fraction": (low | high).sum() / n,
            "clip_fraction_low": low.sum() / n,
            "clip_fraction_high": high.sum() / n,
            "dual_clip_fraction": dual.sum() / n,
            "approx_kl": aggregate(kl_estimate(logp, old, "k3"), mask, "token"),
            "ratio_mean": aggregate(ratio, mask, "token"),
            "ratio_min": torch.where(any_valid, ratio.masked_fill(~mask, float("inf")).min(), 0.0),
            "ratio_max": torch.where(any_valid, ratio.masked_fill(~mask, float("-inf")).max(), 0.0),
            "n_tokens": mask.sum(),
        }
        if ref_logp is not None:
            stats["kl"] = aggregate(kl, mask, "token")
        values = torch.stack([v.detach().float().reshape(()) for v in stats.values()]).tolist()
        metrics = dict(zip(stats, values))
    return loss, metrics
