"""Advantage estimators: rewards in, per-token advantages out, registered by name.

Every estimator has one signature, ``fn(rewards, mask, group_ids, cfg, **batch) -> advantages``:

    rewards    (B,)   float, one reward per sequence, or
               (B, T) float, token-level returns (see below)
    mask       (B, T) bool, True on completion tokens
    group_ids  (B,)   long, responses to the same prompt share an id (any integers, any order)
    cfg        AdvantageConfig, or None for the defaults
    **batch    further per-batch inputs an estimator may need, by keyword; estimators ignore the
               ones they do not use. The trainer passes ``old_logp`` (B, T), ``prompt_keys``
               (B strings) and whatever the run's method plug-ins add (MSSR: ``baseline`` (B,),
               ``entropy`` (B, T)).
    returns    (B, T) float advantages, exactly 0.0 wherever mask is False

``call_advantage`` calls an estimator with only the keywords its signature accepts, so estimators
written without ``**batch`` keep working.

Conventions:

- Standard deviations are population standard deviations (``unbiased=False``: divide by n, not
  n - 1), and ``eps`` is added to the std, not the variance: ``(r - mean) / (std + eps)``. A group of
  identical rewards therefore gets advantages of exactly 0.
- Sequence-level rewards (B,): every sequence is one sample of its group, whatever its length and
  whatever its mask (a sequence with no valid tokens still counts in its group's statistics); its
  advantage is broadcast over its tokens.
- Token-level rewards (B, T): each valid entry is taken as the return of that token, as given (no
  discounting or cumulative sum is applied here; pass returns-to-go if that is what you want).
  Group statistics (mean, std, leave-one-out mean) are taken over all valid tokens of the group's
  sequences, each token weighted equally, so longer sequences weigh more. ``"batch"`` std is over
  all valid tokens of the batch. Entries where mask is False are ignored and may hold anything,
  NaN included. Note that a (B,) reward repeated over T is *not* equivalent to passing it as (B,):
  the token-level form weights sequences by length.
- Rewards on valid entries must be finite (clean them with ``worldsmith.rl.reward_check``); a
  non-finite one raises ValueError. Statistics are computed in float64; the result has the dtype
  of ``rewards`` (float32 when rewards are integers).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from worldsmith.rl.registry import ADVANTAGES

AdvantageFn = Callable[..., Tensor]


class AdvantageConfig(BaseModel):
    """Settings shared by the advantage estimators (each uses the fields it needs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    std_scale: Literal["group", "batch", "none"] = Field(
        "group",
        description="grpo only: divide the centred reward by the population std of its group, of the "
        "whole batch, or not at all.",
    )
    eps: float = Field(1e-6, gt=0.0, description="Added to the std before dividing (grpo).")
    entropy_coef: float = Field(
        0.4, ge=0.0,
        description="mssr: lambda in psi = min(lambda * H, |A| / kappa). READ (code, entropy_alpha). "
        "0 turns the shaping off (MVSR).",
    )
    entropy_kappa: float = Field(
        2.0, gt=0.0, description="mssr: kappa in psi = min(lambda * H, |A| / kappa). READ (code, entropy_kappa)."
    )
    var_floor: float = Field(
        1e-6, gt=0.0, description="mssr: batch normalisation divides by sqrt(max(var, var_floor)). READ (code)."
    )


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator registering an advantage estimator under ``name`` (duplicates raise ValueError)."""
    return ADVANTAGES.register(name)


def get_advantage(name: str) -> AdvantageFn:
    """The estimator registered as ``name``; unknown names raise a one-line error listing valid ones."""
    return ADVANTAGES.get(name)


def call_advantage(fn: AdvantageFn, rewards: Tensor, mask: Tensor, group_ids: Tensor,
                   cfg: AdvantageConfig | None = None, **batch) -> Tensor:
    """``fn(rewards, mask, group_ids, cfg, **batch)``, passing only the keywords ``fn`` accepts."""
    params = inspect.signature(fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        batch = {k: v for k, v in batch.items() if k in params}
    return fn(rewards, mask, group_ids, cfg, **batch)


# --- shared pieces ------------------------------------------------------------------------------
def _samples(rewards: Tensor, mask: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
    """Rewards as weighted samples per sequence.

    Returns values (B, W) float64 zeroed where unweighted, weights (B, W) float64 (W = 1 for
    sequence-level rewards, W = T with weights = mask for token-level), group (B,) long in [0, G), G.
    """
    if mask.dim() != 2:
        raise ValueError(f"mask must be (B, T), got shape {tuple(mask.shape)}")
    B, T = mask.shape
    if group_ids.shape != (B,):
        raise ValueError(f"group_ids must be ({B},), got shape {tuple(group_ids.shape)}")
    if rewards.shape == (B,):
        weights = torch.ones(B, 1, dtype=torch.float64, device=rewards.device)
        values = rewards.reshape(B, 1).double()
    elif rewards.shape == (B, T):
        weights = mask.double()
        values = torch.where(mask.bool(), rewards.double(), 0.0)
    else:
        raise ValueError(f"rewards must be ({B},) or ({B}, {T}), got shape {tuple(rewards.shape)}")
    if not torch.isfinite(values).all():
        raise ValueError("rewards must be finite where counted; clean them with rl.reward_check.validate_rewards")
    _, group = torch.unique(group_ids, return_inverse=True)
    return values, weights, group, (int(group.max()) + 1 if B else 0)


def _group_sum(x: Tensor, group: Tensor, G: int) -> Tensor:
    """Sum of x (B, W) over each group's rows and columns -> (G,)."""
    return torch.zeros(G, dtype=x.dtype, device=x.device).index_add_(0, group, x.sum(1))


def _group_mean(values: Tensor, weights: Tensor, group: Tensor, G: int) -> Tensor:
    """Weighted mean of each row's group, per row -> (B, 1)."""
    total = _group_sum(values * weights, group, G)
    count = _group_sum(weights, group, G).clamp_min(1.0)
    return (total / count)[group].unsqueeze(1)


def finish_advantages(adv: Tensor, mask: Tensor, rewards: Tensor) -> Tensor:
    """Broadcast (B, W) advantages to (B, T), zero them off the mask, cast to the output dtype."""
    dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    adv = adv.expand(mask.shape)
    return torch.where(mask.bool(), adv, 0.0).to(dtype)


# --- estimators ---------------------------------------------------------------------------------
@register_advantage("grpo")
def grpo(rewards: Tensor, mask: Tensor, group_ids: Tensor, cfg: AdvantageConfig | None = None, **batch) -> Tensor:
    """GRPO: (r - group mean) / (std + eps), std per ``cfg.std_scale`` (population std)."""
    cfg = cfg or AdvantageConfig()
    values, weights, group, G = _samples(rewards, mask, group_ids)  # (B, W), (B, W), (B,)
    centred = values - _group_mean(values, weights, group, G)  # (B, W)
    if cfg.std_scale == "group":
        var = _group_mean(centred.square(), weights, group, G)  # (B, 1)
        centred = centred / (var.sqrt() + cfg.eps)
    elif cfg.std_scale == "batch":
        n = weights.sum().clamp_min(1.0)
        batch_mean = (values * weights).sum() / n  # ()
        var = ((values - batch_mean).square() * weights).sum() / n  # ()
        centred = centred / (var.sqrt() + cfg.eps)
    return finish_advantages(centred, mask, rewards)  # (B, T)


@register_advantage("dr_grpo")
def dr_grpo(rewards: Tensor, mask: Tensor, group_ids: Tensor, cfg: AdvantageConfig | None = None, **batch) -> Tensor:
    """Dr. GRPO: r - group mean, no division by a std (``cfg`` is accepted and unused)."""
    values, weights, group, G = _samples(rewards, mask, group_ids)  # (B, W), (B, W), (B,)
    centred = values - _group_mean(values, weights, group, G)  # (B, W)
    return finish_advantages(centred, mask, rewards)  # (B, T)


@register_advantage("rloo")
def rloo(rewards: Tensor, mask: Tensor, group_ids: Tensor, cfg: AdvantageConfig | None = None, **batch) -> Tensor:
    """RLOO: r_i - mean of the other members of i's group; 0 when there are no others.

    Token-level: the baseline of sequence i is the mean over all valid tokens of the group's other
    sequences; 0 when those have no valid tokens.
    """
    values, weights, group, G = _samples(rewards, mask, group_ids)  # (B, W), (B, W), (B,)
    own_sum = (values * weights).sum(1)  # (B,)
    own_count = weights.sum(1)  # (B,)
    others_sum = _group_sum(values * weights, group, G)[group] - own_sum  # (B,)
    others_count = _group_sum(weights, group, G)[group] - own_count  # (B,)
    baseline = (others_sum / others_count.clamp_min(1.0)).unsqueeze(1)  # (B, 1)
    adv = torch.where(others_count.unsqueeze(1) > 0, values - baseline, 0.0)  # (B, W)
    return finish_advantages(adv, mask, rewards)  # (B, T)
