"""Throughput of sandbox validation fanned out over Ray, against the same work run serially.

Runs the admission gates (``validate_many``, default ``GateConfig``, the machine's isolation mode)
on a batch of programs from the shipped corpus, serially and on a local Ray cluster of 1, 2 (and 4)
CPUs. Every cluster is started, warmed (its workers import worldsmith) and then timed, so cluster
start-up is reported apart (``cluster_start_s``). The serial run is repeated before and after the
Ray runs and the ratios use their mean, which brackets drift in the machine's load; the load
average is reported at the start and at the end, since on a shared machine other processes take
CPUs the workers would use. It also checks that every fanned-out verdict equals the serial one.
Prints one JSON line: seconds per batch and ``ratio_<k>`` = serial seconds / Ray seconds with k
workers (above 1: faster than serial).

    .venv/bin/python benchmarks/ray_scaling.py [--programs N] [--workers 1,2,4] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings

from extras import missing

from worldsmith.fanout import Fanout, validate_many
from worldsmith.synth import corpus
from worldsmith.synth.gates import GateConfig


def verdict_key(v):
    return v.admitted, [(g.name, g.passed, g.reason, g.skipped) for g in v.gates]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=16, help="programs per batch (corpus programs, cycled)")
    parser.add_argument("--workers", default="1,2,4", help="Ray cluster sizes to time")
    parser.add_argument("--quick", action="store_true", help="8 programs, 1 and 2 workers")
    args = parser.parse_args()
    if missing("ray"):
        print("ray_scaling.py: needs ray (the ray extra); install it with .venv/bin/python -m pip install -e '.[ray]'",
              file=sys.stderr)
        raise SystemExit(2)
    warnings.simplefilter("ignore", RuntimeWarning)
    n = 8 if args.quick else args.programs
    workers = [1, 2] if args.quick else [int(w) for w in args.workers.split(",")]
    items = corpus.load()
    sources = [items[i % len(items)].source for i in range(n)]
    config = GateConfig()
    load_start = os.getloadavg()

    def timed(pool: Fanout) -> tuple[float, list]:
        started = time.perf_counter()
        verdicts = validate_many(sources, config, pool=pool, chunk=1)
        return time.perf_counter() - started, verdicts

    serial_s, serial_verdicts = timed(Fanout.serial())
    expected = [verdict_key(v) for v in serial_verdicts]
    ray_s, start_s, same = {}, {}, True
    for k in workers:
        started = time.perf_counter()
        pool = Fanout.ray(workers=k)
        validate_many(sources[:k], config, pool=pool, chunk=1)  # warm: every worker imports worldsmith
        start_s[k] = round(time.perf_counter() - started, 2)
        seconds, verdicts = timed(pool)
        pool.close()
        ray_s[k] = round(seconds, 3)
        same = same and [verdict_key(v) for v in verdicts] == expected
    serial_again_s, _ = timed(Fanout.serial())
    serial_mean = (serial_s + serial_again_s) / 2
    print(json.dumps({
        "benchmark": "ray_scaling",
        "job": "sandbox validation (gates L1-L5)",
        "programs": n,
        "isolation": serial_verdicts[0].isolation,
        "serial_s": [round(serial_s, 3), round(serial_again_s, 3)],
        "ray_s": {str(k): v for k, v in ray_s.items()},
        **{f"ratio_{k}": round(serial_mean / v, 3) for k, v in ray_s.items()},
        "programs_per_s": {"serial": round(n / serial_mean, 2), **{str(k): round(n / v, 2) for k, v in ray_s.items()}},
        "cluster_start_s": {str(k): v for k, v in start_s.items()},
        "same_verdicts": same,
        "load_avg_start": [round(x, 2) for x in load_start],
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
