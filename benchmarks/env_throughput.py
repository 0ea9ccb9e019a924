"""Instances/s and grades/s of every worldsmith environment, next to the closest reasoning-gym dataset.

For each registered environment (whatever ``worldsmith.envs.names()`` lists) the benchmark measures

- instances/s: ``env.sample(seed, 0.5)`` over fresh seeds;
- grades/s: ``env.grade(instance, env.wrap(instance.reference))`` over sampled instances: a full
  response, answer extraction included;
- scores/s: ``env.score(instance.data, reference)``, the bare answer, which is what reasoning-gym's
  ``score_answer`` receives (``ratio_scores`` is the like-for-like grading ratio);

and, in the same run, for its reasoning-gym peer (default configuration):

- instances/s: item creation, ``dataset[i]`` over fresh indices of a built dataset (items whose
  generation raises are skipped and counted, the time they took is kept);
- grades/s: ``dataset.score_answer(reference, item)`` over created items.

The four measurements alternate (the order flips every repeat) and each rate is the median over the
repeats. Ratios are worldsmith / reasoning-gym, so above 1 means worldsmith is faster. Prints one
JSON line. ``--quick`` runs a short version (fewer repeats, shorter windows).

    .venv/bin/python benchmarks/env_throughput.py [--quick] [--envs a,b]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time

from extras import require

from worldsmith import envs
from worldsmith.envs.contract import split_seed

DIFFICULTY = 0.5

#: The closest reasoning-gym dataset to each seed environment.
PEERS = {
    "arithmetic_chain": "chain_sum",
    "gcd_euclid": "gcd",
    "fraction_sum": "fraction_simplification",
    "graph_distance": "shortest_path",
    "topo_order": "course_schedule",
    "subset_sum": "countdown",
    "graph_coloring": "graph_color",
    "sat_planted": "knights_knaves",
    "sort_composite": "word_sorting",
    "grid_paths": "maze",
}


def rate(run_batch, window_s: float, batch: int = 16) -> float:
    """Operations per second of ``run_batch(k)`` over ~``window_s``; ``run_batch`` performs k
    attempts and returns how many succeeded (None: all of them)."""
    done, started = 0, time.perf_counter()
    while True:
        succeeded = run_batch(batch)
        done += batch if succeeded is None else succeeded
        elapsed = time.perf_counter() - started
        if elapsed >= window_s:
            return done / elapsed
        batch = min(batch * 2, 4096)


class Ours:
    def __init__(self, name: str, pool: int) -> None:
        self.env = envs.get(name)
        self.seeds = itertools.count()
        self.instances = [self.env.sample(split_seed("eval", i), DIFFICULTY) for i in range(pool)]
        self.responses = [self.env.wrap(inst.reference) for inst in self.instances]
        self.k = 0

    def sample(self, n: int) -> None:
        env, seeds = self.env, self.seeds
        for _ in range(n):
            env.sample(split_seed("train", next(seeds)), DIFFICULTY)

    def grade(self, n: int) -> None:
        env, insts, responses = self.env, self.instances, self.responses
        size = len(insts)
        for _ in range(n):
            j = self.k % size
            self.k += 1
            if not env.grade(insts[j], responses[j]).passed:
                raise AssertionError(f"{env.name}: the reference did not pass")


    def score(self, n: int) -> None:
        """Like for like with reasoning-gym's score_answer: the bare answer, no extraction."""
        env, insts = self.env, self.instances
        size = len(insts)
        for _ in range(n):
            j = self.k % size
            self.k += 1
            if env.score(insts[j].data, insts[j].reference) != 1.0:
                raise AssertionError(f"{env.name}: the reference did not score 1")


class Peer:
    def __init__(self, name: str, pool: int) -> None:
        import reasoning_gym

        self.name = name
        self.dataset = reasoning_gym.create_dataset(name, seed=12345, size=10**9)
        self.index = itertools.count()
        self.failures = 0
        self.items = []
        while len(self.items) < pool:
            item = self.create(next(self.index))
            if item is not None:
                self.items.append(item)
        self.references = [self.reference(item) for item in self.items]
        self.k = 0

    def reference(self, item: dict) -> str:
        if item.get("answer") is not None:
            return item["answer"]
        metadata = item.get("metadata", {})
        if "possible_answer" in metadata:  # graph_color: a valid colouring, as its scorer reads it
            return json.dumps(metadata["possible_answer"])
        raise ValueError(f"rg:{self.name} items have no reference answer to grade")

    def create(self, index: int) -> dict | None:
        """Item ``index``; some reasoning-gym generators give up on some seeds (counted, skipped)."""
        try:
            return self.dataset[index]
        except Exception:
            self.failures += 1
            if self.failures > 1000 and self.failures > len(getattr(self, "items", [])):
                raise
            return None

    def sample(self, n: int) -> int:
        index = self.index
        return sum(self.create(next(index)) is not None for _ in range(n))

    def grade(self, n: int) -> None:
        dataset, items, refs = self.dataset, self.items, self.references
        size = len(items)
        for _ in range(n):
            j = self.k % size
            self.k += 1
            dataset.score_answer(refs[j], items[j])


def machine() -> str:
    return f"{platform.machine()} {platform.system()} {os.cpu_count()} cpus, Python {platform.python_version()}"


def measure(name: str, repeats: int, window_s: float, pool: int) -> dict:
    ours = Ours(name, pool)
    peer_name = PEERS.get(name)
    peer = None
    note = None
    if peer_name is None:
        note = "no reasoning-gym peer"
    else:
        try:
            peer = Peer(peer_name, pool)
        except ImportError:
            note = "reasoning-gym is not installed"
        except Exception as exc:  # a peer that cannot be built is reported, not fatal
            note = f"peer failed: {type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
    samples: dict[str, list[float]] = {"i": [], "g": [], "s": [], "pi": [], "pg": []}
    jobs = [("i", ours.sample), ("g", ours.grade)]
    if peer is not None:
        jobs += [("pi", peer.sample), ("pg", peer.grade)]
    for r in range(repeats):
        # alternate worldsmith and reasoning-gym, and flip the order every repeat
        order = [jobs[0], jobs[2], jobs[1], jobs[3]] if peer is not None else list(jobs)
        order.append(("s", ours.score))
        if r % 2:
            order.reverse()
        for key, fn in order:
            samples[key].append(rate(fn, window_s))
    row: dict[str, object] = {
        "instances_per_s": round(statistics.median(samples["i"]), 1),
        "grades_per_s": round(statistics.median(samples["g"]), 1),
        "scores_per_s": round(statistics.median(samples["s"]), 1),
        "peer": f"rg:{peer_name}" if peer_name else None,
    }
    if peer is not None:
        pi, pg = statistics.median(samples["pi"]), statistics.median(samples["pg"])
        row.update(
            peer_instances_per_s=round(pi, 1),
            peer_grades_per_s=round(pg, 1),
            ratio_instances=round(row["instances_per_s"] / pi, 3) if pi else None,  # type: ignore[operator]
            ratio_grades=round(row["grades_per_s"] / pg, 3) if pg else None,  # type: ignore[operator]
            ratio_scores=round(row["scores_per_s"] / pg, 3) if pg else None,  # type: ignore[operator]
        )
    else:
        row.update(peer_instances_per_s=None, peer_grades_per_s=None, ratio_instances=None, ratio_grades=None)
    if peer is not None and peer.failures:
        row["peer_generation_failures"] = peer.failures
    if note:
        row["note"] = note
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run: 3 repeats of 0.1 s windows")
    parser.add_argument("--envs", default="", help="comma-separated environment names (default: all)")
    args = parser.parse_args(argv)
    require("reasoning_gym")
    repeats, window_s, pool = (3, 0.1, 32) if args.quick else (7, 0.5, 256)
    names = envs.names()
    if args.envs:
        wanted = [n.strip() for n in args.envs.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            print(f"unknown environments: {', '.join(unknown)}; known: {', '.join(names)}", file=sys.stderr)
            return 2
        names = wanted
    started = time.perf_counter()
    rows = {name: measure(name, repeats, window_s, pool) for name in names}
    ratios_i = [r["ratio_instances"] for r in rows.values() if r.get("ratio_instances")]
    ratios_g = [r["ratio_grades"] for r in rows.values() if r.get("ratio_grades")]
    ratios_s = [r["ratio_scores"] for r in rows.values() if r.get("ratio_scores")]
    result = {
        "benchmark": "env_throughput",
        "machine": machine(),
        "quick": args.quick,
        "difficulty": DIFFICULTY,
        "repeats": repeats,
        "window_s": window_s,
        "envs": rows,
        "median_ratio_instances": round(statistics.median(ratios_i), 3) if ratios_i else None,
        "median_ratio_grades": round(statistics.median(ratios_g), 3) if ratios_g else None,
        "median_ratio_scores": round(statistics.median(ratios_s), 3) if ratios_s else None,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
