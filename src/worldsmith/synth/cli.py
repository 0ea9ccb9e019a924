"""`worldsmith validate FILE.py`: run admission gates L1-L5 on a candidate environment program;
`worldsmith synth funnel`: take a folder of candidate programs through the whole admission funnel.

Importing this module registers the sub-commands through ``worldsmith.cli._EXTRA_COMMANDS``; the
gates, the funnel and the solver model are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from worldsmith import cli
from worldsmith.cli import EXIT_FAILED, UsageError


def cmd_validate(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from worldsmith.sandbox import FALLBACK_WARNING, SandboxUnavailable
    from worldsmith.synth.gates import GateConfig, validate

    if not os.path.isfile(args.file):
        raise UsageError(f"validate: no such file: {args.file}")
    try:
        with open(args.file, encoding="utf-8") as fh:
            code = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"validate: cannot read {args.file}: {exc}") from None
    values: dict = {}
    if args.seeds is not None:
        values["seeds"] = args.seeds
    if args.probe_seeds is not None:
        values["probe_seeds"] = args.probe_seeds
    if args.timeout is not None:
        values["wall_s"] = args.timeout
    try:
        config = GateConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = str(err["loc"][0]).replace("_", "-") if err["loc"] else "options"
        raise UsageError(f"validate: --{where}: {err['msg'].removeprefix('Value error, ')}") from None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=FALLBACK_WARNING)
            verdict = validate(code, config, mode=args.mode)
    except SandboxUnavailable as exc:
        raise UsageError(f"validate: --mode {args.mode}: {exc}") from None
    if verdict.isolation == "fallback":
        print(f"note: {FALLBACK_WARNING}", file=sys.stderr)
    if args.json:
        print(json.dumps({"file": args.file, **verdict.to_json()}))
    else:
        for gate in verdict.gates:
            status = "SKIP" if gate.skipped else ("PASS" if gate.passed else "FAIL")
            print(f"{status}  {gate.name:<18} {gate.seconds:6.2f}s  {gate.reason}")
        outcome = "admitted" if verdict.admitted else f"rejected at {verdict.failed_gate}"
        print(f"{args.file}: {outcome} (isolation: {verdict.isolation}, {verdict.runs} sandbox runs)")
    return 0 if verdict.admitted else EXIT_FAILED


def register(sub) -> None:
    p = sub.add_parser("validate", help="admission gates L1-L5 for a candidate environment program (sandboxed)")
    p.add_argument("file", metavar="FILE.py", help="one Python file defining one Environment subclass")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--mode", choices=("auto", "bwrap", "fallback"), default="auto",
                   help="sandbox isolation (auto: bwrap where it works, else fallback)")
    p.add_argument("--seeds", type=cli._positive_int, help="seeds per difficulty in L2-L4 (default 5)")
    p.add_argument("--probe-seeds", type=cli._positive_int, help="instances probed per difficulty in L5 (default 2)")
    p.add_argument("--timeout", type=float, help="wall-clock limit of one sandbox run, seconds (default 10)")
    p.set_defaults(func=cmd_validate)


UNTRAINED_NOTE = ("note: the solver is a fresh, untrained tiny model; it should answer no calibration instance "
                  "correctly, so every candidate that passes the gates is rejected as \"too hard\" (â = 0). "
                  "That is the honest result; pass --solver MODEL_DIR to calibrate against a real solver.")


def _solver(model_dir: str | None):
    from worldsmith.policy.hf_backend import HFBackend

    if model_dir is None:
        from worldsmith.policy.model import build_tiny_model
        from worldsmith.policy.tokenizer import build_char_tokenizer

        tokenizer = build_char_tokenizer()
        return HFBackend(build_tiny_model(tokenizer, seed=0), tokenizer)
    from worldsmith.policy.model import load_policy

    try:
        model, tokenizer = load_policy(model_dir)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise UsageError(f"synth funnel: --solver: {str(exc).splitlines()[0]}") from None
    return HFBackend(model, tokenizer)


def cmd_funnel(args: argparse.Namespace) -> int:
    from worldsmith.sandbox import FALLBACK_WARNING, SandboxUnavailable, resolve_mode
    from worldsmith.synth.archive import Archive, ArchiveError
    from worldsmith.synth.funnel import STAGES, FunnelConfig, run_funnel
    from worldsmith.synth.proposers import CorpusProposer

    if args.corpus is None:
        from worldsmith.synth import corpus

        folder = os.path.dirname(corpus.__file__)
    else:
        folder = args.corpus
    if not os.path.isdir(folder):
        raise UsageError(f"synth funnel: --corpus: no such folder: {folder}")
    proposer = CorpusProposer(folder)
    proposer.files = [p for p in proposer.files if p.name != "__init__.py"]
    try:
        isolation = resolve_mode(args.mode)
    except SandboxUnavailable as exc:
        raise UsageError(f"synth funnel: --mode {args.mode}: {exc}") from None
    db = args.db or os.path.join(args.out, "archive.sqlite")
    os.makedirs(args.out, exist_ok=True)
    backend = _solver(args.solver)
    if isolation == "fallback":
        print(f"note: {FALLBACK_WARNING}", file=sys.stderr)
    try:
        archive = Archive(db)
    except (ArchiveError, OSError) as exc:
        raise UsageError(f"synth funnel: --db {db}: {exc}") from None
    with archive, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=FALLBACK_WARNING)
        summary = run_funnel(proposer, archive, backend, FunnelConfig(mode=isolation, limit=args.limit),
                             args.out, progress=not args.no_progress)
    counts = summary["counts"]
    if args.json:
        print(json.dumps(summary))
        return 0
    width = max(len(s) for s in STAGES)
    for stage in STAGES:
        print(f"{stage:<{width}}  {counts[stage]}")
    if summary["outcomes"]["duplicate"]:
        print(f"{'duplicates':<{width}}  {summary['outcomes']['duplicate']} (already decided; not counted)")
    if args.solver is None:
        print(UNTRAINED_NOTE)
    print(f"archive {db}: " + ", ".join(f"{k} {v}" for k, v in summary["archive"].items()))
    print(f"wrote {summary['jsonl']}, {summary['png']}, {os.path.join(args.out, 'summary.json')} "
          f"(isolation: {summary['isolation']})")
    return 0


def register_synth(sub) -> None:
    p = sub.add_parser("synth", help="environment synthesis: the admission funnel")
    synth_sub = p.add_subparsers(dest="synth_command", required=True)
    f = synth_sub.add_parser("funnel", help="gates, calibration and novelty over a folder of candidate programs")
    f.add_argument("--corpus", help="folder of candidate .py files (default: the shipped corpus)")
    f.add_argument("--db", help="archive database (default: OUT/archive.sqlite)")
    f.add_argument("--out", required=True, help="folder for funnel.jsonl, summary.json and funnel.png")
    f.add_argument("--solver", metavar="MODEL_DIR",
                   help="a local HF model folder used as the calibration solver (default: a fresh tiny model)")
    f.add_argument("--limit", type=cli._positive_int, help="judge at most this many programs")
    f.add_argument("--mode", choices=("auto", "bwrap", "fallback"), default="auto",
                   help="sandbox isolation (auto: bwrap where it works, else fallback)")
    f.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_funnel)


for _register in (register, register_synth):
    if _register not in cli._EXTRA_COMMANDS:
        cli._EXTRA_COMMANDS.append(_register)
