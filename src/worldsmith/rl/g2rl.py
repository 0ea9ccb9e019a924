"""G2RL, gradient-guided novelty shaping of rewards (specs/rl-algorithms.md §5).

G2RL in four pieces, each a pure function:

1. ``g2rl_features``: the sequence feature Phi (B, d) from the final hidden states of the
   old-log-prob forward pass, no backward: per token phi_t = W[y_t] - sum_v p_t(v) W[v] (the
   gradient of log p(y_t) w.r.t. h_t times T), Phi = token mean of phi_t.
2. ``g2rl_weights``: w_ij = exp(r_j) [j != i] / (sum_{k != i} exp(r_k) + eps).
3. ``g2rl_novelty``: nu_i = max(1 - sum_j w_ij cos(Phi_i, Phi_j)^2, 0), per group.
4. ``g2rl_shape``: r~ = r (1 + lam nu~) (``multiplicative``, the default) or r (1 + lam r nu~)
   (``literal_eq12``), clipped to +-clip; the advantage estimator (GRPO) standardises r~ next.

(1) is one chunked pass over the LM head (``worldsmith.rl.head.head_statistics``). The plug-in
``G2RL`` at the end wires the pieces into the trainer.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from worldsmith.rl.head import head_statistics
from worldsmith.rl.methods import LMHead, Method, StepContext, register_method


class G2RLConfig(BaseModel):
    """G2RL reward shaping. Tags say where each default comes from (spec §5.5-5.6)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Shape rewards with G2RL novelty before the advantage estimator.")
    lam: float = Field(
        1.0, ge=0.0,
        description="lambda, the novelty weight. PROPOSED (paper: not stated); sweep {0.5, 1, 2}; "
        "lambda <= 2 keeps |r~| <= 3 without clipping.",
    )
    reward_map: Literal["multiplicative", "literal_eq12"] = Field(
        "multiplicative",
        description="multiplicative: r~ = r (1 + lam nu~), INFERRED from the paper's prose (novel wrong "
        "answers are penalised most); literal_eq12: r~ = r (1 + lam r nu~), Eq. 12 as printed.",
    )
    nu_transform: Literal["minmax", "identity"] = Field(
        "minmax",
        description="nu~ from nu: within-group min-max (0 when max = min), PROPOSED; or nu as is.",
    )
    clip: float = Field(3.0, gt=0.0, description="r~ is clipped to [-clip, clip]. READ (Eq. 13).")
    signed_rewards: bool = Field(
        True,
        description="Map scores in [0, 1] to 2r - 1 before shaping, since the paper's rewards are in "
        "{-1, +1} (READ); INFERRED for worldsmith's [0, 1] scores.",
    )
    eps: float = Field(1e-6, gt=0.0, description="The eps of Phi, w_ij and the norms. PROPOSED (paper: not stated).")
    chunk: int = Field(1024, ge=1, description="Tokens per chunk of the fp32 LM-head pass (peak memory).")


# --- (1) features -------------------------------------------------------------------------------
def g2rl_features(
    hidden: Tensor,
    lm_head_weight: Tensor,
    tokens: Tensor,
    mask: Tensor,
    *,
    bias: Tensor | None = None,
    temperature: float = 1.0,
    chunk: int = 1024,
    eps: float = 1e-6,
) -> Tensor:
    """G2RL's sequence feature Phi (B, d) float32 from a forward pass alone (Eqs. 5-8).

    hidden (B, T, d), lm_head_weight (V, d), tokens (B, T), mask (B, T) bool. Per valid token,
    phi_t = W[y_t] - sum_v p_t(v) W[v] = temperature * d log p(y_t) / d h_t; Phi is their mean
    (divided by n + eps). Computed in fp32, ``chunk`` tokens at a time.
    """
    phi, _ = head_statistics(hidden, lm_head_weight, tokens, mask, bias=bias, temperature=temperature,
                             chunk=chunk, eps=eps, features=True, entropy=False)
    return phi


# --- (2) and (3) novelty ------------------------------------------------------------------------
def g2rl_weights(rewards: Tensor, eps: float = 1e-6) -> Tensor:
    """Reward-softmax reference weights over the other members of one group (Eq. 10).

    rewards (m,) -> w (m, m) float64 with w_ij = exp(r_j) [j != i] / (sum_{k != i} exp(r_k) + eps);
    each row sums to 1 - O(eps) when m > 1, and the diagonal is 0.
    """
    e = rewards.double().exp()  # (m,)
    others = ~torch.eye(len(e), dtype=torch.bool, device=e.device)  # (m, m)
    num = torch.where(others, e[None, :], 0.0)  # (m, m)
    return num / (num.sum(1, keepdim=True) + eps)


def g2rl_novelty(features: Tensor, rewards: Tensor, group_ids: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """The exploration score nu (B,) in [0, 1] of each group member (Eqs. 9-11).

    features (B, d) Phi; rewards (B,) base rewards; group_ids (B,) or None (one group).
    nu_i = max(1 - sum_{j != i} w_ij S_ij^2, 0), S_ij the cosine of Phi_i and Phi_j: 1 for a member
    orthogonal to its peers, 0 for one identical to them; a group of one gets 1.
    """
    if group_ids is None:
        group_ids = torch.zeros(len(rewards), dtype=torch.long, device=rewards.device)
    unit = features.double() / (features.double().norm(dim=-1, keepdim=True) + eps)  # (B, d)
    nu = torch.empty(len(rewards), dtype=torch.float64, device=features.device)
    for g in torch.unique(group_ids):
        idx = (group_ids == g).nonzero().squeeze(-1)  # (m,)
        sim = unit[idx] @ unit[idx].T  # (m, m)
        w = g2rl_weights(rewards[idx], eps)  # (m, m)
        nu[idx] = (1.0 - (w * sim.square()).sum(1)).clamp_min(0.0)
    return nu.to(torch.float32)


# --- (4) the reward map -------------------------------------------------------------------------
def _minmax(nu: Tensor, group_ids: Tensor) -> Tensor:
    out = torch.zeros_like(nu)
    for g in torch.unique(group_ids):
        idx = group_ids == g
        lo, hi = nu[idx].min(), nu[idx].max()
        if hi > lo:
            out[idx] = (nu[idx] - lo) / (hi - lo)
    return out


def g2rl_signed(rewards: Tensor, cfg: G2RLConfig | None = None) -> Tensor:
    """The paper's reward r (B,) float64 from scores (B,) in [0, 1]: 2 * score - 1 when
    ``signed_rewards`` (so a pass is +1 and a fail -1; partial credit maps linearly into (-1, 1)),
    else the scores unchanged. Both the reference weights w_ij = exp(r_j) and the reward map use it."""
    cfg = cfg or G2RLConfig()
    r = rewards.double()
    return 2.0 * r - 1.0 if cfg.signed_rewards else r


def g2rl_shape(rewards: Tensor, nu: Tensor, group_ids: Tensor, cfg: G2RLConfig | None = None) -> Tensor:
    """Shaped rewards r~ (B,) float32 (Eqs. 12-13): base rewards (B,), novelty nu (B,), groups (B,).

    r = 2 * rewards - 1 when ``signed_rewards``; nu~ per ``nu_transform``; then
    multiplicative r (1 + lam nu~) or literal_eq12 r (1 + lam r nu~); clipped to +-clip.
    The caller's advantage estimator (GRPO) standardises the result within each group.
    """
    cfg = cfg or G2RLConfig()
    r = g2rl_signed(rewards, cfg)
    nu_bar = _minmax(nu.double(), group_ids) if cfg.nu_transform == "minmax" else nu.double()
    if cfg.reward_map == "multiplicative":
        shaped = r * (1.0 + cfg.lam * nu_bar)
    else:
        shaped = r * (1.0 + cfg.lam * r * nu_bar)
    return shaped.clamp(-cfg.clip, cfg.clip).to(torch.float32)


def g2rl_metrics(features: Tensor, nu: Tensor, rewards: Tensor, shaped: Tensor, group_ids: Tensor,
                 cfg: G2RLConfig | None = None) -> dict[str, float]:
    """Diagnostics (spec §6): the nu distribution, the share of groups whose base rewards are all
    equal (they now get advantages from nu alone), the clip rate and within-group cosines of Phi."""
    cfg = cfg or G2RLConfig()
    unit = features.double() / (features.double().norm(dim=-1, keepdim=True) + cfg.eps)
    cosines, equal = [], []
    for g in torch.unique(group_ids):
        idx = (group_ids == g).nonzero().squeeze(-1)
        equal.append(bool((rewards[idx] == rewards[idx][0]).all()))
        if len(idx) > 1:
            sim = unit[idx] @ unit[idx].T
            cosines.append(sim[~torch.eye(len(idx), dtype=torch.bool, device=sim.device)])
    cos = torch.cat(cosines) if cosines else torch.zeros(0, dtype=torch.float64)
    nu = nu.double()
    return {
        "g2rl/nu_mean": float(nu.mean()),
        "g2rl/nu_std": float(nu.std(unbiased=False)),
        "g2rl/nu_min": float(nu.min()),
        "g2rl/nu_max": float(nu.max()),
        "g2rl/equal_reward_group_fraction": sum(equal) / len(equal),
        "g2rl/clip_fraction": float((shaped.abs() >= cfg.clip).double().mean()),
        "g2rl/shaped_reward_mean": float(shaped.double().mean()),
        "g2rl/cosine_mean": float(cos.mean()) if len(cos) else 0.0,
        "g2rl/negative_cosine_fraction": float((cos < 0).double().mean()) if len(cos) else 0.0,
    }


# --- the plug-in ----------------------------------------------------------------------------------
@register_method
class G2RL(Method):
    """G2RL in the RL step: Phi from the old-policy forward, then the rewards are shaped by novelty
    before the advantage estimator. Config: ``train.shaping.g2rl``; metrics ``g2rl/...``."""

    name = "g2rl"
    wants_hidden = True

    @classmethod
    def active(cls, cfg) -> bool:
        return cfg.train.shaping.g2rl.enabled

    def hidden_statistics(self, hidden: Tensor, head: LMHead, tokens: Tensor, mask: Tensor,
                          temperature: float) -> Tensor:
        g = self.cfg.train.shaping.g2rl
        phi, _ = head_statistics(hidden, head.weight, tokens, mask, bias=head.bias, temperature=temperature,
                                 chunk=g.chunk, eps=g.eps, features=True)
        return phi  # (b, d)

    def shape_rewards(self, ctx: StepContext, rewards: Tensor) -> tuple[Tensor, dict]:
        g, features = self.cfg.train.shaping.g2rl, ctx.hidden[self.name]  # (B, d)
        nu = g2rl_novelty(features, g2rl_signed(rewards, g), ctx.group_ids, g.eps)  # (B,) in [0, 1]
        shaped = g2rl_shape(rewards, nu, ctx.group_ids, g).to(rewards.device)  # (B,)
        return shaped, g2rl_metrics(features, nu, rewards, shaped, ctx.group_ids, g)
