"""Learning target of the quickstart: held-out accuracy before (SFT start) and after GRPO.

Runs the embedded quickstart for several seeds and prints one JSON line with the before/after pairs,
the mean and 95 % Student-t interval over seeds of every accuracy, the paired difference after - before
(same seed, same start), and whether the mean paired gain meets the target (sampled accuracy +10
points, greedy accuracy not lower). Floating-point results differ between CPUs, so a single seed's
digits are not expected to reproduce on another machine; the means and intervals are.

    .venv/bin/python benchmarks/quickstart_learning.py [--seeds 0 1 2 3 4] [--out runs/bench_quickstart]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time

import torch

from worldsmith.eval.stats import mean_interval, paired_difference
from worldsmith.recipes import quickstart_config, train_run

TARGET_SAMPLED_GAIN = 0.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", default="runs/bench_quickstart")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the quickstart config")
    args = parser.parse_args()
    from worldsmith.configuration import apply_overrides, build
    from worldsmith.rl.config import RunConfig

    results = []
    for seed in args.seeds:
        cfg = quickstart_config(seed)
        if args.overrides:
            cfg = build(RunConfig, apply_overrides(cfg.model_dump(mode="json"), args.overrides))
        out = os.path.join(args.out, f"seed{seed}")
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        summary = train_run(cfg, out, evaluate_before=True, progress=sys.stderr.isatty())
        b, a = summary["before"], summary["after"]
        results.append({
            "seed": seed,
            "before": {"greedy": b["accuracy_greedy"], "sampled": b["accuracy_sampled"], "pass@4": b["pass@4"]},
            "after": {"greedy": a["accuracy_greedy"], "sampled": a["accuracy_sampled"], "pass@4": a["pass@4"]},
            "sampled_gain": a["accuracy_sampled"] - b["accuracy_sampled"],
            "greedy_change": a["accuracy_greedy"] - b["accuracy_greedy"],
            "seconds": round(time.perf_counter() - started, 1),
        })
        print(json.dumps(results[-1]), file=sys.stderr)
    stats = {}
    for metric in ("greedy", "sampled", "pass@4"):
        before = [r["before"][metric] for r in results]
        after = [r["after"][metric] for r in results]
        stats[metric] = {"before": mean_interval(before).to_json(), "after": mean_interval(after).to_json(),
                         "paired_change": paired_difference(after, before).to_json()}
    met = (stats["sampled"]["paired_change"]["mean"] >= TARGET_SAMPLED_GAIN
           and stats["greedy"]["paired_change"]["mean"] >= 0)
    print(json.dumps({
        "benchmark": "quickstart_learning",
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "platform": platform.platform()},
        "env": [p.name for p in quickstart_config().pool],
        "eval_instances": quickstart_config().eval.instances,
        "results": results,
        "over_seeds": stats,
        "target": {"sampled_gain": TARGET_SAMPLED_GAIN, "greedy_change": 0.0, "of": "mean paired change"},
        "target_met": met,
    }))


if __name__ == "__main__":
    main()
