"""Reward shapers: G2RL's gradient-guided novelty (specs/rl-algorithms.md §5).

G2RL in four pieces, each a pure function:

1. ``g2rl_features``: the sequence feature Phi (B, d) from the final hidden states of the
   old-log-prob forward pass, no backward: per token phi_t = W[y_t] - sum_v p_t(v) W[v] (the
   gradient of log p(y_t) w.r.t. h_t times T), Phi = token mean of phi_t.
2. ``g2rl_weights``: w_ij = exp(r_j) [j != i] / (sum_{k != i} exp(r_k) + eps).
3. ``g2rl_novelty``: nu_i = max(1 - sum_j w_ij cos(Phi_i, Phi_j)^2, 0), per group.
4. ``g2rl_shape``: r~ = r (1 + lam nu~) (``multiplicative``, the default) or r (1 + lam r nu~)
   (``literal_eq12``), clipped to +-clip; the advantage estimator (GRPO) standardises r~ next.

``head_statistics`` is the one chunked pass over the LM head behind (1); it can also return the
full-distribution token entropy that MSSR's paper formula uses, from the same logits.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor


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
def head_statistics(
    hidden: Tensor,
    weight: Tensor,
    tokens: Tensor,
    mask: Tensor,
    *,
    bias: Tensor | None = None,
    temperature: float = 1.0,
    chunk: int = 1024,
    eps: float = 1e-6,
    features: bool = True,
    entropy: bool = False,
) -> tuple[Tensor | None, Tensor | None]:
    """One fp32 pass over the LM head at the valid tokens, chunked over tokens.

    hidden (B, T, d) final hidden states (the LM head's input) at the positions predicting
    ``tokens`` (B, T); weight (V, d); bias (V,) or None; mask (B, T) bool. With
    p_t = softmax((W h_t + b) / temperature), returns
    ``(Phi (B, d) or None, H (B, T) or None)``: Phi = sum_t phi_t / (n + eps) over the n valid
    tokens, phi_t = W[y_t] - p_t^T W; H_t = -sum_v p_t(v) log p_t(v), 0 off the mask.
    """
    B, T, d = hidden.shape
    mask = mask.bool()
    rows = mask.nonzero()[:, 0]  # (N,) sequence of each valid token
    h = hidden[mask].float()  # (N, d)
    y = tokens[mask]  # (N,)
    w = weight.float()  # (V, d)
    b = bias.float() if bias is not None else None
    phis, ents = [], []
    for s in range(0, h.shape[0], chunk):
        z = h[s : s + chunk] @ w.T  # (c, V)
        if b is not None:
            z = z + b
        logp = torch.log_softmax(z / temperature, dim=-1)  # (c, V)
        p = logp.exp()
        if features:
            phis.append(w[y[s : s + chunk]] - p @ w)  # (c, d)
        if entropy:
            ents.append(-(p * logp).sum(-1))  # (c,)
    phi = ent = None
    if features:
        total = torch.zeros(B, d, dtype=torch.float32, device=hidden.device)
        if phis:
            total.index_add_(0, rows, torch.cat(phis))
        phi = total / (mask.sum(1, keepdim=True).float() + eps)  # (B, d)
    if entropy:
        ent = torch.zeros(B, T, dtype=torch.float32, device=hidden.device)
        if ents:
            ent[mask] = torch.cat(ents)
    return phi, ent


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
