"""Fan sandbox validation, grading and environment sampling out over a Ray cluster.

The three jobs take a list and return a list in the same order, with the same verdicts as a serial
run: each item is computed by the same function, only on another process (or machine). Work is
sent in chunks, so one task amortises the worker's imports over several items::

    pool = Fanout.ray(workers=2)                  # a local Ray cluster of 2 CPUs (or address="ray://...")
    verdicts = validate_many(sources, pool=pool)  # gates L1-L5, each program in the sandbox
    scores = grade_many("gcd_euclid", instances, responses, pool=pool)
    instances = sample_many("gcd_euclid", seeds, 0.5, pool=pool)
    pool.close()

``Fanout.serial()`` runs the same chunks in this process, which is what the tests compare with.
Untrusted programs still run only inside ``worldsmith.sandbox`` on the worker; a worker takes the
caller's opt-in to unisolated runs (``--unsafe-no-isolation``) with each task, never otherwise.
Workers import worldsmith, so on a remote cluster it must be installed on every node (a local
cluster inherits this process's environment).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

#: Items per task when the caller does not say: enough to amortise a task's overhead.
DEFAULT_CHUNKS_PER_WORKER = 2


class FanoutError(RuntimeError):
    """Ray is missing or the cluster cannot be reached; the message is one line."""


class Fanout:
    """Where chunks of work run: in this process (``serial``) or as Ray tasks (``ray``)."""

    def __init__(self, ray_module=None, workers: int = 1, owns_cluster: bool = False) -> None:
        self._ray = ray_module
        self.workers = max(1, workers)
        self._owns = owns_cluster
        self._remote: dict[Callable, Any] = {}

    @classmethod
    def serial(cls) -> Fanout:
        return cls()

    @classmethod
    def ray(cls, address: str | None = None, workers: int | None = None) -> Fanout:
        """Connect to the Ray cluster at ``address`` ("auto": the one this machine belongs to), or
        start a local one with ``workers`` CPUs (default: all of this machine's)."""
        try:
            import ray
        except ImportError:
            raise FanoutError("--ray needs the ray package: pip install 'ray>=2.9'") from None
        owns = not ray.is_initialized()
        if owns:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address:
                kwargs["address"] = address
            elif workers:
                kwargs["num_cpus"] = workers
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise FanoutError(f"--ray {address or 'local'}: {str(exc).strip().splitlines()[0]}") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return cls(ray, workers=min(workers, cpus) if workers else cpus, owns_cluster=owns)

    @property
    def distributed(self) -> bool:
        return self._ray is not None

    def map(self, fn: Callable[..., list], items: Sequence, *args, chunk: int | None = None) -> list:
        """``fn(chunk_of_items, *args)`` over ``items`` in chunks; the results, concatenated in order."""
        items = list(items)
        if not items:
            return []
        size = chunk or max(1, math.ceil(len(items) / (self.workers * DEFAULT_CHUNKS_PER_WORKER)))
        chunks = [items[s : s + size] for s in range(0, len(items), size)]
        if self._ray is None:
            return [out for part in chunks for out in fn(part, *args)]
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(num_cpus=1)(fn)
        parts = self._ray.get([remote.remote(part, *args) for part in chunks])
        return [out for part in parts for out in part]

    def close(self) -> None:
        """Shut down the local cluster this object started (a cluster it joined keeps running)."""
        if self._ray is not None and self._owns:
            self._ray.shutdown()
        self._ray = None

    def __enter__(self) -> Fanout:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the chunk functions (module level: Ray ships them by reference) ------------------------------------


def _validate_chunk(sources: list[str], config: dict, mode: str, unisolated: bool) -> list[dict]:
    import warnings

    from worldsmith.sandbox import FALLBACK_WARNING, allow_unisolated
    from worldsmith.synth.gates import GateConfig, validate

    if unisolated:
        allow_unisolated()
    cfg = GateConfig(**config)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=FALLBACK_WARNING)
        return [validate(source, cfg, mode=mode).to_json() for source in sources]


def _grade_chunk(pairs: list[tuple[dict, str]], env_name: str) -> list[dict]:
    from worldsmith import envs
    from worldsmith.envs.contract import Instance

    env = envs.get(env_name)
    out = []
    for data, response in pairs:
        score = env.grade(Instance(**data), response)
        out.append({"value": score.value, "passed": score.passed, "reason": score.reason})
    return out


def _sample_chunk(seeds: list[int], env_name: str, difficulty: float) -> list[dict]:
    from worldsmith import envs

    env = envs.get(env_name)
    return [env.sample(seed, difficulty).to_json() for seed in seeds]


def _unisolated_allowed() -> bool:
    from worldsmith.sandbox import unisolated_allowed

    return unisolated_allowed()


# --- the jobs ------------------------------------------------------------------------------------------


def validate_many(sources: Sequence[str], config=None, mode: str = "auto", pool: Fanout | None = None,
                  chunk: int | None = None) -> list:
    """Gates L1-L5 on each program source (``gates.validate``): the verdicts, in order."""
    from worldsmith.synth.gates import GateConfig, GateResult, Verdict

    cfg = (config or GateConfig()).model_dump(mode="json")
    rows = (pool or Fanout.serial()).map(_validate_chunk, list(sources), cfg, mode, _unisolated_allowed(),
                                         chunk=chunk)
    return [Verdict(admitted=r["admitted"], gates=[GateResult(**g) for g in r["gates"]], isolation=r["isolation"],
                    runs=r["runs"]) for r in rows]


def grade_many(env_name: str, instances: Sequence, responses: Sequence[str], pool: Fanout | None = None,
               chunk: int | None = None) -> list:
    """``env.grade(instance, response)`` for each pair of a registered environment: the scores."""
    from worldsmith.envs.contract import Score

    if len(instances) != len(responses):
        raise ValueError(f"{len(instances)} instances but {len(responses)} responses")
    pairs = [(inst.to_json(), text) for inst, text in zip(instances, responses)]
    rows = (pool or Fanout.serial()).map(_grade_chunk, pairs, env_name, chunk=chunk)
    return [Score(r["value"], r["passed"], r["reason"]) for r in rows]


def sample_many(env_name: str, seeds: Sequence[int], difficulty: float = 0.0, pool: Fanout | None = None,
                chunk: int | None = None) -> list:
    """``env.sample(seed, difficulty)`` for each seed of a registered environment: the instances."""
    from worldsmith.envs.contract import Instance

    rows = (pool or Fanout.serial()).map(_sample_chunk, list(seeds), env_name, float(difficulty), chunk=chunk)
    return [Instance(**r) for r in rows]
