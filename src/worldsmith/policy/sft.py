"""Supervised warm-start: teach a policy the response format on oracle solutions.

A completion is the environment's reference trace (one line per step, when the environment has
``steps``) followed by ``env.wrap(reference)`` and EOS, e.g. ``"7\\n21\\n16\\n<answer>16</answer>"``
+ EOS. The loss covers completion tokens only; prompts are formatted exactly as ``HFBackend``
formats them (``encode_prompts``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from worldsmith import envs
from worldsmith.policy.model import encode_prompts, eos_token_ids
from worldsmith.progress import progress_bar

EnvSpec = tuple[str, float, float]  # (env name, difficulty, weight)


def sft_completion(env: envs.Environment, instance: envs.Instance, eos: str = "", with_steps: bool = True) -> str:
    """The target completion for one instance: reasoning lines (when the environment has a step
    trace and ``with_steps``), the wrapped answer, then ``eos``."""
    steps = env.steps(instance.data) if with_steps and env.has_steps() else None
    trace = "".join(f"{s}\n" for s in steps) if steps else ""
    return f"{trace}{env.wrap(instance.reference)}{eos}"


def sft_examples(
    env_specs: Sequence[EnvSpec],
    n: int,
    split: str = "train",
    seed: int = 0,
    *,
    start: int = 0,
    eos: str = "",
    with_steps: bool = True,
) -> list[tuple[str, str]]:
    """``n`` (prompt, completion) pairs drawn from a weighted mixture of environments.

    Example ``i`` comes from the spec chosen by ``random.Random(seed)`` in proportion to the
    weights, and its instance uses seed ``split_seed(split, start + i)``. ``eos`` is appended to
    every completion as text (e.g. ``tokenizer.eos_token``); ``train_sft`` appends the EOS id
    itself when a completion does not already end with it, so the default ``""`` is fine there.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not env_specs:
        raise ValueError("env_specs is empty")
    weights = [float(w) for _, _, w in env_specs]
    if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero: {weights}")
    loaded = {name: envs.get(name) for name, _, _ in env_specs}
    rng = random.Random(seed)
    picks = rng.choices(range(len(env_specs)), weights=weights, k=n)
    out = []
    for i, k in enumerate(picks):
        name, difficulty, _ = env_specs[k]
        env = loaded[name]
        instance = env.sample(envs.split_seed(split, start + i), difficulty)
        out.append((instance.prompt, sft_completion(env, instance, eos, with_steps)))
    return out


def tokenize_examples(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[tuple[str, str]], eos_id: int
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids ending with ``eos_id``) for each example."""
    prompts = encode_prompts(tokenizer, [p for p, _ in examples])
    completions = tokenizer([c for _, c in examples], add_special_tokens=False)["input_ids"]
    out = []
    for p, c in zip(prompts, completions):
        c = list(c)
        if not c or c[-1] != eos_id:
            c.append(eos_id)
        out.append((list(p), c))
    return out


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    width = max(len(p) + len(c) for p, c in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for i, (p, c) in enumerate(batch):
        n = len(p) + len(c)
        ids[i, :n] = torch.tensor(p + c)
        attn[i, :n] = 1
        labels[i, len(p) : n] = torch.tensor(c)
    return ids, attn, labels


def _buckets(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of examples of similar length (less padding), in random order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def train_sft(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[tuple[str, str]],
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
    *,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = 1.0,
    schedule: str = "cosine",
    warmup: float = 0.05,
    device: str | torch.device | None = None,
) -> dict:
    """Fine-tune ``model`` in place on (prompt, completion) pairs; loss on completion tokens only.

    AdamW; the learning rate warms up linearly over the first ``warmup`` fraction of steps, then
    stays at ``lr`` (``schedule="constant"``) or decays to 0 along a cosine (``"cosine"``).
    Batches are bucketed by length and shuffled each epoch. Returns
    ``{"loss": final, "first_loss", "final_loss", "steps", "tokens", "seconds"}``, where
    ``first_loss`` / ``final_loss`` average the first / last few steps (up to 10, at most a tenth).
    """
    if not examples:
        raise ValueError("no SFT examples")
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be >= 1")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    eos_id = eos_token_ids(model, tokenizer)[0]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    data = tokenize_examples(tokenizer, examples, eos_id)
    lengths = [len(p) + len(c) for p, c in data]
    rng = random.Random(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(data) / batch_size)
    total = epochs * steps_per_epoch
    warm = int(warmup * total)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    losses: list[float] = []
    tokens = 0
    started = time.perf_counter()
    was_training = model.training
    model.train()
    bar = progress_bar(total=total, desc="sft", disable=not progress, leave=False)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for _ in range(epochs):
                for batch in _buckets(lengths, batch_size, rng):
                    ids, attn, labels = (t.to(device) for t in _collate([data[i] for i in batch], pad_id))
                    logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits[:, :-1]
                    target = labels[:, 1:]
                    loss = torch.nn.functional.cross_entropy(
                        logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1), ignore_index=-100
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    losses.append(float(loss.detach()))
                    tokens += int((target != -100).sum())
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.3f}")
    finally:
        bar.close()
        model.train(was_training)
        model.zero_grad(set_to_none=True)  # the last batch's gradient must not reach later training
    k = max(1, min(10, len(losses) // 10))
    first, final = sum(losses[:k]) / k, sum(losses[-k:]) / k
    return {
        "loss": final,
        "first_loss": first,
        "final_loss": final,
        "steps": len(losses),
        "tokens": tokens,
        "seconds": time.perf_counter() - started,
    }
