"""`worldsmith validate FILE.py`: run admission gates L1-L5 on a candidate environment program;
`worldsmith synth funnel`: take a folder of candidate programs through the whole admission funnel.

The sub-commands are registered in ``worldsmith.commands.COMMANDS``; the
gates, the funnel and the solver model are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from worldsmith import commands
from worldsmith.commands import EXIT_FAILED, UsageError


def _read_program(path: str) -> str:
    """The text of a candidate program file; a missing, huge or unreadable file is a ``UsageError``."""
    from worldsmith.synth.gates import GateConfig

    if not os.path.isfile(path):
        raise UsageError(f"validate: no such file: {path}")
    limit = GateConfig.model_fields["max_source_chars"].default
    try:
        size = os.path.getsize(path)
        if size > 4 * limit:  # never read or parse a huge file: UTF-8 is at most 4 bytes a character
            raise UsageError(f"validate: {path} is {size} bytes; a candidate program has at most {limit} "
                             "characters")
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"validate: cannot read {path}: {exc}") from None


def cmd_validate(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from worldsmith.sandbox import FALLBACK_WARNING, SandboxUnavailable
    from worldsmith.synth.gates import GateConfig, validate

    commands.apply_isolation_flag(args)
    codes = [_read_program(path) for path in args.files]
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
        field = str(err["loc"][0]) if err["loc"] else "options"
        where = {"wall_s": "timeout"}.get(field, field.replace("_", "-"))
        raise UsageError(f"validate: --{where}: {err['msg'].removeprefix('Value error, ')}") from None
    if len(codes) > 1 or args.ray is not None:
        return _validate_many(args, codes, config)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=FALLBACK_WARNING)
            verdict = validate(codes[0], config, mode=args.mode)
    except SandboxUnavailable as exc:
        raise UsageError(f"validate: {exc}" if args.mode == "auto" else f"validate: --mode {args.mode}: {exc}") from None
    if verdict.isolation == "fallback":
        print(f"note: {FALLBACK_WARNING}", file=sys.stderr)
    if args.json:
        print(json.dumps({"file": args.files[0], **verdict.to_json()}))
    else:
        for gate in verdict.gates:
            status = "SKIP" if gate.skipped else ("PASS" if gate.passed else "FAIL")
            print(f"{status}  {gate.name:<18} {gate.seconds:6.2f}s  {gate.reason}")
        outcome = "admitted" if verdict.admitted else f"rejected at {verdict.failed_gate}"
        print(f"{args.files[0]}: {outcome} (isolation: {verdict.isolation}, {verdict.runs} sandbox runs)")
    return 0 if verdict.admitted else EXIT_FAILED


def _validate_many(args: argparse.Namespace, codes: list[str], config) -> int:
    """Several files (or ``--ray``): the gates fan out over a Ray cluster or run one after another;
    one line per file, or one JSON object per file with ``--json``."""
    import time

    from worldsmith.fanout import Fanout, FanoutError, validate_many
    from worldsmith.sandbox import FALLBACK_WARNING, SandboxUnavailable, resolve_mode

    try:
        isolation = resolve_mode(args.mode)
    except SandboxUnavailable as exc:
        raise UsageError(f"validate: {exc}" if args.mode == "auto" else f"validate: --mode {args.mode}: {exc}") from None
    if isolation == "fallback":
        print(f"note: {FALLBACK_WARNING}", file=sys.stderr)
    try:
        pool = Fanout.ray(None if args.ray in (None, "local") else args.ray, workers=args.workers) \
            if args.ray is not None else Fanout.serial()
    except FanoutError as exc:
        raise UsageError(f"validate: {exc}") from None
    where = f"over Ray ({pool.workers} CPUs)" if pool.distributed else "serially"
    print(f"validate: {len(codes)} programs {where}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with pool:
        verdicts = validate_many(codes, config, mode=args.mode, pool=pool)
    for path, verdict in zip(args.files, verdicts):
        if args.json:
            print(json.dumps({"file": path, **verdict.to_json()}))
        else:
            outcome = "admitted" if verdict.admitted else f"rejected at {verdict.failed_gate}"
            print(f"{'PASS' if verdict.admitted else 'FAIL'}  {path}: {outcome}")
    if not args.json:
        admitted = sum(v.admitted for v in verdicts)
        print(f"{admitted} of {len(verdicts)} admitted in {time.perf_counter() - started:.1f}s {where} "
              f"(isolation: {isolation})")
    return 0 if all(v.admitted for v in verdicts) else EXIT_FAILED


@commands.register_command("validate")
def register(sub) -> None:
    p = sub.add_parser("validate", help="admission gates L1-L5 for a candidate environment program (sandboxed)")
    p.add_argument("files", metavar="FILE.py", nargs="+",
                   help="Python files, each defining one Environment subclass")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="fan the programs out over a Ray cluster: ADDRESS (e.g. auto, ray://host:10001), or a "
                        "local cluster when given alone (needs the ray extra)")
    p.add_argument("--workers", type=commands.positive_int,
                   help="CPUs of the local Ray cluster (default: all of this machine's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--mode", choices=("auto", "bwrap", "fallback"), default="auto",
                   help="sandbox isolation (auto: bwrap; where it cannot run, refuse unless --unsafe-no-isolation)")
    commands.add_isolation_flag(p)
    p.add_argument("--seeds", type=commands.positive_int, help="seeds per difficulty in L2-L4 (default 5)")
    p.add_argument("--probe-seeds", type=commands.positive_int, help="instances probed per difficulty in L5 (default 2)")
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
    commands.apply_isolation_flag(args)
    try:
        isolation = resolve_mode(args.mode)
    except SandboxUnavailable as exc:
        raise UsageError(f"synth funnel: {exc}" if args.mode == "auto" else f"synth funnel: --mode {args.mode}: {exc}") from None
    db = args.db or os.path.join(args.out, "archive.sqlite")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"synth funnel: --out {args.out} is a file, not a folder")
    done = [name for name in ("funnel.jsonl", "summary.json", "funnel.png") if os.path.exists(os.path.join(args.out, name))]
    if done:
        raise UsageError(f"synth funnel: {args.out} already holds a funnel run ({done[0]}); choose another --out")
    os.makedirs(args.out, exist_ok=True)
    backend = _solver(args.solver)
    if isolation == "fallback":
        print(f"note: {FALLBACK_WARNING}", file=sys.stderr)
    try:
        archive = Archive(db)
    except (ArchiveError, OSError) as exc:
        raise UsageError(f"synth funnel: --db {db}: {exc}") from None
    from worldsmith.synth.generator import novelty_embedder
    from worldsmith.synth.novelty import NoveltyConfig

    try:
        embedder = novelty_embedder(args.novelty)
    except ValueError as exc:
        raise UsageError(f"synth funnel: --novelty embedding: {str(exc).partition(': ')[2]}") from None
    cfg = FunnelConfig(mode=isolation, limit=args.limit, novelty=NoveltyConfig(mode=args.novelty))
    with archive, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=FALLBACK_WARNING)
        summary = run_funnel(proposer, archive, backend, cfg, args.out, progress=not args.no_progress,
                             embedder=embedder)
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


def cmd_synth_run(args: argparse.Namespace) -> int:
    from worldsmith import configuration
    from worldsmith.policy.http_backend import HTTPBackendError
    from worldsmith.recipes import synth_run
    from worldsmith.sandbox import SandboxUnavailable, resolve_mode
    from worldsmith.synth.archive import ArchiveError
    from worldsmith.synth.config import SynthConfig

    commands.apply_isolation_flag(args)
    try:
        cfg = configuration.load(SynthConfig, args.config, args.overrides)
    except configuration.ConfigError as exc:
        raise UsageError(f"config: {exc}") from None
    try:  # refuse before any model is built
        resolve_mode(cfg.synth.funnel.mode)
    except SandboxUnavailable as exc:
        raise UsageError(f"synth: {exc}") from None
    print(f"worldsmith synth: {cfg.synth.proposer} proposer, {len(cfg.pool)} seed environments, "
          f"{cfg.train.steps} steps -> {args.out}")
    try:
        summary = synth_run(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    except (FileExistsError, FileNotFoundError, SandboxUnavailable, ArchiveError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    except HTTPBackendError as exc:
        raise UsageError(f"synth.remote: {exc} (the run can continue with --resume)") from None
    except ValueError as exc:
        if str(exc).startswith("synth:"):
            raise UsageError(str(exc)) from None
        raise
    width = max(len(s) for s in summary["funnel"])
    print("\nadmission funnel (all steps):")
    for stage, count in summary["funnel"].items():
        print(f"  {stage:<{width}}  {count}")
    print("archive: " + ", ".join(f"{k} {v}" for k, v in summary["archive"].items()))
    after = summary["after"]
    print(f"held-out on the seed environments: greedy {after['accuracy_greedy']:.3f}, "
          f"sampled {after['accuracy_sampled']:.3f} ({after['problems']} instances)")
    on = summary.get("eval_admitted") or {}
    if on.get("after"):
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"held-out on the {len(on['programs'])} admitted programs (d={on['difficulty']:g}): sampled "
              f"{fmt(on['before']['accuracy_sampled'])} before -> {fmt(on['after']['accuracy_sampled'])} after, greedy "
              f"{fmt(on['before']['accuracy_greedy'])} -> {fmt(on['after']['accuracy_greedy'])}")
    print(f"run folder: {args.out}  (funnel.png, training.png, funnel.jsonl, metrics.jsonl, archive.sqlite)")
    return 0


SYNTH_USAGE = """\
worldsmith synth CONFIG [key=value ...] --out DIR [--resume] [--no-progress] [--unsafe-no-isolation]
    the EvoEnv loop: generator and solver roles in one policy (configs/synth_corpus.yaml)
worldsmith synth funnel --out DIR [--corpus DIR] [--solver MODEL_DIR] [--limit N] [--mode M] [--novelty N] [--json]
    [--unsafe-no-isolation]
    gates, calibration and novelty over a folder of candidate programs, without training"""


def _run_parser() -> argparse.ArgumentParser:
    p = commands.Parser(prog="worldsmith synth", description="the EvoEnv loop")
    p.add_argument("config", help="YAML synth config (see configs/synth_corpus.yaml)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.steps=20")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    commands.add_isolation_flag(p)
    p.set_defaults(func=cmd_synth_run)
    return p


def _funnel_parser() -> argparse.ArgumentParser:
    f = commands.Parser(prog="worldsmith synth funnel",
                    description="gates, calibration and novelty over a folder of candidate programs")
    f.add_argument("--corpus", help="folder of candidate .py files (default: the shipped corpus)")
    f.add_argument("--db", help="archive database (default: OUT/archive.sqlite)")
    f.add_argument("--out", required=True, help="folder for funnel.jsonl, summary.json and funnel.png")
    f.add_argument("--solver", metavar="MODEL_DIR",
                   help="a local HF model folder used as the calibration solver (default: a fresh tiny model)")
    f.add_argument("--limit", type=commands.positive_int, help="judge at most this many programs")
    f.add_argument("--mode", choices=("auto", "bwrap", "fallback"), default="auto",
                   help="sandbox isolation (auto: bwrap; where it cannot run, refuse unless --unsafe-no-isolation)")
    commands.add_isolation_flag(f)
    f.add_argument("--novelty", choices=("auto", "embedding", "signature"), default="auto",
                   help="novelty by MiniLM embeddings (auto: when the novelty extra is installed) or signatures")
    f.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_funnel)
    return f


def cmd_synth(args: argparse.Namespace) -> int:
    rest = list(args.rest)
    if args.synth_help or not rest or rest[0] in ("-h", "--help"):
        print(SYNTH_USAGE, file=sys.stdout if rest or args.synth_help else sys.stderr)
        return 0 if rest or args.synth_help else commands.EXIT_USAGE
    if rest[0] == "funnel":
        sub_args = _funnel_parser().parse_args(rest[1:])
    else:
        sub_args = commands.parse_with_overrides(_run_parser(), rest)
    return int(sub_args.func(sub_args) or 0)


@commands.register_command("synth")
def register_synth(sub) -> None:
    p = sub.add_parser("synth", help="environment synthesis: the EvoEnv loop (CONFIG) or the admission funnel (funnel)",
                       usage=SYNTH_USAGE, add_help=False)
    p.add_argument("-h", "--help", action="store_true", dest="synth_help", help=argparse.SUPPRESS)
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_synth)

