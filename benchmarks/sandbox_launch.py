"""Launch overhead of ``worldsmith.sandbox.run`` for a trivial program, per isolation mode.

Each mode runs a trivial program (``pass``, op ``exec``) and a tiny environment's ``sample`` of
one seed; the modes alternate and every number is the median wall time of ``run`` in ms over the
repeats, with the run statuses checked. Prints one JSON line.

    .venv/bin/python benchmarks/sandbox_launch.py [--repeats N]
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

TINY_ENV = """
from worldsmith import Environment
class Tiny(Environment):
    name = "tiny"
    def generate(self, rng, difficulty): return {"a": rng.randint(0, 9)}
    def solve(self, instance): return str(instance["a"])
    def render(self, instance): return "?"
    def score(self, instance, answer): return float(answer == str(instance["a"]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)
    limits = Limits(wall_s=10, cpu_s=5, memory_mb=256)
    modes = available_modes()
    times: dict[str, dict[str, list[float]]] = {m: {"trivial": [], "sample": []} for m in modes}
    for i in range(args.repeats):
        for mode in modes if i % 2 == 0 else modes[::-1]:
            for name, code, task in (("trivial", "pass", None),
                                     ("sample", TINY_ENV, {"op": "sample", "seeds": [i]})):
                started = time.perf_counter()
                res = run(code, task, limits, mode=mode)
                times[mode][name].append((time.perf_counter() - started) * 1000)
                if not res.ok:
                    raise SystemExit(f"{mode} {name}: {res.status} {res.reason}")
    out = {"benchmark": "sandbox_launch", "repeats": args.repeats, "cpus": os.cpu_count(),
           "python": platform.python_version()}
    for mode in modes:
        out[f"{mode}_trivial_ms_median"] = round(statistics.median(times[mode]["trivial"]), 1)
        out[f"{mode}_sample_ms_median"] = round(statistics.median(times[mode]["sample"]), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
