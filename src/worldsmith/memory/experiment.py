"""The memory experiments: a book-reading backbone, recall questions, methods x seeds.

``train_backbone`` fits a small Llama-style character-level model on generated books (seeds far
from the evaluation books, so their names are unseen) with a short window: a reader that knows
the book format and can copy within its window, but cannot see part one from the story.

``evaluate`` reads evaluation books (one per seed) with each method under the same window, chunk
and steps, and reports per method and seed: the perplexity of the story (every token after part
one: the "later chunks"), the perplexity by position, recall accuracy on the questions asked with
only the window before them as context (the truncated-context baseline is the ``none`` method),
and the reading time. Forgetting is measured on one more unseen book: its perplexity read plainly
by the backbone, by the backbone with the memory of the evaluation book attached, and merged; with
``env_tasks`` (for a backbone that is a worldsmith policy, e.g. a ``worldsmith base`` folder) also as
the backbone's greedy accuracy on unseen problems of those environments, before the book, with the
memory attached, and merged.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass

import torch
from torch import nn

from worldsmith.memory.book import QUESTION_KINDS, Book, Question, generate_book
from worldsmith.memory.locas import MemoryConfig
from worldsmith.memory.ttt import (
    LocasMemory,
    Memory,
    ReadResult,
    TempLoRAMemory,
    TTTConfig,
    matching_lora_rank,
    read_document,
)

#: Evaluation books use seeds 0, 1, 2, ...; training books start here, so no evaluation name is seen.
TRAIN_BOOK_SEED = 100_000
#: The book whose perplexity measures forgetting (never read with memory, never trained on).
FORGETTING_BOOK_SEED = 50_000

METHODS = ("none", "locas-glu-top_r", "locas-glu-random_index", "locas-glu-bottom_r", "locas-glu-gaussian",
           "locas-mlp-act_grad", "templora")


def encode(tokenizer, text: str) -> torch.Tensor:
    """Token ids (N,) of ``text`` without special tokens."""
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


# --- recall ------------------------------------------------------------------------------------------
@torch.no_grad()
def choice_scores(model: nn.Module, tokenizer, context: torch.Tensor, question: Question) -> list[float]:
    """Mean log-probability per token of each candidate ``" choice\\n"`` after context + question."""
    prefix = torch.cat([context, encode(tokenizer, question.prompt())])
    conts = [encode(tokenizer, f" {c}\n") for c in question.choices]
    width = prefix.numel() + max(c.numel() for c in conts)
    pad = tokenizer.pad_token_id or 0
    batch = torch.full((len(conts), width), pad, dtype=torch.long)
    for k, c in enumerate(conts):
        batch[k, : prefix.numel() + c.numel()] = torch.cat([prefix, c])
    device = next(model.parameters()).device
    logp = torch.log_softmax(model(batch.to(device)).logits.float(), -1).cpu()  # (k, W, V)
    out = []
    for k, c in enumerate(conts):
        pos = torch.arange(prefix.numel() - 1, prefix.numel() - 1 + c.numel())
        out.append(float(logp[k, pos, c].mean()))
    return out


def recall_accuracy(model: nn.Module, tokenizer, book: Book, context_tokens: int) -> dict[str, float]:
    """Accuracy per question kind and overall, each question asked after only the last
    ``context_tokens`` tokens of the book (what a reader with that window sees)."""
    ids = encode(tokenizer, book.text)
    question_len = max(encode(tokenizer, q.prompt()).numel() for q in book.questions) + 16
    context = ids[-max(1, context_tokens - question_len):]
    right: dict[str, list[float]] = {k: [] for k in QUESTION_KINDS}
    for q in book.questions:
        scores = choice_scores(model, tokenizer, context, q)
        right[q.kind].append(float(q.choices[max(range(len(scores)), key=scores.__getitem__)] == q.answer))
    acc = {k: sum(v) / len(v) for k, v in right.items() if v}
    acc["all"] = sum(sum(v) for v in right.values()) / sum(len(v) for v in right.values())
    return acc


# --- the backbone ------------------------------------------------------------------------------------
@dataclass
class BackboneInfo:
    params: int
    steps: int
    seconds: float
    first_loss: float
    final_loss: float


def train_backbone(path, *, steps: int = 600, window: int = 256, batch: int = 16, books: int = 8,
                   book_chars: int = 40_000, hidden: int = 128, layers: int = 4, seed: int = 0,
                   lr: float = 3e-3, progress: bool = True) -> BackboneInfo:
    """Train a character-level Llama-style reader on ``books`` generated books and save it at ``path``."""
    from worldsmith.policy.model import TinyModelConfig, build_tiny_model, save_policy
    from worldsmith.policy.tokenizer import build_char_tokenizer

    texts = []
    for b in range(books):
        book = generate_book(TRAIN_BOOK_SEED + b, chars=book_chars)
        texts.append(book.text + book.questions_text())
    tokenizer = build_char_tokenizer(texts)
    cfg = TinyModelConfig(hidden_size=hidden, num_layers=layers, num_heads=4, intermediate_size=3 * hidden,
                          max_position_embeddings=max(512, 2 * window))
    model = build_tiny_model(tokenizer, cfg, seed=seed).train()
    data = [encode(tokenizer, t) for t in texts]
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    bar = None
    if progress:
        from worldsmith.progress import progress_bar

        bar = progress_bar(total=steps, desc="backbone")
    losses, started = [], time.perf_counter()
    for _ in range(steps):
        rows = []
        for _ in range(batch):
            d = data[rng.randrange(len(data))]
            s = rng.randrange(0, d.numel() - window - 1)
            rows.append(d[s: s + window])
        x = torch.stack(rows)
        loss = model(x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    if bar is not None:
        bar.close()
    save_policy(model.eval(), tokenizer, path)
    return BackboneInfo(params=sum(p.numel() for p in model.parameters()), steps=steps,
                        seconds=time.perf_counter() - started, first_loss=sum(losses[:10]) / 10,
                        final_loss=sum(losses[-20:]) / 20)


# --- methods -----------------------------------------------------------------------------------------
def make_memory(method: str, model: nn.Module, rank: int, layers: list[int] | None, seed: int) -> Memory:
    """The ``Memory`` named ``method`` (one of ``METHODS``); TempLoRA gets the rank whose parameter
    count is closest to Locas-GLU's at ``rank``."""
    if method == "none":
        return Memory()
    if method == "templora":
        from worldsmith.memory.locas import decoder_layers, ffn_of

        blocks = decoder_layers(model)
        chosen = range(len(blocks)) if layers is None else layers
        glu_params = sum(3 * rank * ffn_of(blocks[i]).gate_proj.in_features for i in chosen)
        return TempLoRAMemory(matching_lora_rank(model, glu_params), seed=seed)
    parts = method.split("-", 2)
    if len(parts) != 3 or parts[0] != "locas":
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return LocasMemory(MemoryConfig(variant=parts[1], init=parts[2], rank=rank, layers=layers, seed=seed))


@dataclass
class MethodRun:
    method: str
    seed: int
    story_ppl: float
    ppl_bins: list[tuple[int, int, float]]
    recall: dict[str, float]
    seconds: float
    memory_params: int


def env_answers(model: nn.Module, tokenizer, tasks: list[tuple[str, float]], instances: int,
                max_new_tokens: int) -> list[tuple[str, bool]]:
    """Greedy answers of ``model`` to ``instances`` eval-split problems of each (environment,
    difficulty) in ``tasks``, with whether each passed: the skills a memory must not erase."""
    from worldsmith.base import greedy_answers

    return [a for name, difficulty in tasks
            for a in greedy_answers(model, tokenizer, name, difficulty, "eval", instances, max_new_tokens)]


def _accuracy(answers: list[tuple[str, bool]]) -> float:
    return sum(ok for _, ok in answers) / len(answers)


def _changed(answers: list[tuple[str, bool]], before: list[tuple[str, bool]]) -> float:
    """Share of problems whose greedy answer text differs from ``before``'s."""
    return sum(a != b for (a, _), (b, _) in zip(answers, before)) / len(answers)


def evaluate(model: nn.Module, tokenizer, *, seeds: list[int], chars: int, methods: list[str], ttt: TTTConfig,
             rank: int, layers: list[int] | None = None, bins: int = 10, forgetting: bool = True,
             env_tasks: list[tuple[str, float]] | None = None, env_instances: int = 256,
             max_new_tokens: int = 96, progress: bool = True, log=print) -> dict:
    """Run ``methods`` x ``seeds`` (see the module doc); returns a JSON-ready dict."""
    runs: list[MethodRun] = []
    forgetting_rows = []
    env_rows: dict[str, list[dict]] = {}  # method -> per seed: environment accuracy with its memory attached
    other = encode(tokenizer, generate_book(FORGETTING_BOOK_SEED, chars=min(chars, 20_000)).text)
    base_other = read_document(model, other, None, ttt).ppl() if forgetting else float("nan")
    measure_env = forgetting and bool(env_tasks)
    if measure_env:
        base_answers = env_answers(model, tokenizer, env_tasks, env_instances, max_new_tokens)
        base_env = _accuracy(base_answers)
        log(f"backbone greedy accuracy on {', '.join(f'{n}@{d:g}' for n, d in env_tasks)}: {base_env:.3f}")
    for seed in seeds:
        book = generate_book(seed, chars=chars)
        ids = encode(tokenizer, book.text)
        facts_end = len(encode(tokenizer, book.text[: book.facts_end]))
        for method in methods:
            memory = make_memory(method, model, rank, layers, seed)
            result: ReadResult = read_document(model, ids, memory, ttt, progress=progress,
                                               desc=f"seed {seed}", keep_memory=True)
            try:
                recall = recall_accuracy(model, tokenizer, book, ttt.window)
                attached_answers = None
                if measure_env and method != "none":
                    attached_answers = env_answers(model, tokenizer, env_tasks, env_instances, max_new_tokens)
                    env_rows.setdefault(method, []).append(
                        {"seed": seed, "accuracy": _accuracy(attached_answers),
                         "changed": _changed(attached_answers, base_answers)})
                if forgetting and method == "locas-glu-top_r":
                    attached = read_document(model, other, None, ttt).ppl()
                    row = {"seed": seed, "backbone": base_other, "attached": attached}
                    if measure_env:
                        row.update(env_backbone=base_env, env_attached=_accuracy(attached_answers),
                                   env_attached_changed=_changed(attached_answers, base_answers))
                    twin = merged_copy(model, memory.locas)
                    row["merged"] = read_document(twin, other, None, ttt).ppl()
                    if measure_env:
                        merged_answers = env_answers(twin, tokenizer, env_tasks, env_instances, max_new_tokens)
                        row.update(env_merged=_accuracy(merged_answers),
                                   env_merged_vs_attached_changed=_changed(merged_answers, attached_answers))
                        log(f"seed {seed} greedy accuracy: backbone {base_env:.3f}, memory attached "
                            f"{row['env_attached']:.3f}, merged {row['env_merged']:.3f}")
                    del twin
                    forgetting_rows.append(row)
            finally:
                memory.detach()
            run = MethodRun(method, seed, result.ppl(facts_end), result.ppl_by_position(bins), recall,
                            result.seconds, result.memory_params)
            runs.append(run)
            log(f"seed {seed} {method:<24} story ppl {run.story_ppl:.4f}  recall {recall['all']:.3f}  "
                f"{run.seconds:.1f}s  memory params {run.memory_params:,}"
                + (f"  greedy accuracy {env_rows[method][-1]['accuracy']:.3f} (backbone {base_env:.3f})"
                   if method in env_rows else ""))
    out = summarise(runs, forgetting_rows, model, ttt, rank, chars)
    if env_rows:
        from worldsmith.eval.stats import mean_interval

        out["env_accuracy_by_method"] = {
            "backbone": base_env, "tasks": [list(t) for t in env_tasks], "instances": env_instances,
            "methods": {m: {"attached": mean_interval([r["accuracy"] for r in rows]).to_json(),
                            "attached_minus_backbone": mean_interval([r["accuracy"] - base_env for r in rows]).to_json(),
                            "answers_changed": mean_interval([r["changed"] for r in rows]).to_json(),
                            "rows": rows}
                        for m, rows in env_rows.items()}}
    return out


def merged_copy(model: nn.Module, locas) -> nn.Module:
    """A copy of ``model`` with ``locas`` merged into its FFNs; the original keeps no memory
    (``locas`` is detached from it)."""
    from worldsmith.memory.locas import Locas

    locas.detach()
    twin = copy.deepcopy(model)
    merged = Locas(twin, locas.cfg)
    merged.load_state_dict(locas.state_dict())
    merged.hook_on()
    merged.merge()
    return twin


def summarise(runs: list[MethodRun], forgetting_rows: list[dict], model: nn.Module, ttt: TTTConfig, rank: int,
              chars: int) -> dict:
    """Means and 95% intervals over seeds, paired differences against ``none`` and ``templora``."""
    from worldsmith.eval.stats import mean_interval, paired_difference

    methods = list(dict.fromkeys(r.method for r in runs))
    by = {m: sorted((r for r in runs if r.method == m), key=lambda r: r.seed) for m in methods}
    n_model = sum(p.numel() for p in model.parameters())
    table = {}
    for m, rs in by.items():
        row = {"story_ppl": mean_interval([r.story_ppl for r in rs]).to_json(),
               "recall": mean_interval([r.recall["all"] for r in rs]).to_json(),
               "seconds": mean_interval([r.seconds for r in rs]).to_json(),
               "memory_params": rs[0].memory_params,
               "memory_fraction": rs[0].memory_params / n_model}
        for kind in QUESTION_KINDS:
            row[f"recall_{kind}"] = mean_interval([r.recall.get(kind, float("nan")) for r in rs]).to_json()
        for ref in ("none", "templora", "locas-glu-random_index", "locas-glu-gaussian"):
            if ref in by and ref != m and len(by[ref]) == len(rs):
                row[f"ppl_minus_{ref}"] = paired_difference([r.story_ppl for r in rs],
                                                            [r.story_ppl for r in by[ref]]).to_json()
                row[f"recall_minus_{ref}"] = paired_difference([r.recall["all"] for r in rs],
                                                               [r.recall["all"] for r in by[ref]]).to_json()
        if "none" in by and m != "none":
            row["time_ratio"] = mean_interval([r.seconds / b.seconds for r, b in zip(rs, by["none"])]).to_json()
        table[m] = row
    out = {"model_params": n_model, "book_chars": chars, "rank": rank, "ttt": ttt.model_dump(),
           "seeds": sorted({r.seed for r in runs}), "methods": table,
           "runs": [{"method": r.method, "seed": r.seed, "story_ppl": r.story_ppl, "recall": r.recall,
                     "seconds": r.seconds, "ppl_bins": r.ppl_bins} for r in runs]}
    if forgetting_rows:
        out["forgetting"] = {
            "backbone_ppl": forgetting_rows[0]["backbone"],
            "attached_ppl": mean_interval([f["attached"] for f in forgetting_rows]).to_json(),
            "merged_ppl": mean_interval([f["merged"] for f in forgetting_rows]).to_json(),
            "rows": forgetting_rows}
        if "env_backbone" in forgetting_rows[0]:
            base = forgetting_rows[0]["env_backbone"]
            out["forgetting"]["env_accuracy"] = {
                "backbone": base,
                "attached": mean_interval([f["env_attached"] for f in forgetting_rows]).to_json(),
                "merged": mean_interval([f["env_merged"] for f in forgetting_rows]).to_json(),
                "attached_minus_backbone": mean_interval([f["env_attached"] - base for f in forgetting_rows]).to_json(),
                "merged_minus_backbone": mean_interval([f["env_merged"] - base for f in forgetting_rows]).to_json(),
                "answers_changed_attached": mean_interval([f["env_attached_changed"] for f in forgetting_rows]).to_json(),
                "answers_changed_merged_vs_attached": mean_interval(
                    [f["env_merged_vs_attached_changed"] for f in forgetting_rows]).to_json()}
    return out


def plot_ppl_by_position(results: dict | list[ReadResult], path, bins: int = 10, title: str = "") -> None:
    """Perplexity by position: one line per method (from ``evaluate``'s result, averaged over
    seeds, or from a list of ``ReadResult``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if isinstance(results, dict):
        methods = list(results["methods"])
        for m in methods:
            curves = [r["ppl_bins"] for r in results["runs"] if r["method"] == m]
            xs = [(a + b) / 2 for a, b, _ in curves[0]]
            ys = [sum(c[k][2] for c in curves) / len(curves) for k in range(len(xs))]
            ax.plot(xs, ys, marker="o", label=m)
    else:
        for r in results:
            spans = r.ppl_by_position(bins)
            ax.plot([(a + b) / 2 for a, b, _ in spans], [p for _, _, p in spans], marker="o", label=r.memory)
    ax.set_xlabel("token position in the document")
    ax.set_ylabel("perplexity")
    ax.set_title(title or "perplexity by position (evaluate-then-train)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
