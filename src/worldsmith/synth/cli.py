"""`worldsmith validate FILE.py`: run admission gates L1-L5 on a candidate environment program.

Importing this module registers the sub-command through ``worldsmith.cli._EXTRA_COMMANDS``; the
gates themselves are imported only when the command runs.
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


if register not in cli._EXTRA_COMMANDS:
    cli._EXTRA_COMMANDS.append(register)
