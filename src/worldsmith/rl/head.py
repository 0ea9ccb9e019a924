"""One fp32 pass over the policy's LM head at the valid tokens of a batch (no backward).

It yields the per-sequence gradient features Phi that G2RL's novelty uses and the
full-distribution token entropy that MSSR's paper formula uses, from the same logits.
"""

from __future__ import annotations

import torch
from torch import Tensor


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
