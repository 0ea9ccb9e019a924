"""`worldsmith prm train|eval`: fit a discriminative process reward model on oracle labels, and
score any PRM ProcessBench-style.

The sub-command is registered in ``worldsmith.commands.COMMANDS``; this module imports nothing
heavy, so `worldsmith --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from worldsmith import commands
from worldsmith.commands import UsageError, get_env, positive_int


def _env_specs(texts: list[str], flag: str = "--env") -> list[tuple[str, float]]:
    """``name[@difficulty]`` -> (name, difficulty); environments without a step checker are refused."""
    out = []
    for text in texts:
        name, _, diff = text.partition("@")
        env = get_env(name)
        if not env.has_steps():
            raise UsageError(f"{flag} {name}: this environment has no step checker, so it has no oracle labels")
        try:
            out.append((name, commands.difficulty(diff) if diff else 0.0))
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{flag} {text}: difficulty {exc}") from None
    return out


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def evaluate_prm(prm, specs: list[tuple[str, float]], traces: int, threshold: float, seed: int,
                 seen: set[str]) -> list[dict]:
    """ProcessBench rows, one per environment spec, on eval-split problems."""
    from worldsmith import envs
    from worldsmith.prm import first_below
    from worldsmith.prm.data import make_traces, processbench

    rows = []
    for name, diff in specs:
        labelled = make_traces(envs.get(name), traces, "eval", diff, seed=seed + 1)
        scores = prm.score_batch([(t.instance, t.steps) for t in labelled])
        rows.append({"env": name, "difficulty": diff, "seen": name in seen,
                     **processbench([first_below(s, threshold) for s in scores], labelled)})
    return rows


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_rows(rows: list[dict]) -> None:
    print(f"{'environment':<20} {'seen':<5} {'erroneous':>9} {'correct':>7} {'err_acc':>7} {'ok_acc':>7} {'F1':>6}")
    for r in rows:
        print(f"{r['env'] + '@' + format(r['difficulty'], 'g'):<20} {'yes' if r['seen'] else 'no':<5} "
              f"{r['erroneous']:>9} {r['correct']:>7} {_num(r['error_accuracy']):>7} "
              f"{_num(r['correct_accuracy']):>7} {_num(r['f1']):>6}")


def cmd_prm_train(args: argparse.Namespace) -> int:
    import torch

    from worldsmith import envs
    from worldsmith.prm.data import make_traces
    from worldsmith.prm.trained import train_prm

    specs = _env_specs(args.env)
    if args.pool == "likelihood" and not args.init:
        raise UsageError("prm train --pool likelihood: give --init, a policy folder whose token probabilities "
                         "the PRM reads (an untrained backbone's are noise)")
    out = pathlib.Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out}: the folder is not empty; choose another")
    if args.threads:
        torch.set_num_threads(args.threads)
    traces = []
    for name, diff in specs:
        traces += make_traces(envs.get(name), args.traces, "train", diff, seed=args.seed)
    _say(f"prm train: {len(traces)} labelled traces from {len(specs)} environment(s), train-split problems")
    try:
        prm, stats = train_prm(traces, init=args.init, epochs=args.epochs, lr=args.lr, seed=args.seed, pool=args.pool,
                               on_epoch=lambda e, loss: _say(f"epoch {e + 1}/{args.epochs}: loss {loss:.4f}"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"prm train: {str(exc).splitlines()[0]}") from None
    prm.info = {**prm.info, "envs": [list(s) for s in specs], "traces": len(traces), "epochs": args.epochs, "lr": args.lr,
                "pool": args.pool,
                "init": args.init, "seed": args.seed, **stats}
    prm.save(out)
    rows = evaluate_prm(prm, specs, args.eval_traces, args.threshold, args.seed, {n for n, _ in specs})
    (out / "eval.json").write_text(json.dumps({"threshold": args.threshold, "rows": rows}, indent=2))
    _print_rows(rows)
    print(f"saved: {out}")
    return 0


def cmd_prm_eval(args: argparse.Namespace) -> int:
    from worldsmith import envs
    from worldsmith.prm import OraclePRM

    specs = _env_specs(args.env)
    if args.prm == "oracle":
        prm, seen = OraclePRM({n: envs.get(n) for n in envs.names()}), set()
    elif args.prm.startswith("likelihood:"):
        from worldsmith.policy.model import load_policy
        from worldsmith.prm.likelihood import LikelihoodPRM

        try:
            model, tokenizer = load_policy(args.prm.partition(":")[2], progress=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"prm eval: {str(exc).splitlines()[0]}") from None
        prm, seen = LikelihoodPRM(model, tokenizer), set()
    else:
        from worldsmith.prm.trained import TrainedPRM

        try:
            prm = TrainedPRM.load(args.prm)
        except (OSError, ValueError) as exc:
            raise UsageError(f"prm eval: {str(exc).splitlines()[0]}") from None
        seen = {name for name, _ in prm.info.get("envs", [])}
    rows = evaluate_prm(prm, specs, args.traces, args.threshold, args.seed, seen)
    if args.json:
        print(json.dumps({"threshold": args.threshold, "rows": rows}))
    else:
        _print_rows(rows)
    return 0


@commands.register_command("prm")
def add_prm(sub) -> None:
    p = sub.add_parser("prm", help="process reward models: train one on oracle step labels, evaluate any")
    inner = p.add_subparsers(dest="prm_command", required=True, parser_class=commands.Parser)
    t = inner.add_parser("train", help="fit a step scorer on oracle-labelled traces (train-split problems)")
    t.add_argument("--env", action="append", required=True, help="NAME[@DIFFICULTY], repeatable; needs a step checker")
    t.add_argument("--out", required=True, help="new folder for the PRM")
    t.add_argument("--traces", type=positive_int, default=1000, help="labelled traces per environment (half corrupted)")
    t.add_argument("--epochs", type=positive_int, default=3)
    t.add_argument("--lr", type=commands.temperature, default=2e-3, help="AdamW learning rate")
    t.add_argument("--init", help="a local policy folder (e.g. a `worldsmith base` policy) as the backbone")
    t.add_argument("--pool", choices=("last", "min", "likelihood"), default="last",
                   help="a step's score: at its closing newline (last), its least confident token (min), or "
                   "the closing newline plus the step's token log-probabilities under the frozen backbone "
                   "(likelihood; needs --init, a policy that writes such steps)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=positive_int, help="torch CPU threads")
    t.add_argument("--eval-traces", type=positive_int, default=200, help="held-out traces per environment")
    t.add_argument("--threshold", type=commands.difficulty, default=0.8, help="first error = first score below this")
    t.set_defaults(func=cmd_prm_train)
    e = inner.add_parser("eval", help="ProcessBench-style scores on held-out problems")
    e.add_argument("prm", help="'oracle', a folder written by `worldsmith prm train`, or likelihood:POLICY "
                   "(a policy folder scoring steps by its own token probabilities; use --threshold 0.1)")
    e.add_argument("--env", action="append", required=True, help="NAME[@DIFFICULTY], repeatable")
    e.add_argument("--traces", type=positive_int, default=200, help="traces per environment (half corrupted)")
    e.add_argument("--threshold", type=commands.difficulty, default=0.8)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    e.set_defaults(func=cmd_prm_eval)
