"""`worldsmith base build | list | show`: the cached base policies (``worldsmith.base``).

The sub-command is registered in ``worldsmith.commands.COMMANDS``; this module imports nothing
heavy, so `worldsmith --help` stays fast.
"""

from __future__ import annotations

import argparse
import json

from worldsmith import commands
from worldsmith.commands import UsageError


def _config(args: argparse.Namespace):
    from worldsmith import configuration
    from worldsmith.base import BaseConfig, BaseError, resolve

    if args.config and "=" in args.config and not args.config.endswith((".yaml", ".yml")):
        args.overrides, args.config = [args.config, *args.overrides], None  # only overrides of the preset
    try:
        if args.config:
            return configuration.load(BaseConfig, args.config, args.overrides)
        cfg = resolve(args.preset)
        if args.overrides:
            return configuration.build(BaseConfig, configuration.apply_overrides(cfg.model_dump(mode="json"),
                                                                                 args.overrides))
        return cfg
    except BaseError as exc:
        raise UsageError(str(exc)) from None
    except configuration.ConfigError as exc:
        raise UsageError(f"config: {exc}") from None


def cmd_build(args: argparse.Namespace) -> int:
    import torch

    from worldsmith.base import BaseError, base_policy

    cfg = _config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        _, _, folder = base_policy(cfg, progress=not args.no_progress)
    except BaseError as exc:
        raise UsageError(str(exc)) from None
    record = json.loads((folder / "base.json").read_text())
    print(json.dumps({"hash": record["hash"], "folder": str(folder), "parameters": record["parameters"],
                      "build_seconds": record["build_seconds"], "eval": record["eval"]}))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from worldsmith.base import cache_root, list_bases

    records = list_bases()
    if args.json:
        print(json.dumps(records))
        return 0
    if not records:
        print(f"no base built yet (cache: {cache_root() / 'base'}); `worldsmith base build` builds one")
        return 0
    print(f"{'hash':<18}{'params':>10}{'built at':>22}{'build s':>9}  held-out greedy accuracy")
    for r in records:
        acc = " ".join(f"{k}={v['greedy']:.2f}" for k, v in r.get("eval", {}).items() if v.get("greedy") is not None)
        print(f"{r['hash']:<18}{r['parameters']:>10,}{r['built_at']:>22}{r['build_seconds']:>9}  {acc}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from worldsmith.base import BaseError, find_base

    try:
        record = find_base(args.hash)
    except BaseError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(record, indent=2))
    return 0


@commands.register_command("base")
def register(sub) -> None:
    base_p = sub.add_parser("base", help="build, list and show the cached base policies")
    base_sub = base_p.add_subparsers(dest="base_command", required=True, parser_class=commands.Parser)
    p = base_sub.add_parser("build", help="build a base (or say where it is cached)")
    p.add_argument("config", nargs="?", help="a BaseConfig YAML (default: the --preset)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. examples=20000")
    p.add_argument("--preset", default="cpu", help="cpu (default; a few minutes on 2 cores) or gpu")
    p.add_argument("--threads", type=commands.positive_int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_build)
    p = base_sub.add_parser("list", help="a table of the cached bases")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = base_sub.add_parser("show", help="one base's record (base.json)")
    p.add_argument("hash", help="its hash or a unique prefix")
    p.set_defaults(func=cmd_show)
