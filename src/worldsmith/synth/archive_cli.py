"""`worldsmith archive list | show ID | export DIR`, added to the main parser.

The sub-command is registered in ``worldsmith.commands.COMMANDS``. The
archive is ``--db PATH``, else ``$WORLDSMITH_ARCHIVE``, else ``runs/archive.sqlite``; it is never
created here: a missing file, or one that is not an archive, is a usage error. A damaged database
or a program whose stored source no longer matches its sha256 is a one-line failure (exit 1).
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import sys

from worldsmith import commands
from worldsmith.commands import UsageError


def _open(args: argparse.Namespace):
    from worldsmith.synth import archive

    path = args.db or archive.default_path()
    try:
        return archive.Archive(path, create=False)
    except archive.ArchiveError as exc:
        raise UsageError(f"archive: {exc}") from None


def _one_line(name: str):
    """Report an archive that cannot be read back as one line (exit 1), not a traceback."""

    def wrap(command):
        @functools.wraps(command)
        def guarded(args: argparse.Namespace) -> int:
            from worldsmith.synth.archive import ArchiveError

            try:
                return command(args)
            except ArchiveError as exc:
                print(f"error: archive {name}: {exc}", file=sys.stderr)
                return commands.EXIT_FAILED

        return guarded

    return wrap


def _candidate_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a candidate id (an integer), got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a candidate id (>= 1), got {text}")
    return value


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@_one_line("list")
def cmd_archive_list(args: argparse.Namespace) -> int:
    from worldsmith.synth.archive import STATUSES

    if args.status is not None and args.status not in STATUSES:
        raise UsageError(f"archive list: unknown status {args.status!r}; expected one of {', '.join(STATUSES)}")
    with _open(args) as arch:
        rows = arch.list(status=args.status, limit=args.limit)
        counts = arch.counts()
    if args.json:
        keys = ("id", "status", "sha256", "name", "accuracy", "ci_low", "ci_high", "novelty",
                "difficulty_reward", "proposer", "created", "updated")
        print(json.dumps([{k: getattr(c, k) for k in keys} for c in rows]))
        return 0
    header = ("id", "status", "hash8", "â", "novelty", "proposer", "created")
    table = [header] + [(str(c.id), c.status, c.hash8, _fmt(c.accuracy), _fmt(c.novelty), c.proposer,
                         c.created) for c in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"\n{len(rows)} shown; " + ", ".join(f"{s} {n}" for s, n in counts.items()))
    return 0


@_one_line("show")
def cmd_archive_show(args: argparse.Namespace) -> int:
    from worldsmith.synth.archive import UnknownCandidate

    with _open(args) as arch:
        try:
            cand = arch.get(args.id)
        except UnknownCandidate as exc:
            raise UsageError(f"archive show: {exc} in {arch.path}") from None
        history = arch.history(args.id)
    if args.json:
        print(json.dumps({**cand.to_json(), "history": history}))
        return 0
    ci = "-" if cand.ci_low is None and cand.ci_high is None else f"[{_fmt(cand.ci_low)}, {_fmt(cand.ci_high)}]"
    fields = [
        ("id", cand.id), ("name", cand.name or "-"), ("status", cand.status),
        ("reason", cand.status_reason or "-"), ("sha256", _sha256_line(cand)),
        ("frozen", "yes (admitted " + str(cand.admitted_at) + ")" if cand.frozen else "no"),
        ("proposer", cand.proposer), ("parents", json.dumps(list(cand.parents))),
        ("created", cand.created), ("updated", cand.updated), ("isolation", cand.isolation or "-"),
        ("â", f"{_fmt(cand.accuracy)}  CI {ci}"), ("difficulty", _fmt(cand.difficulty_reward)),
        ("novelty", _fmt(cand.novelty)),
    ]
    for key, value in fields:
        print(f"{key:<11}{value}")
    print("gates:" if cand.gates else "gates:     none recorded")
    for g in cand.gates:
        print(f"  {'PASS' if g.passed else 'FAIL'}  {g.name:<12} {g.seconds:7.2f}s  {g.reason}")
    print("history:")
    for h in history:
        print(f"  {h['at']}  {h['from_status'] or '-'} -> {h['to_status']}  {h['reason'] or ''}")
    print("source:")
    print("  " + cand.source.rstrip("\n").replace("\n", "\n  "))
    return 0


def _sha256_line(cand) -> str:
    if cand.intact:
        return cand.sha256
    from worldsmith.synth.archive import tampered_reason

    return f"{cand.sha256}  MISMATCH: {tampered_reason(cand)}"


@_one_line("export")
def cmd_archive_export(args: argparse.Namespace) -> int:
    if pathlib.Path(args.dir).exists() and not pathlib.Path(args.dir).is_dir():
        raise UsageError(f"archive export: {args.dir} is a file, not a folder")
    with _open(args) as arch:
        tampered = [c.id for c in arch.list(status="admitted") if not c.intact]
        paths = arch.export(args.dir)
    print(f"exported {len(paths)} admitted program(s) to {args.dir} (manifest.json lists them)")
    if tampered:
        ids = ", ".join(str(i) for i in tampered)
        print(f"error: archive export: skipped candidate(s) {ids}: stored source does not match its sha256 "
              "(manifest.json lists them under skipped)", file=sys.stderr)
        return commands.EXIT_FAILED
    return 0


@commands.register_command("archive")
def register(sub) -> None:
    arch_p = sub.add_parser("archive", help="the SQLite archive of proposed environment programs")
    arch_sub = arch_p.add_subparsers(dest="archive_command", required=True, parser_class=commands.Parser)
    db_help = "archive file (default: $WORLDSMITH_ARCHIVE, else runs/archive.sqlite)"

    p = arch_sub.add_parser("list", help="one line per candidate: id, status, hash8, â, novelty, proposer")
    p.add_argument("--db", help=db_help)
    p.add_argument("--status", help="only candidate, admitted, rejected, retired or quarantined")
    p.add_argument("--limit", type=commands.positive_int, help="at most this many rows")
    p.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    p.set_defaults(func=cmd_archive_list)

    p = arch_sub.add_parser("show", help="every field, gate report and the source of one candidate")
    p.add_argument("id", type=_candidate_id, metavar="ID")
    p.add_argument("--db", help=db_help)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_archive_show)

    p = arch_sub.add_parser("export", help="write admitted programs as <name-or-id>_<hash8>.py + manifest.json")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--db", help=db_help)
    p.set_defaults(func=cmd_archive_export)

