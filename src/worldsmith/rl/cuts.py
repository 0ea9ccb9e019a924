"""Mixed-CUTS (specs/rl-algorithms.md §2.3): which group members explore, and what to log.

The token operator itself is ``worldsmith.policy.sampling.CUTS`` (a logits processor: after
``warmup`` ordinary tokens, draw uniformly from the kept set S_t); the plug-in ``MixedCUTS`` at the
end samples each group's CUTS members with it. Config: ``sampling.cuts`` and ``sampling.mixed_plan``.

Each group of G completions holds ``standard`` ordinary rollouts followed by ``cuts`` CUTS
rollouts (8 + 8 in the paper). One GRPO advantage is taken over the merged group; nothing here
changes the estimator. The diagnostics show why the merged group keeps its variance (Eq. 5, the
law of total variance, for sub-group shares w_s + w_c = 1):

    var_mixed = w_s var_s + w_c var_c  +  w_s w_c (mu_s - mu_c)^2
                \\______ within _____/    \\_______ between ______/

which is 1/2 (var_s + var_c) + 1/4 (mu_s - mu_c)^2 for equal halves.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from pydantic import Field
from torch import Tensor

from worldsmith.configuration import Strict
from worldsmith.envs.contract import stable_hash
from worldsmith.policy.backend import merge_rollouts
from worldsmith.policy.sampling import CUTS
from worldsmith.rl.methods import Method, StepContext, register_method


class CUTSSection(Strict):
    """CUTS: after ``warmup`` ordinary tokens, draw uniformly from the kept set S_t (spec §2.2)."""

    enabled: bool = Field(False, description="Sample the CUTS members of each group (see mixed_plan) with CUTS.")
    k: int = Field(5, ge=1, description="K, the top-k candidates. READ (paper Table 3).")
    delta: float = Field(0.03, ge=0.0, lt=1.0, description="delta: keep candidates with p > delta at temperature 1. READ.")
    warmup: int = Field(5, ge=0, description="T_warm: ordinary tokens before CUTS starts (prefix protection). READ.")


class MixedPlan(Strict):
    """How each group splits between ordinary and CUTS rollouts (spec §2.3); one advantage over both."""

    standard: int = Field(8, ge=0, description="Ordinary rollouts per group. READ (8 of 16).")
    cuts: int = Field(8, ge=0, description="CUTS rollouts per group. READ (8 of 16; no ratio ablation was found).")


def cuts_rows(n_groups: int, standard: int, cuts: int, device: str | torch.device = "cpu") -> Tensor:
    """(n_groups * (standard + cuts),) bool, True on CUTS members: the last ``cuts`` of each group."""
    one = torch.tensor([False] * standard + [True] * cuts, dtype=torch.bool, device=device)
    return one.repeat(n_groups)


def variance_decomposition(rewards: Tensor, is_cuts: Tensor, group_ids: Tensor) -> dict[str, float]:
    """Per-group population variances of the merged group, within and between sub-groups, averaged
    over the groups that have both sub-groups. rewards (B,), is_cuts (B,) bool, group_ids (B,)."""
    mixed, within, between, gaps = [], [], [], []
    r = rewards.double()
    for g in torch.unique(group_ids):
        idx = group_ids == g
        s, c = r[idx & ~is_cuts], r[idx & is_cuts]
        if len(s) == 0 or len(c) == 0:
            continue
        ws, wc = len(s) / (len(s) + len(c)), len(c) / (len(s) + len(c))
        mixed.append(float(r[idx].var(unbiased=False)))
        within.append(ws * float(s.var(unbiased=False)) + wc * float(c.var(unbiased=False)))
        between.append(ws * wc * float(s.mean() - c.mean()) ** 2)
        gaps.append(float(c.mean() - s.mean()))
    if not mixed:
        return {}
    n = len(mixed)
    return {
        "cuts/var_mixed": sum(mixed) / n,
        "cuts/var_within": sum(within) / n,
        "cuts/var_between": sum(between) / n,
        "cuts/reward_gap": sum(gaps) / n,  # mean of mu_cuts - mu_standard
    }


def mixed_cuts_metrics(
    rewards: Tensor,
    is_cuts: Tensor,
    group_ids: Tensor,
    behaviour_logp: Tensor,
    old_logp: Tensor,
    mask: Tensor,
    warmup: int,
    k: int,
) -> dict[str, float | None]:
    """Diagnostics of a batch with CUTS rows (spec §2.6, §6).

    rewards (B,), is_cuts (B,) bool, group_ids (B,), behaviour_logp / old_logp / mask (B, T).
    Sub-group reward means, the variance decomposition, the |S_t| histogram (read back from the
    behaviour log-probs, -log |S_t|, at CUTS positions t >= warmup), both log-probs of CUTS tokens,
    the standard rows' sampled-token entropy, and the spec's guard: the fraction of CUTS tokens
    whose old log-prob equals -log j for some 2 <= j <= k (near 0 when old log-probs were
    recomputed with the policy, near 1 when behaviour log-probs leaked into the PPO ratio).
    """
    mask = mask.bool()
    is_cuts = is_cuts.to(mask.device).bool()
    out: dict[str, float | None] = {
        "cuts/fraction": float(is_cuts.float().mean()),
        "cuts/reward_mean_standard": float(rewards[~is_cuts].mean()) if (~is_cuts).any() else None,
        "cuts/reward_mean_cuts": float(rewards[is_cuts].mean()) if is_cuts.any() else None,
    }
    out.update(variance_decomposition(rewards, is_cuts, group_ids))
    std_tokens = mask & ~is_cuts[:, None]
    if std_tokens.any():
        out["cuts/entropy_standard"] = float(-behaviour_logp[std_tokens].mean())
    after = torch.arange(mask.shape[1], device=mask.device)[None, :] >= warmup
    uniform = mask & is_cuts[:, None] & after  # (B, T) tokens drawn uniformly from S_t
    if uniform.any():
        behaviour = behaviour_logp[uniform].double()
        sizes = torch.round(torch.exp(-behaviour)).long()
        out["cuts/set_size_mean"] = float(sizes.double().mean())
        for j in range(1, k + 1):
            out[f"cuts/set_size_frac_{j}"] = float((sizes == j).double().mean())
        old = old_logp[uniform].double()
        out["cuts/behaviour_logp_mean"] = float(behaviour.mean())
        out["cuts/policy_logp_mean"] = float(old.mean())
        levels = torch.tensor([-math.log(j) for j in range(2, k + 1)], dtype=torch.float64, device=old.device)
        hits = ((old[:, None] - levels[None, :]).abs() < 1e-4).any(-1) if len(levels) else torch.zeros_like(old).bool()
        out["cuts/old_logp_uniform_fraction"] = float(hits.double().mean())
    return out


# --- the plug-in ----------------------------------------------------------------------------------
@register_method
class MixedCUTS(Method):
    """Each group's last ``mixed_plan.cuts`` members are sampled with CUTS (their own seed), the
    others normally; the trainer recomputes the policy's log-probs of the CUTS rows (their
    behaviour log-probs are the uniform draw's). Metrics ``cuts/...``."""

    name = "cuts"

    @classmethod
    def active(cls, cfg) -> bool:
        return cfg.sampling.cuts.enabled and cfg.sampling.mixed_plan.cuts > 0

    @classmethod
    def check_config(cls, cfg) -> None:
        plan, g = cfg.sampling.mixed_plan, cfg.train.group_size
        if cfg.sampling.cuts.enabled and plan.standard + plan.cuts != g:
            raise ValueError(f"sampling.mixed_plan: standard + cuts = {plan.standard + plan.cuts} must equal "
                             f"train.group_size = {g}")
        if cfg.sampling.cuts.enabled and cfg.sampling.temperature == 0:
            raise ValueError("sampling.cuts: CUTS draws at random; it needs sampling.temperature > 0")

    def __init__(self, trainer) -> None:
        super().__init__(trainer)
        c = self.cfg.sampling.cuts
        self.operator = CUTS(c.k, c.delta, c.warmup)

    def generate(self, instances, params):
        trainer, plan = self.trainer, self.cfg.sampling.mixed_plan
        prompts = [inst.prompt for inst in instances]
        is_cuts = cuts_rows(len(prompts) // self.cfg.train.group_size, plan.standard, plan.cuts, trainer.acc.device)
        cuts_params = replace(params, seed=stable_hash("cuts", params.seed) % 2**62,
                              row_seeds=None if params.row_seeds is None else
                              tuple(stable_hash("cuts", s) % 2**62 for s in params.row_seeds))
        parts, positions = [], []
        for rows, p, processor in ((~is_cuts, params, None), (is_cuts, cuts_params, self.operator)):
            idx = rows.nonzero().squeeze(-1).tolist()
            if idx:
                parts.append(trainer.generate_for([instances[i] for i in idx], p.for_rows(idx),
                                                  logits_processor=processor))
                positions.append(idx)
        return merge_rollouts(parts, positions, pad_id=trainer.backend.pad_id), is_cuts

    def after_advantages(self, ctx: StepContext) -> dict:
        if not ctx.off_policy.any():
            return {}
        c = self.cfg.sampling.cuts
        return mixed_cuts_metrics(ctx.rewards, ctx.off_policy, ctx.group_ids, ctx.rollouts.behaviour_logp,
                                  ctx.old_logp, ctx.mask, c.warmup, c.k)
