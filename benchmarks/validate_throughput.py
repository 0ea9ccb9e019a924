"""Throughput of the admission gates: median seconds to run L1-L5 on one candidate, per mode.

Runs ``worldsmith.synth.gates.validate`` with the default ``GateConfig`` on a correct candidate
(admitted) and on one whose scorer tolerates near misses (rejected at L5, after every sampling
run), in each available isolation mode; the modes alternate between repeats. Also reports the
sandbox launch overhead (median ms of a trivial ``exec`` run, as in ``sandbox_launch.py``) and the
number of sandbox runs per candidate. Prints one JSON line.

    .venv/bin/python benchmarks/validate_throughput.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings

from worldsmith.sandbox import Limits, available_modes, run
from worldsmith.synth import corpus
from worldsmith.synth.gates import GateConfig, validate


def _corpus_source(name: str) -> str:
    return next(item.source for item in corpus.load() if item.name == name)


# from the shipped corpus: a correct program, and one whose scorer accepts near misses (rejected at L5)
CANDIDATES = {"correct": (_corpus_source("mod_power"), True),
              "rejected": (_corpus_source("bug_float_tolerance"), False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)
    config = GateConfig()
    launch_limits = Limits(wall_s=10, cpu_s=5, memory_mb=256)
    modes = available_modes()
    seconds: dict[str, dict[str, list[float]]] = {m: {"launch": [], **{k: [] for k in CANDIDATES}}
                                                  for m in modes}
    runs: dict[str, dict[str, int]] = {m: {} for m in modes}
    for i in range(args.repeats):
        for mode in modes if i % 2 == 0 else modes[::-1]:
            started = time.perf_counter()
            res = run("pass", None, launch_limits, mode=mode)
            seconds[mode]["launch"].append(time.perf_counter() - started)
            if not res.ok:
                raise SystemExit(f"{mode} launch: {res.status} {res.reason}")
            for name, (code, admitted) in CANDIDATES.items():
                started = time.perf_counter()
                verdict = validate(code, config, mode=mode)
                seconds[mode][name].append(time.perf_counter() - started)
                if verdict.admitted is not admitted:
                    raise SystemExit(f"{mode} {name}: unexpected verdict {verdict.to_json()}")
                runs[mode][name] = verdict.runs
    out = {"benchmark": "validate_throughput", "repeats": args.repeats, "cpus": os.cpu_count(),
           "python": platform.python_version()}
    for mode in modes:
        out[f"{mode}_launch_ms_median"] = round(1000 * statistics.median(seconds[mode]["launch"]), 1)
        for name in CANDIDATES:
            out[f"{mode}_{name}_s_median"] = round(statistics.median(seconds[mode][name]), 3)
            out[f"{mode}_{name}_runs"] = runs[mode][name]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
