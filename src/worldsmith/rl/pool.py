"""EnvPool: a weighted mix of environments, each at a fixed or a pass-rate-steered difficulty.

Sampling is deterministic: the environment of each batch item comes from an RNG seeded by
``(rng_seed, step_index)``, and instance seeds are ``split_seed("train", k)`` for a running counter
k that never repeats, so no train seed is used twice and no eval seed ever appears. The counter,
difficulties and pass-rate averages are the pool's state (``state_dict`` / ``load_state_dict``).

Steering (entries with ``adaptive=True``): after each batch, ``update`` folds the batch's pass rate
into an exponential moving average per environment, ``ema = decay * ema + (1 - decay) * rate``
(the first batch initialises it to the rate); if the average is above the entry's band the
difficulty rises by ``step``, if below it falls by ``step``, clamped to [min_difficulty,
max_difficulty]. This repeats every batch while the average stays outside the band.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worldsmith import envs
from worldsmith.envs.contract import Environment, Instance, split_seed, stable_hash


class PoolEntry(BaseModel):
    """One environment of the pool and how its difficulty is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registered environment name (e.g. 'arithmetic_chain', 'rg:gcd').")
    weight: float = Field(1.0, ge=0.0, description="Relative share of each batch; 0 disables the entry.")
    difficulty: float = Field(0.0, ge=0.0, le=1.0, description="Fixed difficulty, or the starting one when adaptive.")
    adaptive: bool = Field(False, description="Steer the difficulty toward the pass-rate band.")
    band: tuple[float, float] = Field((0.3, 0.7), description="Target [low, high] pass rate when adaptive.")
    step: float = Field(0.05, gt=0.0, le=1.0, description="Difficulty change per batch outside the band.")
    min_difficulty: float = Field(0.0, ge=0.0, le=1.0, description="Lowest difficulty steering may reach.")
    max_difficulty: float = Field(1.0, ge=0.0, le=1.0, description="Highest difficulty steering may reach.")
    spread: float = Field(0.0, ge=0.0, le=0.5, description="Each problem's difficulty is drawn uniformly from "
                          "[difficulty - spread, difficulty + spread] (clipped to [0, 1]) by its seed; 0 = all at "
                          "the difficulty. A range of sizes keeps a policy from fitting one size.")

    @model_validator(mode="after")
    def _check_ranges(self) -> PoolEntry:
        low, high = self.band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"band must satisfy 0 <= low <= high <= 1, got {self.band}")
        if not self.min_difficulty <= self.difficulty <= self.max_difficulty:
            raise ValueError(
                f"need min_difficulty <= difficulty <= max_difficulty, got "
                f"{self.min_difficulty} <= {self.difficulty} <= {self.max_difficulty}"
            )
        return self


class EnvPool:
    """A weighted, difficulty-steered mix of environments.

    ``environments`` optionally maps entry names to Environment objects to use instead of looking
    the names up in the registry. ``ema_decay`` is the weight of the old average in the pass-rate
    moving average.

    The entries given here are the configured ones; others may join during a run (``add``, e.g.
    programs a policy wrote) and leave again (``remove``). Once some have joined, at least ``floor``
    of each batch is drawn from the configured entries. A joined environment whose sampling raises
    is dropped from that batch (its rows are redrawn from the configured entries) and reported in
    ``broken``. ``factory(entry)`` rebuilds a joined entry's environment when a state is loaded
    (None leaves it out).
    """

    def __init__(
        self,
        entries: Sequence[PoolEntry | Mapping],
        ema_decay: float = 0.9,
        environments: Mapping[str, Environment] | None = None,
        *,
        floor: float = 0.0,
        factory: Callable[[PoolEntry], Environment | None] | None = None,
    ) -> None:
        self.entries = [e if isinstance(e, PoolEntry) else PoolEntry.model_validate(e) for e in entries]
        names = [e.name for e in self.entries]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"pool entries need distinct names, at least one; got {names}")
        if not sum(e.weight for e in self.entries) > 0:
            raise ValueError("at least one pool entry needs a positive weight")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.ema_decay = ema_decay
        given = environments or {}
        self.envs = {e.name: given[e.name] if e.name in given else envs.get(e.name) for e in self.entries}
        self._entry_of = {env.name: name for name, env in self.envs.items()}  # Instance.env -> entry
        if len(self._entry_of) != len(names):
            raise ValueError("two pool entries resolve to the same environment")
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"floor must be in [0, 1], got {floor}")
        self.configured = frozenset(names)
        self.floor = floor
        self.factory = factory
        self.broken: dict[str, str] = {}  # joined entry -> why it could not sample
        self.last_configured_fraction: float | None = None  # share of the last batch from configured entries
        self._counter = 0
        self._difficulty = {e.name: e.difficulty for e in self.entries}
        self._spread = {e.name: e.spread for e in self.entries}
        self._ema: dict[str, float | None] = dict.fromkeys(names)
        self._updates = dict.fromkeys(names, 0)

    # --- membership ----------------------------------------------------------------------------
    def env_named(self, env_name: str) -> Environment:
        """The environment whose ``Environment.name`` (as in ``Instance.env``) is ``env_name``."""
        return self.envs[self._entry_of[env_name]]

    def add(self, entry: PoolEntry | Mapping, env: Environment) -> None:
        """Add an entry (with its environment object) to the pool; it starts at its difficulty
        with no pass-rate history."""
        entry = entry if isinstance(entry, PoolEntry) else PoolEntry.model_validate(entry)
        if entry.name in self.envs:
            raise ValueError(f"the pool already has an entry named {entry.name!r}")
        if env.name in self._entry_of:
            raise ValueError(f"environment {env.name!r} is already in the pool")
        self.entries.append(entry)
        self.envs[entry.name] = env
        self._entry_of[env.name] = entry.name
        self._difficulty[entry.name] = entry.difficulty
        self._spread[entry.name] = entry.spread
        self._ema[entry.name] = None
        self._updates[entry.name] = 0

    def joined(self) -> list[PoolEntry]:
        """The entries that joined after construction, in joining order."""
        return [e for e in self.entries if e.name not in self.configured]

    def remove(self, name: str) -> None:
        """Drop an entry that joined; configured entries stay."""
        if name not in self.envs:
            raise KeyError(f"no pool entry named {name!r}")
        if name in self.configured:
            raise ValueError(f"{name!r} is a configured environment; configured environments stay in the pool")
        rest = [e for e in self.entries if e.name != name]
        if not sum(e.weight for e in rest) > 0:
            raise ValueError(f"removing {name!r} would leave no entry with a positive weight")
        self.entries = rest
        self.broken.pop(name, None)
        env = self.envs.pop(name)
        self._entry_of.pop(env.name, None)
        for table in (self._difficulty, self._spread, self._ema, self._updates):
            table.pop(name, None)

    def updates(self) -> dict[str, int]:
        """How many batches have updated each entry's pass rate."""
        return dict(self._updates)

    def difficulties(self) -> dict[str, float]:
        """The current difficulty of every entry."""
        return dict(self._difficulty)

    def pass_rates(self) -> dict[str, float | None]:
        """The moving-average pass rate of every entry (None before its first update)."""
        return dict(self._ema)

    def sample_batch(self, n: int, step_index: int, rng_seed: int) -> list[Instance]:
        """n instances; the same pool state and arguments always give the same batch.

        Environments are assigned by systematic sampling on the weights (each entry gets
        n * weight / total items up to rounding, never off by more than one), then shuffled.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = random.Random(stable_hash("env_pool", rng_seed, step_index))
        picks = self._picks(n, rng)
        rng.shuffle(picks)
        seeds = []
        for _ in picks:
            seeds.append(split_seed("train", self._counter))
            self._counter += 1
        return self._instances([self.entries[i].name for i in picks], seeds)

    def _picks(self, n: int, rng: random.Random) -> list[int]:
        """The entry index of each of n batch items (before shuffling): systematic on the weights,
        with at least ``floor`` of them from the configured entries once others have joined."""
        configured = [i for i, e in enumerate(self.entries) if e.name in self.configured]
        others = [i for i, e in enumerate(self.entries) if e.name not in self.configured and e.weight > 0]
        if not others or n == 0:
            return self._systematic(n, rng, configured)
        w_configured = sum(self.entries[i].weight for i in configured)
        w_all = w_configured + sum(self.entries[i].weight for i in others)
        n_configured = min(n, max(math.ceil(self.floor * n - 1e-9), round(n * w_configured / w_all)))
        return self._systematic(n_configured, rng, configured) + self._systematic(n - n_configured, rng, others)

    def _instances(self, names: Sequence[str], seeds: Sequence[int]) -> list[Instance]:
        """The instance of each (entry, seed). Rows of a joined environment whose sampling raises
        are redrawn from the configured entries (``broken`` says why)."""
        names = list(names)
        out, failed = self._sample(names, seeds)
        if failed:
            rng = random.Random(stable_hash("redraw", self._counter))
            configured = [i for i, e in enumerate(self.entries) if e.name in self.configured]
            names = [self.entries[rng.choice(configured)].name if n in failed else n for n in names]
            out, _ = self._sample(names, seeds)
        self.last_configured_fraction = sum(n in self.configured for n in names) / max(1, len(names))
        return out

    def _sample(self, names: list[str], seeds: Sequence[int]) -> tuple[list[Instance], set[str]]:
        """The instance of each (entry, seed), and the joined entries whose sampling raised (marked
        broken; their rows are None). An environment with ``sample_many`` (a sandboxed program) is
        asked once for all its seeds."""
        failed = set()
        out: list[Instance | None] = [None] * len(names)
        rows: dict[str, list[int]] = {}
        for k, name in enumerate(names):
            rows.setdefault(name, []).append(k)
        for name, ks in rows.items():
            env, spread = self.envs[name], self._spread.get(name, 0.0)
            by_difficulty: dict[float, list[int]] = {}
            for k in ks:
                by_difficulty.setdefault(spread_difficulty(self._difficulty[name], spread, seeds[k]), []).append(k)
            try:
                many = getattr(env, "sample_many", None)
                for difficulty, group in by_difficulty.items():
                    if many is not None:
                        for k, inst in zip(group, many([seeds[k] for k in group], difficulty)):
                            out[k] = inst
                    else:
                        for k in group:
                            out[k] = env.sample(seeds[k], difficulty)
            except Exception as exc:
                if name in self.configured:
                    raise
                self.broken[name] = f"{type(exc).__name__}: {exc}"[:300]
                failed.add(name)
        return out, failed  # type: ignore[return-value]

    def _systematic(self, n: int, rng: random.Random, among: Sequence[int] | None = None) -> list[int]:
        """Entry indices for n items: points offset + i / n against the cumulative weights (of the
        entries ``among``, default all)."""
        candidates = range(len(self.entries)) if among is None else among
        active = [i for i in candidates if self.entries[i].weight > 0]
        if not active:
            raise ValueError("no entry with a positive weight to sample from")
        total = sum(self.entries[i].weight for i in active)
        bounds, running = [], 0.0
        for i in active:
            running += self.entries[i].weight / total
            bounds.append(running)
        offset, picks, j = rng.random() / max(n, 1), [], 0
        for i in range(n):
            point = offset + i / n  # in [0, 1)
            while j < len(bounds) - 1 and point >= bounds[j]:
                j += 1
            picks.append(active[j])
        return picks

    def update(self, instances: Sequence[Instance], passed: Sequence[bool | float]) -> dict[str, float]:
        """Fold one batch's outcomes (passed flags or scores in [0, 1]) into the averages and steer.

        Returns metrics ``pool/<name>/{batch_pass_rate, pass_rate, difficulty}`` for the entries
        present in the batch, and ``pool/<name>/difficulty`` for all.
        """
        if len(instances) != len(passed):
            raise ValueError(f"{len(instances)} instances but {len(passed)} outcomes")
        outcomes: dict[str, list[float]] = {}
        for inst, ok in zip(instances, passed):
            if inst.env not in self._entry_of:
                raise ValueError(f"instance of {inst.env!r} is not from this pool; pool: {', '.join(self._entry_of)}")
            outcomes.setdefault(self._entry_of[inst.env], []).append(float(ok))
        metrics = {}
        for entry in self.entries:
            name = entry.name
            if name in outcomes:
                rate = sum(outcomes[name]) / len(outcomes[name])
                old = self._ema[name]
                self._ema[name] = rate if old is None else self.ema_decay * old + (1 - self.ema_decay) * rate
                self._updates[name] += 1
                if entry.adaptive:
                    self._difficulty[name] = _steer(entry, self._difficulty[name], self._ema[name])
                metrics[f"pool/{name}/batch_pass_rate"] = rate
                metrics[f"pool/{name}/pass_rate"] = self._ema[name]
            metrics[f"pool/{name}/difficulty"] = self._difficulty[name]
        return metrics

    def state_dict(self) -> dict:
        """The pool's mutable state, JSON-serialisable (with the joined entries' settings)."""
        return {
            "counter": self._counter,
            "joined": [e.model_dump(mode="json") for e in self.joined()],
            "entries": {
                name: {"difficulty": self._difficulty[name], "ema": self._ema[name], "updates": self._updates[name]}
                for name in self._difficulty
            },
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Restore a ``state_dict``: the joined entries are rebuilt with ``factory`` (one it cannot
        rebuild is left out); the configured entries must be exactly this pool's."""
        for entry in self.joined():
            self.remove(entry.name)
        left_out = set()
        for spec in state.get("joined") or []:
            entry = PoolEntry.model_validate(spec)
            if self.factory is None:
                raise ValueError("restoring joined environments needs the pool's factory")
            env = self.factory(entry)
            if env is None:
                left_out.add(entry.name)
            else:
                self.add(entry, env)
        saved = {name: s for name, s in state["entries"].items() if name not in left_out}
        if set(saved) != set(self._difficulty):
            raise ValueError(f"state has entries {sorted(saved)}, pool has {sorted(self._difficulty)}")
        counter = int(state["counter"])
        if counter < 0:
            raise ValueError(f"counter must be >= 0, got {counter}")
        self._counter = counter
        for name, s in saved.items():
            self._difficulty[name] = float(s["difficulty"])
            self._ema[name] = None if s["ema"] is None else float(s["ema"])
            self._updates[name] = int(s["updates"])


def spread_difficulty(difficulty: float, spread: float, seed: int) -> float:
    """The difficulty of the problem of ``seed`` in an entry at ``difficulty`` with ``spread``:
    uniform in [difficulty - spread, difficulty + spread] by the seed alone, clipped to [0, 1]."""
    if spread <= 0:
        return difficulty
    u = random.Random(stable_hash("spread", seed)).random()
    return round(min(max(difficulty + spread * (2 * u - 1), 0.0), 1.0), 9)


def _steer(entry: PoolEntry, difficulty: float, pass_rate: float) -> float:
    """One steering move: up by step above the band, down below it, clamped; rounded to 1e-9."""
    low, high = entry.band
    if pass_rate > high:
        difficulty += entry.step
    elif pass_rate < low:
        difficulty -= entry.step
    return round(min(max(difficulty, entry.min_difficulty), entry.max_difficulty), 9)

