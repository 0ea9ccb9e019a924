"""What every export shares: which problems a dataset holds, and how a completion is graded.

A dataset is ``n`` problems of one split drawn from a mixture of environments, in equal shares,
round-robin: row ``i`` belongs to entry ``i % len(specs)`` and is that environment's problem
``split_seed(split, i // len(specs))``. Each row names its environment, seed and difficulty, the
coordinates from which the problem is sampled again at grading time.

Grading goes through the environment's own ``grade`` (the last ``<answer>...</answer>`` of the
completion, bounded in time and size, never raising). The completion is untrusted text and is only
ever handled as data; the instance it is graded against is re-sampled by ``Grader`` from the row's
coordinates rather than read from the row, so an edited dataset cannot change what counts as right.
Environments come from the registry (``envs.get``: the seed environments and the ``rg:`` and
``game:`` families); a program from a file is graded only through an object that runs it in the
sandbox, such as ``synth.sandboxed_env.SandboxedEnvironment``, passed in ``environments``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worldsmith import envs
from worldsmith.envs.contract import SPLITS, Instance, Score, check_difficulty

#: The prefix of every exported row's ``data_source`` / ``source_dataset``.
SOURCE_PREFIX = "worldsmith/"


@dataclass(frozen=True)
class EnvSpec:
    """One entry of a mixture: an environment name and the difficulty its problems are drawn at."""

    name: str
    difficulty: float = 0.0

    def __str__(self) -> str:
        return f"{self.name}@{self.difficulty:g}"


def parse_env_specs(text: str | Sequence[str]) -> list[EnvSpec]:
    """``"gcd_euclid,arithmetic_chain@0.5"`` (or a list of such items) as specs; raises ``ValueError``
    for an empty list or a bad difficulty and ``envs.UnknownEnvironment`` for an unknown name.

    >>> parse_env_specs("gcd_euclid,arithmetic_chain@0.5")
    [EnvSpec(name='gcd_euclid', difficulty=0.0), EnvSpec(name='arithmetic_chain', difficulty=0.5)]
    """
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    specs = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, sep, diff = item.rpartition("@") if "@" in item else (item, "", "")
        try:
            difficulty = check_difficulty(float(diff)) if sep else 0.0
        except (TypeError, ValueError):
            raise ValueError(f"{item}: difficulty must be a number in [0, 1], got {diff!r}") from None
        envs.get(name)  # an unknown name fails here, before any work
        specs.append(EnvSpec(name, difficulty))
    if not specs:
        raise ValueError("no environment given")
    return specs


@dataclass(frozen=True)
class Problem:
    """One exported problem: its place in the dataset, its coordinates and what the model sees."""

    index: int
    env: str
    seed: int
    difficulty: float
    prompt: str
    reference: str
    problem_id: int

    @property
    def coordinates(self) -> dict[str, Any]:
        """What grading needs to sample the instance again (JSON-ready)."""
        return {"env": self.env, "seed": self.seed, "difficulty": self.difficulty}


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return split


def problems(specs: Sequence[EnvSpec], n: int, split: str = "train",
             environments: Mapping[str, Any] | None = None, progress: bool = False) -> list[Problem]:
    """The first ``n`` problems of ``split`` over the mixture ``specs`` (see the module doc);
    ``progress`` shows a bar on standard error (plain lines when it is not a terminal)."""
    from worldsmith.progress import progress_bar

    check_split(split)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not specs:
        raise ValueError("no environment given")
    resolve = _resolver(environments)
    out = []
    for i in progress_bar(range(n), desc="sample", disable=not progress, leave=False):
        spec = specs[i % len(specs)]
        inst = resolve(spec.name).sample(envs.split_seed(split, i // len(specs)), spec.difficulty)
        out.append(Problem(i, spec.name, inst.seed, inst.difficulty, inst.prompt, inst.reference, inst.problem_id))
    return out


def _resolver(environments: Mapping[str, Any] | None):
    cache: dict[str, Any] = {}

    def resolve(name: str):
        if name not in cache:
            cache[name] = environments[name] if environments is not None and name in environments else envs.get(name)
        return cache[name]

    return resolve


def completion_text(completion: object) -> object:
    """The text of a completion as consumers pass it: a string, or a chat completion (a list of
    messages, the last one the model's). Anything else is returned as is, for ``grade`` to refuse."""
    if isinstance(completion, list) and completion and isinstance(completion[-1], Mapping):
        return completion[-1].get("content", "")
    return completion


class Grader:
    """Grades completions of exported problems with the environments' own ``grade``.

    ``instance(env, seed, difficulty)`` samples the problem again (memoised, at most
    ``cache_size`` instances kept); ``grade`` and ``reward`` never raise for a bad completion, but a
    row whose coordinates name no environment or no valid seed is a ``ValueError``: that is a
    broken dataset, not a wrong answer.
    """

    def __init__(self, environments: Mapping[str, Any] | None = None, cache_size: int = 65536) -> None:
        self._resolve = _resolver(environments)
        self._instances: dict[tuple[str, int, float], Instance] = {}
        self.cache_size = cache_size

    def environment(self, name: str):
        """The environment (or the object standing for it in ``environments``) called ``name``;
        ``ValueError`` for an unknown name."""
        try:
            return self._resolve(str(name))
        except envs.UnknownEnvironment as exc:
            raise ValueError(f"row names no known environment: {exc}") from None

    def instance(self, env: str, seed: int, difficulty: float) -> Instance:
        if isinstance(seed, bool) or not isinstance(seed, int):
            try:
                seed = int(seed)  # parquet and arrow hand back numpy integers
            except (TypeError, ValueError):
                raise ValueError(f"row seed {seed!r} is not an integer") from None
        key = (str(env), seed, float(difficulty))
        inst = self._instances.get(key)
        if inst is None:
            inst = self.environment(key[0]).sample(seed, key[2])
            if len(self._instances) >= self.cache_size:
                self._instances.pop(next(iter(self._instances)))
            self._instances[key] = inst
        return inst

    def grade(self, env: str, seed: int, difficulty: float, completion: object) -> Score:
        """The environment's verdict on ``completion`` for the problem at these coordinates."""
        inst = self.instance(env, seed, difficulty)
        return self.environment(env).grade(inst, completion_text(completion))

    def reward(self, env: str, seed: int, difficulty: float, completion: object) -> float:
        return self.grade(env, seed, difficulty, completion).value


def manifest(kind: str, specs: Sequence[EnvSpec], rows: Sequence[Problem], split: str) -> dict[str, Any]:
    """The ``manifest.json`` written beside every export: what it holds and how it was made."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        made_by = version("worldsmith")
    except PackageNotFoundError:
        made_by = "unknown"
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.env] = counts.get(row.env, 0) + 1
    return {"format": kind, "split": split, "rows": len(rows), "envs": [str(s) for s in specs],
            "rows_per_env": counts, "worldsmith_version": made_by}
