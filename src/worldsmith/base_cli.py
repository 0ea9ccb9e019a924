"""`worldsmith base build|list|show`, added to the main parser.

The sub-command is registered in ``worldsmith.commands.COMMANDS``; this module imports nothing
heavy, so `worldsmith --help` stays fast.
"""

from __future__ import annotations

import argparse
import json

from worldsmith import commands
from worldsmith.commands import UsageError


def _split_config(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """(YAML path or None, overrides): a lone ``key=value`` in the CONFIG place is an override."""
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not config.endswith((".yaml", ".yml")):
        config, overrides = None, [args.config, *overrides]
    return config, overrides


def cmd_base_build(args: argparse.Namespace) -> int:
    from worldsmith.base import build_base, load_config
    from worldsmith.configuration import ConfigError

    config, overrides = _split_config(args)
    try:
        cfg = load_config(args.preset, config, overrides)
    except ConfigError as exc:
        raise UsageError(f"config: {exc}") from None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    source = args.preset if config is None and not overrides else f"{args.preset}+{'file' if config else 'set'}"
    try:
        base = build_base(cfg, progress=True, source=source)
    except ConfigError as exc:
        raise UsageError(f"config: {exc}") from None
    info = base.info
    word = "reused" if base.reused else "built"
    print(f"base {info['hash']} {word}: {info['params']:,} parameters, eval-split greedy accuracy "
          f"{info['eval']['eval_greedy']:.3f} (train split {info['eval']['train_greedy']:.3f})")
    print(f"path: {base.path}")
    return 0


def _params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def cmd_base_list(args: argparse.Namespace) -> int:
    from worldsmith.base import bases_dir, list_bases

    bases = list_bases()
    if args.json:
        print(json.dumps([{k: i.get(k) for k in ("hash", "source", "params", "built_at", "build_seconds")}
                          | {"eval_greedy": i.get("eval", {}).get("eval_greedy")} for i in bases]))
        return 0
    if not bases:
        print(f"no bases in {bases_dir()}; build one with `worldsmith base build`")
        return 0
    header = ("hash", "preset", "params", "built at", "build s", "eval acc")
    rows = [(i["hash"], str(i.get("source", "?")), _params(i.get("params", 0)),
             str(i.get("built_at", "?")).replace("T", " ")[:19], f"{i.get('build_seconds', 0):.0f}",
             f"{i.get('eval', {}).get('eval_greedy', float('nan')):.3f}") for i in bases]
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"\n{len(rows)} base(s) in {bases_dir()}")
    return 0


def cmd_base_show(args: argparse.Namespace) -> int:
    from worldsmith.base import UnknownBase, find_base

    try:
        path, info = find_base(args.hash)
    except UnknownBase as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(info))
        return 0
    import yaml

    sft, ev = info.get("sft", {}), info.get("eval", {})
    print(f"base         {info['hash']}  ({info.get('source', '?')}, recipe {info.get('recipe_version', '?')})")
    print(f"path         {path}")
    print(f"built at     {info.get('built_at', '?')} in {info.get('build_seconds', 0):.0f} s "
          f"({info.get('device', '?')}, {info.get('threads', '?')} threads)")
    print(f"parameters   {info.get('params', 0):,}   vocabulary {info.get('vocab_size', '?')}")
    print(f"sft          {sft.get('steps', '?')} steps, {sft.get('tokens', 0):,} completion tokens, "
          f"loss {sft.get('first_loss', float('nan')):.3f} -> {sft.get('final_loss', float('nan')):.3f}")
    curve = sft.get("loss_curve") or []
    if curve:
        picks = [curve[round(k * (len(curve) - 1) / 5)] for k in range(6)]
        print("loss curve   " + "  ".join(f"{s}:{v:.3f}" for s, v in picks))
    print(f"\ngreedy accuracy ({ev.get('instances', '?')} instances per split, "
          f"{ev.get('max_new_tokens', '?')} new tokens at most)")
    print(f"{'environment':<20}{'difficulty':>11}{'train':>8}{'eval':>8}")
    for t in ev.get("tasks", []):
        print(f"{t['env']:<20}{t['difficulty']:>11g}{t['train_greedy']:>8.3f}{t['eval_greedy']:>8.3f}")
    print(f"{'mean':<31}{ev.get('train_greedy', float('nan')):>8.3f}{ev.get('eval_greedy', float('nan')):>8.3f}")
    print("\nconfig:")
    print("  " + yaml.safe_dump(info.get("config", {}), sort_keys=False).rstrip().replace("\n", "\n  "))
    return 0


@commands.register_command("base")
def register(sub) -> None:
    p = sub.add_parser("base", help="build, list and show cached base policies")
    base_sub = p.add_subparsers(dest="base_command", required=True, parser_class=commands.Parser)

    b = base_sub.add_parser("build", help="build the base of a recipe, or reuse the cached one")
    b.add_argument("config", nargs="?", help="YAML laid over the preset (optional)")
    b.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. sft.epochs=3")
    b.add_argument("--preset", default="cpu", help="cpu (default; minutes on 2 cores) or gpu (a larger base)")
    b.add_argument("--threads", type=commands.positive_int, default=None, help="torch CPU threads")
    b.set_defaults(func=cmd_base_build)

    b = base_sub.add_parser("list", help="a table of the cached bases")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.set_defaults(func=cmd_base_list)

    b = base_sub.add_parser("show", help="one base's base.json, readable")
    b.add_argument("hash", help="its hash, or the start of it")
    b.add_argument("--json", action="store_true", help="print base.json as it is")
    b.set_defaults(func=cmd_base_show)
