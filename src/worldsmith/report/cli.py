"""`worldsmith report RUN_DIR`: one self-contained HTML page of a run folder.

Registered in ``worldsmith.commands.COMMANDS``; nothing heavy is imported until the command runs.
"""

from __future__ import annotations

import argparse
import sys

from worldsmith import commands
from worldsmith.commands import UsageError


def cmd_report(args: argparse.Namespace) -> int:
    from worldsmith.report.html import ReportError, write_report

    commands.apply_isolation_flag(args)
    for flag in ("samples", "instances"):
        if getattr(args, flag) < 0:
            raise UsageError(f"report: --{flag}: must be 0 or more, got {getattr(args, flag)}")
    interactive = sys.stderr.isatty()
    try:
        path = write_report(args.run_dir, args.out, samples=args.samples, instances=args.instances,
                            progress=None if interactive else (lambda line: print(line, file=sys.stderr, flush=True)))
    except ReportError as exc:
        raise UsageError(f"report: {exc}") from None
    except OSError as exc:
        raise UsageError(f"report: cannot write {args.out or 'the page'}: {exc.strerror or exc}") from None
    size = path.stat().st_size
    print(f"report: {path} ({size / 1e6:.2f} MB, self-contained: open it in any browser, offline)")
    return 0


@commands.register_command("report")
def register(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page of a run folder (train, compare, synth, audit)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (train, quickstart, compare, synth or audit game)")
    p.add_argument("--out", help="the HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--samples", type=int, default=4, metavar="N",
                   help="greedy completions of RUN_DIR/policy per environment, graded (0: none; default 4)")
    p.add_argument("--instances", type=int, default=2, metavar="N",
                   help="sample instances per admitted synth program, sampled in the sandbox (0: none; default 2)")
    commands.add_isolation_flag(p)
    p.set_defaults(func=cmd_report)
