"""The generation-backend interface: what the trainer asks of any engine (HF, vLLM, HTTP).

A backend turns prompts into a ``Rollouts`` batch. Rollouts always carry the behaviour log-prob of
every sampled token (the log-prob under the distribution the token was actually drawn from: for
plain sampling that is the temperature/top-k/top-p-adjusted policy; for CUTS it is the uniform draw)
and a completion mask, so the trainer never needs a second pass to know how a token was sampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 32
    temperature: float = 1.0
    top_k: int = 0  # 0 = no top-k filter
    top_p: float = 1.0  # 1.0 = no nucleus filter
    seed: int | None = None  # a torch.Generator seed for reproducible sampling

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class Rollouts:
    """A batch of B completions, right-padded to T tokens.

    prompt_ids       (B, P) long, left-padded prompts as fed to the model
    prompt_mask      (B, P) bool, True on real prompt tokens
    completion_ids   (B, T) long, sampled tokens (pad after EOS)
    completion_mask  (B, T) bool, True on sampled tokens up to and including EOS
    behaviour_logp   (B, T) float32, log-prob of each sampled token under the sampling distribution
    texts            B decoded completions (special tokens removed)
    step_spans       per sequence, a list of (start, end) token spans of reasoning steps
    finished         (B,) bool, True where the completion ended with EOS (False: cut at
                     max_new_tokens); None when a backend does not say
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    behaviour_logp: torch.Tensor
    texts: list[str]
    step_spans: list[list[tuple[int, int]]] = field(default_factory=list)
    finished: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.texts)


@runtime_checkable
class GenerationBackend(Protocol):
    """Anything that can sample completions for a list of prompts."""

    def generate(self, prompts: list[str], params: SamplingParams) -> Rollouts: ...
