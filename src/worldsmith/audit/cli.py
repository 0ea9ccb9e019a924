"""`worldsmith audit env` and `worldsmith audit game`, added to the main parser.

The sub-command is registered in ``worldsmith.commands.COMMANDS``; this module
imports nothing heavy, so `worldsmith --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from worldsmith import commands
from worldsmith.commands import EXIT_FAILED, UsageError


def _is_file_target(target: str) -> bool:
    return target.endswith(".py") or os.sep in target


def _audit_config(args: argparse.Namespace):
    from pydantic import ValidationError

    from worldsmith.audit.redteam import RedTeamConfig

    values = {"instances": args.instances, "threshold": args.threshold, "reward_threshold": args.reward_threshold,
              "constant_threshold": args.constant_threshold, "skip": args.skip or []}
    if args.difficulty:
        values["difficulties"] = tuple(args.difficulty)
    try:
        return RedTeamConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        raise UsageError(f"--{str(err['loc'][0]).replace('_', '-')}: {message}") from None


def _reports_for(target: str, cfg, timeout_s: float):
    """(reports, error line or None) for one NAME or FILE.py."""
    from worldsmith.audit.files import AuditFileError, AuditTimeout, audit_file
    from worldsmith.audit.redteam import audit_env
    from worldsmith.sandbox import SandboxUnavailable

    if not _is_file_target(target):
        return [audit_env(commands.get_env(target), cfg)], None
    try:
        return audit_file(target, cfg, timeout_s=timeout_s), None
    except AuditTimeout as exc:
        return [], str(exc)
    except AuditFileError as exc:
        raise UsageError(str(exc)) from None
    except SandboxUnavailable as exc:
        raise UsageError(f"audit env {target}: {exc}") from None


def cmd_audit_env(args: argparse.Namespace) -> int:
    from worldsmith.audit.redteam import format_report
    from worldsmith.sandbox import FALLBACK_WARNING, SandboxUnavailable, resolve_mode

    commands.apply_isolation_flag(args)
    cfg = _audit_config(args)
    failed = False
    for target in args.targets:
        if _is_file_target(target):
            try:
                isolation = resolve_mode("auto")
            except SandboxUnavailable as exc:
                raise UsageError(f"audit env {target}: {exc}") from None
            if isolation == "fallback":
                print(f"note: {FALLBACK_WARNING}", file=sys.stderr)
            elif not args.json:
                print(f"note: {target} runs in the sandbox ({isolation}).")
        reports, error = _reports_for(target, cfg, args.timeout)
        if error is not None:
            failed = True
            print(json.dumps({"target": target, "error": error}) if args.json else f"FAILED {error}")
        for report in reports:
            failed |= report.flagged
            print(json.dumps(report.to_json()) if args.json else format_report(report) + "\n")
    return EXIT_FAILED if failed else 0


#: Run-config keys that ``audit game`` sets from its own flags; an override may not contradict them.
GAME_FLAG_KEYS = {"train.steps": "--steps", "train.seed": "--seed", "model.init_seed": "--seed"}


def cmd_audit_game(args: argparse.Namespace) -> int:
    import pathlib

    for text in args.overrides:
        key = text.partition("=")[0].strip()
        if key in GAME_FLAG_KEYS:
            raise UsageError(f"audit game: {key} is set by {GAME_FLAG_KEYS[key]}; use {GAME_FLAG_KEYS[key]} instead")
    if pathlib.Path(args.out).exists() and not pathlib.Path(args.out).is_dir():
        raise UsageError(f"audit game: --out {args.out} is a file, not a folder")
    return run_game(args)


def run_game(args: argparse.Namespace) -> int:
    """Train the game's variants, plot ITP and ER, print the first/last table (or JSON)."""
    import json
    import pathlib

    from worldsmith.audit import games
    from worldsmith.audit.games.train import WINDOW, plot_game, read_runs, run_variant
    from worldsmith.configuration import ConfigError


    if args.name not in games.GAMES:
        raise UsageError(f"unknown game {args.name!r}; known: {', '.join(games.GAMES)}")
    try:
        records = games.load_records(args.data) if args.data else None
        variants = (False, True) if args.both else (args.secure,)
        summaries = [run_variant(args.name, secure, args.steps, args.seed, args.out, records, args.overrides)
                     for secure in variants]
    except (FileExistsError, FileNotFoundError, ValueError, ImportError, ConfigError) as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    plot = plot_game(read_runs(args.out), pathlib.Path(args.out) / "itp_er.png",
                     title=f"{args.name}: vulnerable vs secure (seed {args.seed})")
    if args.json:
        print(json.dumps({"runs": summaries, "plot": str(plot)}))
        return 0
    fmt = lambda v: "-" if v is None else f"{v:+.3f}"  # noqa: E731
    print(f"\n{'variant':<12}{'reward first':>14}{'last':>8}{'ITP first':>11}{'last':>8}{'ER first':>10}{'last':>8}")
    for s in summaries:
        print(f"{s['variant']:<12}{fmt(s['raw_reward_first']):>14}{fmt(s['raw_reward_last']):>8}"
              f"{fmt(s['itp_first']):>11}{fmt(s['itp_last']):>8}{fmt(s['er_first']):>10}{fmt(s['er_last']):>8}")
    print(f"(first / last = mean over the first / last {WINDOW} steps)  plot: {plot}")
    return 0


@commands.register_command("audit")
def register(sub) -> None:
    audit_p = sub.add_parser("audit", help="red-team environment scorers; loophole games with exploit metrics")
    audit_sub = audit_p.add_subparsers(dest="audit_command", required=True, parser_class=commands.Parser)

    p = audit_sub.add_parser("env", help="run exploit strategies against an environment's scorer")
    p.add_argument("targets", nargs="+", metavar="NAME|FILE.py",
                   help="a registered environment, or a Python file defining Environment subclasses "
                        "(audited inside the sandbox)")
    p.add_argument("--instances", type=commands.positive_int, default=64, help="instances per difficulty")
    p.add_argument("--difficulty", type=commands.difficulty, action="append", help="difficulty to audit; repeatable (default 0.5 and 1)")
    p.add_argument("--threshold", type=commands.difficulty, default=0.05, help="flag a strategy passing more often than this")
    p.add_argument("--reward-threshold", type=commands.difficulty, default=0.05, help="flag a strategy earning more mean reward")
    p.add_argument("--constant-threshold", type=commands.difficulty, default=0.3,
                   help="flag one constant answer passing on more than this share of all instances")
    p.add_argument("--skip", action="append", metavar="STRATEGY[:VARIANT]", help="leave out; repeatable")
    p.add_argument("--timeout", type=float, default=300.0, help="wall-clock limit of a FILE.py audit, seconds")
    p.add_argument("--json", action="store_true", help="one JSON report per line")
    commands.add_isolation_flag(p)
    p.set_defaults(func=cmd_audit_env)

    p = audit_sub.add_parser("game", help="train the tiny policy on a vulnerability game; plot ITP and ER")
    p.add_argument("name", help="compliance, self_grading, proxy_metric or tampering")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--secure", action="store_true", help="train the secure twin (default: the vulnerable game)")
    which.add_argument("--both", action="store_true", help="train the vulnerable game, then its secure twin")
    p.add_argument("--steps", type=commands.positive_int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run folder (one sub-folder per variant)")
    p.add_argument("--data", help="local file of the paper's data (.parquet or .jsonl) instead of synthetic data")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the run config (right after NAME)")
    p.set_defaults(func=cmd_audit_game)

