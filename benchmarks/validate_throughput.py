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
from worldsmith.synth.gates import GateConfig, validate

CORRECT = '''
from worldsmith.envs.answers import parse_int
from worldsmith.envs.contract import Environment, lerp_int, prompt_of


class ListSum(Environment):
    name = "list_sum"
    description = "Sum a list of integers."
    answer_format = "the sum as an integer"

    def generate(self, rng, difficulty):
        n = lerp_int(difficulty, 3, 9)
        return {"values": [rng.randint(-50, 99) for _ in range(n)]}

    def solve(self, instance):
        return str(sum(instance["values"]))

    def render(self, instance):
        return prompt_of("Add up: " + " + ".join(map(str, instance["values"])), self.answer_format)

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == sum(instance["values"]) else 0.0
'''

TOLERANT = CORRECT.replace(
    "        value = parse_int(answer)\n"
    "        return 1.0 if value is not None and value == sum(instance[\"values\"]) else 0.0",
    "        try:\n"
    "            return 1.0 if abs(float(answer) - sum(instance['values'])) < 1 else 0.0\n"
    "        except ValueError:\n"
    "            return 0.0")

CANDIDATES = {"correct": (CORRECT, True), "rejected": (TOLERANT, False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)
    assert TOLERANT != CORRECT
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
