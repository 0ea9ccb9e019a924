"""The generation-backend interface: what the trainer asks of any engine (HF, vLLM, HTTP).

A backend turns prompts into a ``Rollouts`` batch. Rollouts always carry the behaviour log-prob of
every sampled token (the log-prob under the distribution the token was actually drawn from: for
plain sampling that is the temperature/top-k/top-p-adjusted policy; for CUTS it is the uniform draw)
and a completion mask, so the trainer never needs a second pass to know how a token was sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
    # one seed per prompt: each row then draws from its own stream, so its completion does not
    # depend on the other prompts in the call or how they are batched (used by the trainer, so a
    # run draws the same completions on any number of processes); overrides ``seed`` where supported
    row_seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def for_rows(self, rows: Sequence[int]) -> SamplingParams:
        """These params for a call that samples only ``rows`` of the prompts (their own row seeds)."""
        if self.row_seeds is None:
            return self
        return replace(self, row_seeds=tuple(self.row_seeds[i] for i in rows))


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
    vision           per row, the processor's image inputs for that row's prompt (e.g.
                     ``{"pixel_values": (1, 3, H, W)}``), None for a row without an image; None
                     for a text-only batch. ``vision_inputs`` stacks them for a forward pass.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    behaviour_logp: torch.Tensor
    texts: list[str]
    step_spans: list[list[tuple[int, int]]] = field(default_factory=list)
    finished: torch.Tensor | None = None
    vision: list[dict[str, torch.Tensor] | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)


def merge_rollouts(parts: list[Rollouts], positions: list[list[int]], pad_id: int = 0) -> Rollouts:
    """One batch from several: row j of ``parts[k]`` becomes row ``positions[k][j]`` of the result.

    ``positions`` together must cover 0..N-1 exactly once (N = total rows). Prompts are re-padded
    on the left and completions on the right to the widest part, with ``pad_id`` and mask False;
    ``step_spans``, ``finished`` and ``vision`` are kept when every part has them. Example: a standard and a
    CUTS sub-group of one 4-member group, put back in group order:
    ``merge_rollouts([standard, cuts], [[0, 1], [2, 3]])``.
    """
    if len(parts) != len(positions) or not parts:
        raise ValueError(f"need one position list per part, got {len(parts)} parts and {len(positions)} lists")
    n = sum(len(p) for p in parts)
    flat = sorted(i for pos in positions for i in pos)
    if flat != list(range(n)) or any(len(p) != len(pos) for p, pos in zip(parts, positions)):
        raise ValueError("positions must give each row of each part a distinct place in 0..N-1")
    first = parts[0]
    device = first.prompt_ids.device
    width_p = max(p.prompt_ids.shape[1] for p in parts)
    width_t = max(p.completion_ids.shape[1] for p in parts)
    prompt_ids = torch.full((n, width_p), pad_id, dtype=first.prompt_ids.dtype, device=device)
    prompt_mask = torch.zeros((n, width_p), dtype=torch.bool, device=device)
    completion_ids = torch.full((n, width_t), pad_id, dtype=first.completion_ids.dtype, device=device)
    completion_mask = torch.zeros((n, width_t), dtype=torch.bool, device=device)
    behaviour = torch.zeros((n, width_t), dtype=first.behaviour_logp.dtype, device=device)
    texts: list[str] = [""] * n
    spans: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    keep_spans = all(len(p.step_spans) == len(p) for p in parts)
    keep_finished = all(p.finished is not None for p in parts)
    keep_vision = all(p.vision is not None for p in parts)
    vision: list = [None] * n
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    for part, pos in zip(parts, positions):
        rows = torch.tensor(pos, dtype=torch.long, device=device)
        wp, wt = part.prompt_ids.shape[1], part.completion_ids.shape[1]
        prompt_ids[rows, width_p - wp :] = part.prompt_ids
        prompt_mask[rows, width_p - wp :] = part.prompt_mask.bool()
        completion_ids[rows, :wt] = part.completion_ids
        completion_mask[rows, :wt] = part.completion_mask.bool()
        behaviour[rows, :wt] = part.behaviour_logp
        if keep_finished:
            finished[rows] = part.finished.bool()
        for j, i in enumerate(pos):
            texts[i] = part.texts[j]
            if keep_spans:
                spans[i] = part.step_spans[j]
            if keep_vision:
                vision[i] = part.vision[j]
    return Rollouts(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        behaviour_logp=behaviour,
        texts=texts,
        step_spans=spans if keep_spans else [],
        finished=finished if keep_finished else None,
        vision=vision if keep_vision else None,
    )


def vision_inputs(rows: Sequence[dict[str, torch.Tensor] | None] | None,
                  device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """The image inputs of a forward over ``rows`` (``Rollouts.vision`` entries, in batch order):
    each key concatenated along dim 0 over the rows that have an image, which is the order a
    LLaVA- or Qwen-VL-style model matches image features to image tokens. ``{}`` without images."""
    present = [r for r in rows or () if r]
    if not present:
        return {}
    out = {key: torch.cat([r[key] for r in present], dim=0) for key in present[0]}
    return {k: v.to(device) for k, v in out.items()} if device is not None else out


@runtime_checkable
class GenerationBackend(Protocol):
    """Anything that can sample completions for a list of prompts. A backend that also takes
    images (one PNG/JPEG bytes or None per prompt) says so with ``takes_images = True`` and
    accepts ``generate(prompts, params, images=[...])``."""

    def generate(self, prompts: list[str], params: SamplingParams) -> Rollouts: ...
