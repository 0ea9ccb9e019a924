"""`worldsmith memory book|read|eval|backbone`: Locas test-time memory from the command line.

* ``book``: write a generated book (``--chars``) and its questions.
* ``read DOC --model M --out DIR``: stream a text file through a local model folder with a memory
  (evaluate-then-train), write ``read.json`` (perplexity overall and by position), the plot
  ``ppl_by_position.png``, and with ``--merge`` the merged model as a normal model folder.
* ``eval --model M --out DIR``: methods x seeds on generated books (``experiment.evaluate``):
  ``results.json``, a table, the plot, one JSON summary line.
* ``backbone --out DIR``: train the small character-level book reader the experiments use.

The module imports nothing heavy, so `worldsmith --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from worldsmith import commands
from worldsmith.commands import UsageError


def _layers(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated layer indices, got {text!r}") from None


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("needs at least one seed")
    return seeds


def _ttt(args: argparse.Namespace):
    from pydantic import ValidationError

    from worldsmith.memory.ttt import TTTConfig

    try:
        return TTTConfig(chunk=args.chunk, window=args.window, steps=args.steps, lr=args.lr,
                         context_grad=args.context_grad == "window")
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ()))
        raise UsageError(f"memory: {where + ': ' if where else ''}{err['msg']}") from None


def _load(path: str):
    from worldsmith.policy.model import load_policy

    try:
        return load_policy(path, progress=False)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise UsageError(f"--model: {exc}") from None


def _check_window(model, ttt) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and ttt.window > limit:
        raise UsageError(f"--window {ttt.window} exceeds the model's {limit} positions")


def _out_dir(text: str) -> Path:
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {text!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def cmd_book(args: argparse.Namespace) -> int:
    from worldsmith.memory.book import generate_book

    book = generate_book(args.seed, chars=args.chars)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(book.text)
    qpath = out.with_suffix(".questions.json")
    qpath.write_text(json.dumps(book.to_json(), indent=1))
    print(f"book seed {args.seed}: {len(book.text):,} characters, {len(book.people)} people, "
          f"{len(book.questions)} questions -> {out}, {qpath}")
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    doc = Path(args.doc)
    if not doc.is_file():
        raise UsageError(f"document {args.doc!r} is not a file")
    text = doc.read_text(errors="replace")
    if not text.strip():
        raise UsageError(f"document {args.doc!r} is empty")
    ttt = _ttt(args)
    if args.merge and args.method != "locas-glu":
        raise UsageError("--merge needs --method locas-glu (Locas-MLP and TempLoRA do not merge into a GLU FFN)")
    import torch

    from worldsmith.memory.experiment import encode, plot_ppl_by_position
    from worldsmith.memory.locas import LocasError, MemoryConfig
    from worldsmith.memory.ttt import LocasMemory, Memory, TempLoRAMemory, read_document

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = _load(args.model)
    _check_window(model, ttt)
    out = _out_dir(args.out)
    ids = encode(tokenizer, text)
    if ids.numel() < 2:
        raise UsageError(f"document {args.doc!r} has fewer than 2 tokens")
    variant = {"locas-glu": "glu", "locas-mlp": "mlp"}.get(args.method)
    try:
        if variant:
            memory = LocasMemory(MemoryConfig(variant=variant, rank=args.rank, layers=args.layers, init=args.init,
                                              seed=args.seed))
        elif args.method == "templora":
            memory = TempLoRAMemory(args.rank, seed=args.seed)
        else:
            memory = Memory()
        results = []
        if args.baseline and args.method != "none":
            results.append(read_document(model, ids, None, ttt, progress=True, desc="read"))
        result = read_document(model, ids, memory, ttt, progress=True, desc="read", keep_memory=args.merge)
    except LocasError as exc:
        raise UsageError(f"memory: {exc}") from None
    results.append(result)
    n_model = sum(p.numel() for p in model.parameters())
    summary = {"doc": str(doc), "tokens": int(ids.numel()), "method": result.memory, "ppl": result.ppl(),
               "memory_params": result.memory_params, "memory_fraction": result.memory_params / n_model,
               "seconds": round(result.seconds, 3), "ttt": ttt.model_dump(),
               "ppl_by_position": [{"start": a, "end": b, "ppl": p} for a, b, p in result.ppl_by_position(args.bins)]}
    if len(results) == 2:
        summary["baseline_ppl"] = results[0].ppl()
        summary["time_ratio"] = result.seconds / max(results[0].seconds, 1e-9)
    if args.merge:
        from worldsmith.policy.model import save_policy

        memory.locas.merge()
        save_policy(model, tokenizer, out / "merged")
        summary["merged"] = str(out / "merged")
    (out / "read.json").write_text(json.dumps(summary, indent=1))
    plot_ppl_by_position(results, out / "ppl_by_position.png", bins=args.bins)
    extra = f" (no memory {summary['baseline_ppl']:.4f})" if "baseline_ppl" in summary else ""
    print(f"{result.memory}: perplexity {result.ppl():.4f}{extra} over {ids.numel():,} tokens, "
          f"{result.memory_params:,} memory parameters, {result.seconds:.1f}s -> {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from worldsmith.memory.experiment import METHODS, evaluate, plot_ppl_by_position

    args.methods = args.methods or list(METHODS)
    env_tasks = commands.env_tasks(args.forgetting_env, "--forgetting-env")
    if env_tasks and (args.no_forgetting or all(m == "none" for m in args.methods)):
        raise UsageError("--forgetting-env measures what a memory erases: include a method other than none "
                         "and drop --no-forgetting")
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise UsageError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    ttt = _ttt(args)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = _load(args.model)
    _check_window(model, ttt)
    out = _out_dir(args.out)
    result = evaluate(model, tokenizer, seeds=args.seeds, chars=args.chars, methods=args.methods, ttt=ttt,
                      rank=args.rank, layers=args.layers, bins=args.bins, forgetting=not args.no_forgetting,
                      env_tasks=env_tasks, env_instances=args.forgetting_instances,
                      max_new_tokens=args.max_new_tokens, progress=True)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    plot_ppl_by_position(result, out / "ppl_by_position.png", bins=args.bins,
                         title=f"story perplexity by position, mean of {len(args.seeds)} seed(s)")
    print(f"\n{'method':<24}{'story ppl [95% CI]':>30}{'recall [95% CI]':>26}{'params':>9}{'time x':>8}")
    for m, row in result["methods"].items():
        p, r = row["story_ppl"], row["recall"]
        ratio = row.get("time_ratio", {}).get("mean", 1.0)
        print(f"{m:<24}{p['mean']:>12.4f} [{p['low']:.4f}, {p['high']:.4f}]"
              f"{r['mean']:>10.3f} [{r['low']:.3f}, {r['high']:.3f}]{row['memory_params']:>9}{ratio:>8.2f}")
    if "forgetting" in result:
        f = result["forgetting"]
        print(f"forgetting (unseen book ppl): backbone {f['backbone_ppl']:.4f}, with memory attached "
              f"{f['attached_ppl']['mean']:.4f}, merged {f['merged_ppl']['mean']:.4f}")
        if "env_accuracy" in f:
            a = f["env_accuracy"]
            print(f"forgetting (greedy accuracy on unseen problems): backbone {a['backbone']:.3f}, with memory "
                  f"attached {a['attached']['mean']:.3f} (change {a['attached_minus_backbone']['mean']:+.3f} "
                  f"[{a['attached_minus_backbone']['low']:+.3f}, {a['attached_minus_backbone']['high']:+.3f}]), "
                  f"merged {a['merged']['mean']:.3f}; {a['answers_changed_attached']['mean']:.1%} of greedy answers changed")
    if "env_accuracy_by_method" in result:
        e = result["env_accuracy_by_method"]
        for m, row in e["methods"].items():
            d = row["attached_minus_backbone"]
            print(f"forgetting, {m}: greedy accuracy {row['attached']['mean']:.3f} with the memory attached "
                  f"(backbone {e['backbone']:.3f}; change {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]); "
                  f"{row['answers_changed']['mean']:.1%} of greedy answers changed")
    print(json.dumps({"benchmark": "memory_eval", "methods": {m: {"story_ppl": r["story_ppl"]["mean"],
                                                                 "recall": r["recall"]["mean"]}
                                                             for m, r in result["methods"].items()}}))
    return 0


def cmd_backbone(args: argparse.Namespace) -> int:
    import torch

    from worldsmith.memory.experiment import train_backbone

    if args.threads:
        torch.set_num_threads(args.threads)
    info = train_backbone(args.out, steps=args.train_steps, window=args.window, hidden=args.hidden,
                          layers=args.num_layers, seed=args.seed)
    print(f"backbone: {info.params:,} parameters, loss {info.first_loss:.3f} -> {info.final_loss:.3f} "
          f"in {info.seconds:.0f}s -> {args.out}")
    return 0


def _ttt_flags(p: argparse.ArgumentParser, window: int, chunk: int) -> None:
    p.add_argument("--window", type=commands.positive_int, default=window, help=f"tokens the model sees at once (default {window})")
    p.add_argument("--chunk", type=commands.positive_int, default=chunk, help=f"tokens scored then trained on per step (default {chunk})")
    p.add_argument("--steps", type=int, default=1, help="optimiser steps per chunk (default 1)")
    p.add_argument("--lr", type=commands.positive_float, default=4e-3, help="memory learning rate (default 4e-3)")
    p.add_argument("--rank", type=commands.positive_int, default=16, help="memory slots per layer, r (default 16)")
    p.add_argument("--layers", type=_layers, default=None, help="comma-separated decoder layers (default all)")
    p.add_argument("--bins", type=commands.positive_int, default=10, help="position bins of the plot (default 10)")
    p.add_argument("--threads", type=commands.positive_int, default=None, help="torch CPU threads")
    p.add_argument("--context-grad", choices=("window", "chunk"), default="window",
                   help="backpropagate through the whole window (exact, default) or the chunk only, reading "
                        "the context before it without gradient (cheaper)")


@commands.register_command("memory")
def register(sub) -> None:
    p = sub.add_parser("memory", help="Locas test-time memory: read a document, evaluate, generate books")
    msub = p.add_subparsers(dest="memory_command", required=True, parser_class=commands.Parser)

    b = msub.add_parser("book", help="write a generated long-context book and its recall questions")
    b.add_argument("--out", required=True, help="text file to write (questions go beside it as .questions.json)")
    b.add_argument("--chars", type=commands.positive_int, default=300_000, help="book length in characters (default 300000)")
    b.add_argument("--seed", type=int, default=0, help="book seed (default 0)")
    b.set_defaults(func=cmd_book)

    r = msub.add_parser("read", help="read a document with a test-time-trained memory")
    r.add_argument("doc", help="a text file")
    r.add_argument("--model", required=True, help="a local model folder (Llama/Qwen-style causal LM)")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--method", choices=("locas-glu", "locas-mlp", "templora", "none"), default="locas-glu")
    r.add_argument("--init", default=None, help="Locas init: top_r (GLU default), random_index, bottom_r, "
                   "gaussian, act_grad (MLP default)")
    r.add_argument("--seed", type=int, default=0, help="seed of the random inits (default 0)")
    r.add_argument("--baseline", action="store_true", help="also read without memory, for the plot and time ratio")
    r.add_argument("--merge", action="store_true", help="merge the memory into the FFN and save it under OUT/merged")
    _ttt_flags(r, 2048, 1024)
    r.set_defaults(func=cmd_read)

    e = msub.add_parser("eval", help="methods x seeds on generated books: perplexity, recall, forgetting")
    e.add_argument("--model", required=True, help="a local model folder (e.g. from `worldsmith memory backbone`)")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="book seeds (default 0,1,2)")
    e.add_argument("--chars", type=commands.positive_int, default=300_000, help="book length (default 300000)")
    e.add_argument("--methods", type=lambda s: [m for m in s.split(",") if m], default=None,
                   help="comma-separated (default all): none, locas-glu-top_r, locas-glu-random_index, "
                        "locas-glu-bottom_r, locas-glu-gaussian, locas-mlp-act_grad, templora")
    e.add_argument("--no-forgetting", action="store_true", help="skip the forgetting measurement")
    e.add_argument("--forgetting-env", action="append", default=None, metavar="NAME[@DIFFICULTY]",
                   help="also measure forgetting as the model's greedy accuracy on unseen problems of this "
                        "environment with each method's memory attached (and the Locas-GLU top-r one merged); "
                        "repeatable; for a worldsmith policy such as a `worldsmith base` folder")
    e.add_argument("--forgetting-instances", type=commands.positive_int, default=256,
                   help="problems per --forgetting-env (default 256)")
    e.add_argument("--max-new-tokens", type=commands.positive_int, default=96,
                   help="longest answer in the --forgetting-env evaluation (default 96)")
    _ttt_flags(e, 256, 128)
    e.set_defaults(func=cmd_eval)

    k = msub.add_parser("backbone", help="train the small character-level book reader used by `memory eval`")
    k.add_argument("--out", required=True, help="model folder to write")
    k.add_argument("--train-steps", type=commands.positive_int, default=400, help="training steps (default 400)")
    k.add_argument("--window", type=commands.positive_int, default=256, help="training window (default 256)")
    k.add_argument("--hidden", type=commands.positive_int, default=64, help="hidden size (default 64)")
    k.add_argument("--num-layers", type=commands.positive_int, default=3, help="decoder layers (default 3)")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--threads", type=commands.positive_int, default=None, help="torch CPU threads")
    k.set_defaults(func=cmd_backbone)
