"""Test-time training over a long document, chunk by chunk, evaluate-then-train.

The document (token ids) is cut into chunks of ``chunk`` tokens. For chunk k the model sees at most
``window`` tokens: the chunk and the ``window - chunk`` tokens before it. Each chunk is first scored
(its next-token negative log-likelihoods are recorded) and only then trained on, ``steps`` Adam
steps on the memory's parameters alone, so no token is ever scored by a model that has trained on
it. The first training step reuses the scoring forward pass (its logits come from the model before
the update, which is what evaluate-then-train means), so a step costs one backward pass more than
reading. With ``context_grad=False`` the context runs without gradient and only the chunk's
positions are backpropagated (the chunk attends to the context's cached keys and values).

Memories (``Memory``): none (plain reading with the small window: the context-truncation baseline),
Locas (``LocasMemory``, spec §3) and TempLoRA (``TempLoRAMemory``: a peft LoRA adapter on every
projection, updated the same way). A memory is attached after chunk 0 has been scored, from that
chunk (the Locas inits read its activations).

>>> result = read_document(model, ids, LocasMemory(MemoryConfig(rank=16)), TTTConfig(chunk=128, window=256))
>>> result.ppl_by_position(bins=8)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from worldsmith.configuration import Strict
from worldsmith.memory.locas import Locas, MemoryConfig, attach, decoder_layers


class TTTConfig(Strict):
    """Streaming test-time training (spec §3.7; chunk, steps PROPOSED to mirror TempLoRA)."""

    chunk: int = Field(1024, ge=2, description="Tokens scored and then trained on per step of the stream.")
    window: int = Field(2048, ge=2, description="Most tokens the model sees at once (chunk + context before it).")
    steps: int = Field(1, ge=0, description="Optimiser steps per chunk (0 = read only).")
    lr: float = Field(4e-3, gt=0.0, description="Adam learning rate of the memory (4e-3: Locas-GLU, spec §3.7).")
    context_grad: bool = Field(
        True, description="Backpropagate through the context before each chunk (exact). False: the context is "
                          "read once without gradient and the chunk attends to its cached keys and values, so "
                          "the backward pass covers the chunk only (cheaper) and ignores the memory's effect "
                          "on the context.")

    @model_validator(mode="after")
    def _chunk_fits(self) -> TTTConfig:
        if self.chunk >= self.window:
            raise ValueError(f"chunk {self.chunk} must be shorter than the window {self.window} "
                             "(a chunk's first token is predicted from the token before it)")
        return self


# --- memories ----------------------------------------------------------------------------------------
class Memory:
    """What ``read_document`` trains: attach to a model from the first chunk, expose parameters,
    enforce constraints after a step, and leave the model as it was (``detach``)."""

    name = "none"

    def attach(self, model: nn.Module, first_chunk: Tensor) -> nn.Module:
        """Returns the module to call (the model itself, or a wrapper)."""
        return model

    def parameters(self) -> list[nn.Parameter]:
        return []

    def after_step(self) -> None:
        pass

    def detach(self) -> None:
        pass


class LocasMemory(Memory):
    """A Locas memory (``MemoryConfig``); ``after_step`` clips the slot norms."""

    def __init__(self, cfg: MemoryConfig) -> None:
        self.cfg = cfg
        self.name = f"locas-{cfg.variant}-{cfg.resolved_init()}"
        self.locas: Locas | None = None

    def attach(self, model: nn.Module, first_chunk: Tensor) -> nn.Module:
        self.locas = attach(model, self.cfg, first_chunk)
        return model

    def parameters(self) -> list[nn.Parameter]:
        return list(self.locas.parameters()) if self.locas is not None else []

    def after_step(self) -> None:
        self.locas.clip_()

    def detach(self) -> None:
        if self.locas is not None:
            self.locas.detach()


#: The projections of a Llama/Qwen decoder layer TempLoRA adapts.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_parameters_per_rank(model: nn.Module, layers: list[int] | None = None) -> int:
    """LoRA parameters one unit of rank adds over ``LORA_TARGETS`` of ``layers`` (all by default)."""
    blocks = decoder_layers(model)
    chosen = range(len(blocks)) if layers is None else layers
    total = 0
    for i in chosen:
        for name, mod in blocks[i].named_modules():
            if isinstance(mod, nn.Linear) and name.split(".")[-1] in LORA_TARGETS:
                total += mod.in_features + mod.out_features
    return total


def matching_lora_rank(model: nn.Module, n_params: int) -> int:
    """The LoRA rank whose parameter count is closest to ``n_params`` (at least 1)."""
    return max(1, round(n_params / lora_parameters_per_rank(model)))


class TempLoRAMemory(Memory):
    """TempLoRA: LoRA (peft) on every projection, trained on the stream; removed by ``detach``."""

    def __init__(self, rank: int, alpha: float | None = None, seed: int = 0) -> None:
        self.rank, self.alpha, self.seed = rank, alpha if alpha is not None else 2.0 * rank, seed
        self.name = f"templora-r{rank}"
        self.peft_model = None

    def attach(self, model: nn.Module, first_chunk: Tensor) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=0.0,
                            target_modules=list(LORA_TARGETS))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.peft_model = get_peft_model(model, config)
        return self.peft_model

    def parameters(self) -> list[nn.Parameter]:
        if self.peft_model is None:
            return []
        return [p for n, p in self.peft_model.named_parameters() if "lora_" in n]

    def detach(self) -> None:
        if self.peft_model is not None:
            self.peft_model.unload()
            self.peft_model = None


# --- the stream --------------------------------------------------------------------------------------
@dataclass
class ReadResult:
    """Per-token losses of one pass over a document, and what happened in which order.

    ``nll[t]`` is -log p(token t | the tokens before it in its window), NaN for t = 0.
    ``events`` lists ``("score" | "train", start, end)`` in the order they happened."""

    nll: Tensor
    events: list[tuple[str, int, int]] = field(default_factory=list)
    seconds: float = 0.0
    memory: str = "none"
    memory_params: int = 0

    def ppl(self, start: int = 0, end: int | None = None) -> float:
        part = self.nll[start:end]
        part = part[~torch.isnan(part)]
        return math.exp(float(part.mean())) if part.numel() else float("nan")

    def ppl_by_position(self, bins: int = 10) -> list[tuple[int, int, float]]:
        """[(start, end, perplexity)] over ``bins`` equal spans of the document."""
        n = self.nll.shape[0]
        edges = [round(k * n / bins) for k in range(bins + 1)]
        return [(a, b, self.ppl(a, b)) for a, b in zip(edges, edges[1:]) if b > a]


def _token_nll(logits: Tensor, targets: Tensor) -> Tensor:
    """logits (T, V) predicting targets (T,) -> (T,) negative log-likelihoods in fp32."""
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")


def _chunk_nll(net: nn.Module, ids: Tensor, lo: int, first: int, end: int, cached: bool = False) -> Tensor:
    """Negative log-likelihoods (end - first,) of ``ids[first:end]``, each given the tokens from ``lo``
    before it. Only the logits of those tokens are computed (``logits_to_keep``). ``cached``: the
    context ``ids[lo:first - 1]`` runs first without gradient and the chunk then reads its keys and
    values from the cache, so a backward pass covers the chunk's positions only."""
    from worldsmith.policy.hf_backend import cache_kwarg, keeps_logits, new_cache

    if end <= first:
        return torch.zeros(0)
    keep = {"logits_to_keep": end - first} if keeps_logits(net) else {}
    split = first - 1  # the token whose logits predict ids[first]
    if not cached or split <= lo:
        logits = net(ids[lo:end - 1][None], **keep).logits[0]
        return _token_nll(logits[-(end - first):], ids[first:end])
    cache = new_cache(net)
    with torch.no_grad():
        net(ids[lo:split][None], use_cache=True, **{cache_kwarg(net): cache}, **({"logits_to_keep": 1} if keep else {}))
    logits = net(ids[split:end - 1][None], use_cache=True, **{cache_kwarg(net): cache}, **keep).logits[0]
    return _token_nll(logits[-(end - first):], ids[first:end])


def read_document(model: nn.Module, ids: Tensor, memory: Memory | None = None, cfg: TTTConfig | None = None,
                  progress: bool = False, desc: str = "read", keep_memory: bool = False) -> ReadResult:
    """Stream ``ids`` (N,) through ``model`` (see the module doc); returns per-token losses.

    The backbone's parameters are frozen for the pass and given back their ``requires_grad``
    afterwards; unless ``keep_memory`` the memory is detached at the end, leaving the model as it
    was."""
    cfg = cfg or TTTConfig()
    memory = memory or Memory()
    ids = ids.reshape(-1)
    n = ids.shape[0]
    device = next(model.parameters()).device
    ids = ids.to(device)
    nll = torch.full((n,), float("nan"))
    events: list[tuple[str, int, int]] = []
    grad_flags = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    was_training = model.training
    model.eval()
    bar = None
    if progress:
        from worldsmith.progress import progress_bar

        bar = progress_bar(total=n, desc=f"{desc} {memory.name}", unit="tok")
    net, optimiser = model, None
    started = time.perf_counter()
    try:
        for start in range(0, n, cfg.chunk):
            end = min(start + cfg.chunk, n)
            lo = max(0, start - (cfg.window - cfg.chunk))
            first = max(start, 1)  # token 0 has nothing before it
            train_now = optimiser is not None and cfg.steps > 0
            with torch.set_grad_enabled(train_now):
                losses = _chunk_nll(net, ids, lo, first, end, cached=train_now and not cfg.context_grad)
            nll[first:end] = losses.detach().float().cpu()
            events.append(("score", start, end))
            if optimiser is None and cfg.steps > 0 and type(memory) is not Memory:
                net = memory.attach(model, ids[lo:end])
                params = memory.parameters()
                for p in params:
                    p.requires_grad_(True)
                optimiser = torch.optim.Adam(params, lr=cfg.lr)
                losses = None  # the scoring pass ran before the memory existed
            if optimiser is not None and cfg.steps > 0 and end - first > 0:
                for step in range(cfg.steps):
                    if step > 0 or losses is None:
                        losses = _chunk_nll(net, ids, lo, first, end, cached=not cfg.context_grad)
                    optimiser.zero_grad(set_to_none=True)
                    losses.mean().backward()
                    optimiser.step()
                    memory.after_step()
                    losses = None
                events.append(("train", start, end))
            if bar is not None:
                bar.update(end - start)
                done = nll[1:end]
                bar.set_postfix(ppl=f"{math.exp(float(done[~torch.isnan(done)].mean())):.3f}")
        seconds = time.perf_counter() - started
        n_params = sum(p.numel() for p in memory.parameters())
    finally:
        if bar is not None:
            bar.close()
        if not keep_memory:
            memory.detach()
        for p, flag in grad_flags.items():
            p.requires_grad_(flag)
        model.train(was_training)
    return ReadResult(nll=nll, events=events, seconds=seconds, memory=memory.name, memory_params=n_params)
