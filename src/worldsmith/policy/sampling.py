"""Token samplers beyond temperature / top-k / top-p: CUTS (constrained uniform top-k sampling).

CUTS (specs/rl-algorithms.md §2.2). At response position t (counting from 0):

1. t < warmup: draw from the ordinary policy distribution (prefix protection).
2. otherwise p_t = softmax(z_t) at temperature 1, C_t = the top-k tokens of p_t, and the kept set
   S_t = {v in C_t : p_t(v) > delta}; when S_t is empty, S_t = C_t.
3. draw o_t ~ Uniform(S_t); its behaviour log-prob is log(1 / |S_t|).

Two ways to use it, for any backend:

- ``CUTS`` is a logits processor ``(logits, step) -> logits`` that leaves survivors at 0 and puts
  everything else at the dtype's most negative finite value (never -inf: fp16-safe). A backend
  applies it to the raw logits *before* temperature, top-k and top-p, so delta acts on
  temperature-1 probabilities; ``HFBackend`` passes ``step`` to any processor with a ``step``
  parameter. Temperature and top-k leave the uniform set unchanged; top-p < 1 would truncate it.
- ``cuts_sample`` draws tokens and behaviour log-probs directly, for backends with their own loop.

>>> import torch
>>> cuts_mask(torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.04, 0.01]])), k=5, delta=0.03).tolist()
[[True, True, True, True, False]]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def _kept_top_k(logits: Tensor, k: int, delta: float) -> tuple[Tensor, Tensor]:
    """``(top_i (..., k) long, keep (..., k) bool)``: the top-k token ids and which of them form S_t.

    The top-k of the logits is the top-k of the probabilities (softmax is monotone), so only the k
    kept probabilities are computed: p = exp(z - logsumexp(z)).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    z = logits.float()  # (..., V)
    top_z, top_i = torch.topk(z, min(k, z.shape[-1]), dim=-1)  # (..., k)
    top_p = (top_z - torch.logsumexp(z, dim=-1, keepdim=True)).exp()  # (..., k)
    keep = top_p > delta  # (..., k)
    return top_i, keep | ~keep.any(dim=-1, keepdim=True)  # fallback: uniform over the full top-k


def cuts_mask(logits: Tensor, k: int = 5, delta: float = 0.03) -> Tensor:
    """The kept set S_t as a boolean mask over the vocabulary.

    logits (..., V) raw next-token logits; returns (..., V) bool, True on S_t: the top-k tokens
    whose temperature-1 probability is > delta, or the whole top-k when none is.
    """
    top_i, keep = _kept_top_k(logits, k, delta)
    return torch.zeros(logits.shape, dtype=torch.bool, device=logits.device).scatter(-1, top_i, keep)


def cuts_logits(logits: Tensor, k: int = 5, delta: float = 0.03) -> Tensor:
    """Logits (..., V) whose softmax is uniform over S_t: 0 on S_t, the dtype's min elsewhere."""
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    floor = torch.finfo(logits.dtype).min
    top_i, keep = _kept_top_k(logits, k, delta)
    kept = torch.where(keep, 0.0, floor).to(logits.dtype)  # (..., k)
    return torch.full_like(logits, floor).scatter(-1, top_i, kept)


@dataclass(frozen=True)
class CUTS:
    """The CUTS operator with its constants (defaults from the paper, spec §2.4, READ).

    ``CUTS()(logits, step)`` is the logits processor; ``CUTS().sample(logits, step)`` draws.
    """

    k: int = 5
    delta: float = 0.03
    warmup: int = 5

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if not 0.0 <= self.delta < 1.0:
            raise ValueError(f"delta must be in [0, 1), got {self.delta}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")

    def __call__(self, logits: Tensor, step: int) -> Tensor:
        """Raw logits (N, V) at response position ``step`` -> processed logits (N, V)."""
        if step < self.warmup:
            return logits
        return cuts_logits(logits, self.k, self.delta)

    def sample(
        self, logits: Tensor, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw one token per row: ``(tokens (N,) long, behaviour_logp (N,) float32)``."""
        return cuts_sample(logits, step, k=self.k, delta=self.delta, warmup=self.warmup, generator=generator)


def cuts_sample(
    logits: Tensor,
    step: int,
    *,
    k: int = 5,
    delta: float = 0.03,
    warmup: int = 5,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """One CUTS draw per row of raw logits (N, V) at response position ``step``.

    Before ``warmup`` the draw is from softmax(logits) (temperature 1) and the log-prob is the
    policy's; afterwards it is uniform over S_t and the log-prob is -log |S_t|.
    Returns tokens (N,) long and behaviour log-probs (N,) float32.
    """
    if step < warmup:
        logp = torch.log_softmax(logits.float(), dim=-1)  # (N, V)
    else:
        keep = cuts_mask(logits, k, delta)  # (N, V)
        size = keep.sum(-1, keepdim=True).float()  # (N, 1)
        logp = torch.where(keep, -size.log(), float("-inf"))  # (N, V)
    tokens = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)  # (N,)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)
