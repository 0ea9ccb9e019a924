"""`worldsmith compare`, added to the main parser.

The sub-command is registered in ``worldsmith.commands.COMMANDS``; this module imports
nothing heavy, so `worldsmith --help` stays fast.
"""

from __future__ import annotations

import argparse
import json

from worldsmith import commands
from worldsmith.commands import UsageError

#: Run-config keys that compare sets itself, per seed; an override may not set them.
SEED_KEYS = ("train.seed", "model.init_seed", "model.base_seed")


def cmd_compare(args: argparse.Namespace) -> int:
    from worldsmith.compare import CompareError, compare, parse_methods, parse_seeds
    from worldsmith.configuration import ConfigError

    for text in args.overrides:
        key = text.partition("=")[0].strip()
        if key in SEED_KEYS:
            raise UsageError(f"compare: {key} is set by --seeds; leave it out")
    try:
        methods = parse_methods(args.methods)
        seeds = parse_seeds(args.seeds)
    except CompareError as exc:
        raise UsageError(str(exc)) from None
    cfg = commands.load_run_config(args.config, args.overrides)
    try:
        result = compare(cfg, methods, seeds, args.out, progress=True, equal_time=args.equal_time)
    except CompareError as exc:
        raise UsageError(str(exc)) from None
    except ConfigError as exc:
        raise UsageError(f"config: {exc}") from None
    print(json.dumps(result))
    return 0


@commands.register_command("compare")
def register(sub) -> None:
    p = sub.add_parser("compare", help="methods x seeds from one start policy: mean ± 95%% CI and paired differences")
    p.add_argument("config", help="YAML run config, as for `worldsmith train`")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the config, e.g. train.steps=50")
    p.add_argument("--methods", default="grpo,mixed_cuts,mssr,g2rl",
                   help="comma-separated, the first is the baseline of the paired differences "
                        "(grpo, mixed_cuts, mssr, mssr_single, g2rl, vppo, vppo_simple, prm_mix; default grpo, mixed_cuts, "
                        "mssr, g2rl)")
    p.add_argument("--seeds", default="0-4", help="a range such as 0-4 or a list such as 0,2,5 (default 0-4)")
    p.add_argument("--out", required=True, help="comparison folder; rerun the same command to finish it")
    p.add_argument("--equal-time", action="store_true",
                   help="train every method after the first for as long as the first took on the same seed "
                        "(summed step seconds) instead of for train.steps steps")
    p.set_defaults(func=cmd_compare)

