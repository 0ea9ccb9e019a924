"""A discriminative process reward model: a small causal transformer with a step-score head.

The input is the problem's prompt as the backbone's policy reads it (``encode_prompts``: its chat
template, or the prompt, a newline and the tokenizer's special tokens), then each step followed by
a newline: the text the policy itself would have written. A linear head
gives every token a logit w . h + b from its final hidden state; step k's score is the sigmoid of
the logit at its closing newline (``pool="last"``, the default: it sees the problem and steps
0..k), or of the smallest logit over the step's tokens (``pool="min"``: one token that does not
fit is enough to reject the step). On decision_chain the closing newline scored the better F1.
``pool="likelihood"`` adds to the closing newline's logit a learnt weighting of the step's least
and mean token log-probability under the backbone's own language-model head (what
``LikelihoodPRM`` scores by, here calibrated on oracle labels); the backbone is then frozen, so
those log-probabilities stay the policy's, and only the two heads are trained. The backbone is the tiny transformer the lab builds from config, or any
local policy folder (``init``: e.g. a base policy from ``worldsmith base build``) with its
tokenizer. Training is binary cross-entropy on oracle labels (``worldsmith.prm.data``): the steps
before a trace's first error are positives, the first error a negative, later steps unlabelled.

Saved as a folder: ``backbone/`` (a policy folder), ``head.pt`` and ``prm.json`` (what it was
trained on and how). Inputs longer than the backbone's context keep their last tokens; steps
pushed out of the window score 0 (not verified).
"""

from __future__ import annotations

import contextlib
import json
import math
import pathlib
import random
import time
from collections.abc import Callable, Sequence

import torch

from worldsmith.envs.contract import Instance
from worldsmith.prm import PRM
from worldsmith.prm.data import LabelledTrace

HEAD_FILE, INFO_FILE, BACKBONE, LIKELIHOOD_FILE = "head.pt", "prm.json", "backbone", "likelihood_head.pt"
POOLS = ("last", "min", "likelihood")


#: How a PRM's input encodes the prompt: as the policy reads it (with the tokenizer's special tokens
#: or chat template). PRMs saved without ``prompt_format`` in ``prm.json`` used the bare text.
POLICY_FORMAT = "policy"


def encode_trace(tokenizer, prompt: str, steps: Sequence[str], context: int,
                 policy_format: bool = True) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of the PRM's input and each step's token span ``[start, end]`` (end = its closing
    newline; ``(-1, -1)`` for a step cut off by the context window). ``policy_format``: the prompt
    as ``encode_prompts`` gives it; else its bare text and a newline."""
    from worldsmith.policy.model import encode_prompts

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    out = list(encode_prompts(tokenizer, [prompt])[0]) if policy_format else ids(prompt + "\n")
    spans = []
    for step in steps:
        start = len(out)
        out += ids(step.replace("\n", " ") + "\n")
        spans.append((start, len(out) - 1))
    cut = max(0, len(out) - context)
    return out[cut:], [(max(a, cut) - cut, b - cut) if b >= cut else (-1, -1) for a, b in spans]


def step_logits(token_logits: torch.Tensor, spans: Sequence[tuple[int, int]], pool: str,
                token_logp: torch.Tensor | None = None,
                likelihood_head: torch.nn.Module | None = None) -> list[torch.Tensor | None]:
    """One logit per step from a row's token logits (L,): the minimum over the step's span, or its
    last token's; None for a step outside the window. With ``pool="likelihood"``, the last token's
    logit plus ``likelihood_head`` of the step's (least, mean) token log-probability, read from the
    row's ``token_logp`` (L,) (position t: log p(token t | tokens before it))."""
    out = []
    for a, b in spans:
        if b < 0:
            out.append(None)
        elif pool == "min":
            out.append(token_logits[a : b + 1].min())
        elif pool == "likelihood":
            lp = token_logp[max(a, 1) : b + 1]
            if lp.numel() == 0:  # a step at position 0 has no prediction
                lp = token_logp.new_zeros(1)
            out.append(token_logits[b] + likelihood_head(torch.stack([lp.min(), lp.mean()])).squeeze(-1))
        else:
            out.append(token_logits[b])
    return out


def token_logprobs(lm_logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """(b, L): log p(token t | tokens before t) under ``lm_logits`` (b, L, V); position 0 gets 0."""
    logp = torch.log_softmax(lm_logits[:, :-1].float(), -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return torch.cat([logp.new_zeros(logp.shape[0], 1), logp], dim=1)


class StepScorer(torch.nn.Module):
    """A causal LM's final hidden states -> one logit per position."""

    def __init__(self, backbone, likelihood: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(backbone.config.hidden_size, 1)
        #: (least, mean) step log-probability -> logit, for ``pool="likelihood"``; starts as
        #: "least log-probability + 2" (a step whose every token has p >= e^-2 starts above 0.5).
        self.likelihood = torch.nn.Linear(2, 1) if likelihood else None
        if self.likelihood is not None:
            with torch.no_grad():
                self.likelihood.weight.copy_(torch.tensor([[1.0, 0.0]]))
                self.likelihood.bias.fill_(2.0)
            self.backbone.requires_grad_(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.outputs(input_ids, attention_mask)[0]

    def outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token logits (b, L) and, with a likelihood head, the backbone's token log-probabilities (b, L)."""
        with torch.no_grad() if self.likelihood is not None else contextlib.nullcontext():
            out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        logits = self.head(out.hidden_states[-1].float()).squeeze(-1)  # (b, L)
        return logits, (token_logprobs(out.logits, input_ids) if self.likelihood is not None else None)


def pad_rows(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


class TrainedPRM(PRM):
    """Scores from a ``StepScorer``; ``batch_size`` traces per forward."""

    name = "trained"

    def __init__(self, scorer: StepScorer, tokenizer, info: dict | None = None, batch_size: int = 32) -> None:
        super().__init__()
        self.scorer, self.tokenizer = scorer.eval(), tokenizer
        self.info = dict(info or {})
        self.pool = self.info.get("pool", "last")
        self.policy_format = self.info.get("prompt_format") == POLICY_FORMAT
        self.batch_size = batch_size
        self.context = int(scorer.backbone.config.max_position_embeddings)

    @torch.no_grad()
    def score_batch(self, items: Sequence[tuple[Instance, Sequence[str]]]) -> list[list[float]]:
        out: list[list[float]] = []
        self.calls += len(items)
        pad = self.tokenizer.pad_token_id or 0
        for s in range(0, len(items), self.batch_size):
            chunk = [encode_trace(self.tokenizer, inst.prompt, steps, self.context, self.policy_format)
                     for inst, steps in items[s : s + self.batch_size]]
            ids, mask = pad_rows([c[0] for c in chunk], pad)
            logits, logp = self.scorer.outputs(ids, mask)  # (b, L) each
            for row, (_, spans) in enumerate(chunk):
                out.append([float(torch.sigmoid(x)) if x is not None else 0.0
                            for x in step_logits(logits[row], spans, self.pool,
                                                 None if logp is None else logp[row], self.scorer.likelihood)])
        return out

    def score_steps(self, instance: Instance, steps: Sequence[str]) -> list[float]:
        return self.score_batch([(instance, steps)])[0]

    def save(self, folder: str | pathlib.Path) -> pathlib.Path:
        from worldsmith.policy.model import save_policy

        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_policy(self.scorer.backbone, self.tokenizer, folder / BACKBONE)
        torch.save(self.scorer.head.state_dict(), folder / HEAD_FILE)
        if self.scorer.likelihood is not None:
            torch.save(self.scorer.likelihood.state_dict(), folder / LIKELIHOOD_FILE)
        info = {**self.info, "prompt_format": POLICY_FORMAT if self.policy_format else "text"}
        (folder / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: str | pathlib.Path) -> TrainedPRM:
        """The PRM saved in ``folder`` (ValueError, one line, when it holds none)."""
        from worldsmith.policy.model import load_policy

        folder = pathlib.Path(folder)
        if not (folder / HEAD_FILE).is_file() or not (folder / INFO_FILE).is_file():
            raise ValueError(f"{folder} holds no trained PRM (expected {HEAD_FILE} and {INFO_FILE}; "
                             "see `worldsmith prm train`)")
        info = json.loads((folder / INFO_FILE).read_text())
        likelihood = info.get("pool") == "likelihood"
        if likelihood and not (folder / LIKELIHOOD_FILE).is_file():
            raise ValueError(f"{folder}: a likelihood-pooled PRM without its {LIKELIHOOD_FILE}")
        backbone, tokenizer = load_policy(folder / BACKBONE, progress=False)
        scorer = StepScorer(backbone, likelihood=likelihood)
        scorer.head.load_state_dict(torch.load(folder / HEAD_FILE, map_location="cpu", weights_only=True))
        if likelihood:
            scorer.likelihood.load_state_dict(torch.load(folder / LIKELIHOOD_FILE, map_location="cpu", weights_only=True))
        return cls(scorer, tokenizer, info)


def train_prm(traces: Sequence[LabelledTrace], *, init: str | None = None, tiny=None, epochs: int = 3,
              lr: float = 3e-3, batch_size: int = 32, seed: int = 0, pool: str = "last",
              on_epoch: Callable[[int, float], None] | None = None) -> tuple[TrainedPRM, dict]:
    """Fit a PRM on ``traces``; returns it and ``{"loss_first", "loss_final", "examples", "seconds"}``.

    ``init``: a policy folder for the backbone (its tokenizer too); else a tiny model built from
    ``tiny`` (a ``TinyModelConfig``) with the lab's character tokenizer, initialised from ``seed``.
    ``pool``: how a step's score comes from its tokens (``min``, ``last`` or ``likelihood``, see the
    module doc; ``likelihood`` freezes the backbone). AdamW at a constant ``lr``;
    ``on_epoch(epoch, mean_loss)`` after each epoch.
    """
    from worldsmith.policy.model import build_tiny_model, load_policy
    from worldsmith.policy.tokenizer import build_char_tokenizer

    if not traces:
        raise ValueError("no labelled traces to train on")
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; valid: {', '.join(POOLS)}")
    if init is not None:
        backbone, tokenizer = load_policy(init, progress=False)
    else:
        tokenizer = build_char_tokenizer()
        backbone = build_tiny_model(tokenizer, tiny, seed=seed)
    torch.manual_seed(seed)
    scorer = StepScorer(backbone, likelihood=pool == "likelihood").train()
    context = int(backbone.config.max_position_embeddings)
    rows = []
    for t in traces:
        ids, spans = encode_trace(tokenizer, t.instance.prompt, t.steps, context)
        last = len(t.steps) if t.first_error is None else t.first_error + 1
        labels = [(span, 1.0 if k != t.first_error else 0.0) for k, span in enumerate(spans[:last]) if span[1] >= 0]
        if labels:
            rows.append((ids, labels))
    optimizer = torch.optim.AdamW([p for p in scorer.parameters() if p.requires_grad], lr=lr)
    rng = random.Random(seed)
    pad = tokenizer.pad_token_id or 0
    started, losses = time.perf_counter(), []
    for epoch in range(epochs):
        rng.shuffle(rows)
        epoch_losses = []
        for s in range(0, len(rows), batch_size):
            chunk = rows[s : s + batch_size]
            ids, mask = pad_rows([r[0] for r in chunk], pad)
            logits, logp = scorer.outputs(ids, mask)  # (b, L) each
            picked = torch.stack([x for i, (_, lab) in enumerate(chunk)
                                  for x in step_logits(logits[i], [span for span, _ in lab], pool,
                                                       None if logp is None else logp[i], scorer.likelihood)])
            target = torch.tensor([y for _, lab in chunk for _, y in lab])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(picked, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in scorer.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            epoch_losses.append(float(loss.detach()))
        losses.append(sum(epoch_losses) / len(epoch_losses))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    stats = {"loss_first": losses[0], "loss_final": losses[-1], "examples": len(rows),
             "seconds": time.perf_counter() - started}
    if not all(math.isfinite(v) for v in losses):
        raise ValueError("PRM training diverged (non-finite loss); lower the learning rate")
    return TrainedPRM(scorer.eval(), tokenizer, {"pool": pool, "prompt_format": POLICY_FORMAT}), stats
