"""`worldsmith export {trl,verl,verifiers,rg}`: environments as datasets other libraries train on."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from pathlib import Path

from worldsmith.commands import UsageError, positive_int, register_command

#: format -> (module, writer, the consumer library it needs or None, what comes out)
FORMATS = {
    "trl": ("worldsmith.exports.trl", "export_trl", "datasets", "a datasets.Dataset folder (load_from_disk)"),
    "verl": ("worldsmith.exports.verl", "export_verl", "pyarrow", "SPLIT.parquet and worldsmith_reward.py"),
    "verifiers": ("worldsmith.exports.verifiers_env", "export_verifiers", "verifiers",
                  "a taskset module and an eval.toml for vf-eval"),
    "rg": ("worldsmith.exports.rg", "export_rg", None, "SPLIT.jsonl of question/answer/metadata"),
}


def cmd_export(args: argparse.Namespace) -> int:
    from worldsmith import envs
    from worldsmith.envs.contract import SplitUnavailable
    from worldsmith.exports.common import parse_env_specs

    try:
        specs = parse_env_specs(args.env)
    except (ValueError, envs.UnknownEnvironment) as exc:
        raise UsageError(f"--env: {exc}") from None
    module, writer, needs, _ = FORMATS[args.format]
    if needs is not None and importlib.util.find_spec(needs) is None:
        raise UsageError(f"export {args.format} needs the {needs} package: pip install 'worldsmith[export]'")
    extra = {}
    if args.chat:
        if args.format != "trl":
            raise UsageError(f"--chat is for trl (the {args.format} export has one prompt format)")
        extra["chat"] = True
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty; choose another --out")
    print(f"exporting {args.n} {args.split}-split problems of {', '.join(map(str, specs))} as {args.format}")
    try:
        info = getattr(importlib.import_module(module), writer)(specs, args.n, args.split, out, progress=True, **extra)
    except SplitUnavailable as exc:
        raise UsageError(str(exc)) from None
    per_env = ", ".join(f"{k} {v}" for k, v in info["rows_per_env"].items())
    print(f"wrote {info['rows']} rows ({per_env}) to {out}; see {out / 'manifest.json'}")
    return 0


@register_command("export")
def add_export(sub) -> None:
    p = sub.add_parser("export", help="environments as datasets for TRL, verl, verifiers or reasoning-gym users",
                       description="Write N problems of a split of one environment or a mixture in a consumer's "
                                   "format, with the reward that grades them with worldsmith's own verifiers "
                                   "(docs/ecosystem.md). Formats: "
                                   + "; ".join(f"{k}: {v[3]}" for k, v in FORMATS.items()))
    p.add_argument("format", choices=tuple(FORMATS))
    p.add_argument("--env", required=True, action="append",
                   help="NAME[@DIFFICULTY][,NAME[@DIFFICULTY]...]: a mixture in equal shares; repeatable")
    p.add_argument("--n", type=positive_int, default=1000, help="problems to write (default 1000)")
    p.add_argument("--split", choices=("train", "eval"), default="train",
                   help="train, or eval: the held-out problems no train seed draws")
    p.add_argument("--out", required=True, help="folder to write (must not exist or be empty)")
    p.add_argument("--chat", action="store_true",
                   help="trl: each prompt as one user message (a conversational dataset) instead of text")
    p.set_defaults(func=cmd_export)
