"""Learning target of the quickstart: accuracy on unseen problems before (the base) and after GRPO.

Runs the embedded quickstart for several seeds (each seed builds its own base policy, in a cache
folder of its own under ``--out`` unless ``--shared-cache``, so the build is part of the run's time)
and prints one JSON line with the before/after pairs, the mean and 95 % Student-t interval over seeds
of every accuracy, the paired difference after - before (same seed, same start), and whether the
targets are met: sampled accuracy +10 points on average and +5 on every seed, greedy accuracy not
lower on average, pass@k never more than 3 points lower, at most 10 minutes per run. Floating-point
results differ between CPUs, so a single seed's digits are not expected to reproduce on another
machine; the means and intervals are.

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

TARGET_SAMPLED_GAIN = 0.10       # mean over seeds
TARGET_SAMPLED_GAIN_EACH = 0.05  # every seed
TARGET_PASSK_DROP = 0.03         # pass@k never falls by more
TARGET_SECONDS = 600             # per run, the base build included


def cpu_model() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), so that runs on two machines can be told apart."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", default="runs/bench_quickstart")
    parser.add_argument("--shared-cache", action="store_true",
                        help="reuse bases from the user cache (the runs' times then leave out the builds)")
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
        if not args.shared_cache:
            cache = os.path.join(args.out, f"cache{seed}")
            shutil.rmtree(cache, ignore_errors=True)
            os.environ["WORLDSMITH_CACHE"] = cache
        started = time.perf_counter()
        summary = train_run(cfg, out, evaluate_before=True, progress=sys.stderr.isatty())
        b, a = summary["before"], summary["after"]
        results.append({
            "seed": seed,
            "before": {"greedy": b["accuracy_greedy"], "sampled": b["accuracy_sampled"], "pass@4": b["pass@4"],
                       "maj@4": b["maj@4"], "step_validity": b["step_validity"]},
            "after": {"greedy": a["accuracy_greedy"], "sampled": a["accuracy_sampled"], "pass@4": a["pass@4"],
                      "maj@4": a["maj@4"], "step_validity": a["step_validity"]},
            "sampled_gain": a["accuracy_sampled"] - b["accuracy_sampled"],
            "greedy_change": a["accuracy_greedy"] - b["accuracy_greedy"],
            "seconds": round(time.perf_counter() - started, 1),
        })
        print(json.dumps(results[-1]), file=sys.stderr)
    stats = {}
    for metric in ("greedy", "sampled", "pass@4", "maj@4", "step_validity"):
        before = [r["before"][metric] for r in results]
        after = [r["after"][metric] for r in results]
        stats[metric] = {"before": mean_interval(before).to_json(), "after": mean_interval(after).to_json(),
                         "paired_change": paired_difference(after, before).to_json()}
    checks = {
        "sampled_gain_mean": stats["sampled"]["paired_change"]["mean"] >= TARGET_SAMPLED_GAIN,
        "sampled_gain_every_seed": all(r["sampled_gain"] >= TARGET_SAMPLED_GAIN_EACH for r in results),
        "greedy_change_mean": stats["greedy"]["paired_change"]["mean"] >= 0,
        "pass@4_drop_every_seed": all(r["after"]["pass@4"] - r["before"]["pass@4"] >= -TARGET_PASSK_DROP
                                      for r in results),
        "seconds_every_run": all(r["seconds"] <= TARGET_SECONDS for r in results),
    }
    print(json.dumps({
        "benchmark": "quickstart_learning",
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "torch": torch.__version__,
                    "platform": platform.platform()},
        "env": [p.name for p in quickstart_config().pool],
        "eval_instances": quickstart_config().eval.instances,
        "results": results,
        "over_seeds": stats,
        "tasks": [{"env": p.name, "difficulty": p.difficulty} for p in quickstart_config().pool],
        "target": {"sampled_gain_mean": TARGET_SAMPLED_GAIN, "sampled_gain_each": TARGET_SAMPLED_GAIN_EACH,
                   "greedy_change_mean": 0.0, "pass@4_drop_max": TARGET_PASSK_DROP, "seconds_max": TARGET_SECONDS},
        "checks": checks,
        "target_met": all(checks.values()),
    }))


if __name__ == "__main__":
    main()
