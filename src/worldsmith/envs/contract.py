"""The Environment contract: four routines written by an author, two provided by the framework.

An author writes ``generate`` (sampler), ``solve`` (oracle), ``render`` (prompt) and ``score``
(checker). The framework provides ``sample(seed, difficulty) -> Instance`` and
``grade(instance, response) -> Score``; ``grade`` never raises.

Splits partition problems, not seeds. Every instance has a problem identity, a hash of its prompt
(``problem_id``), and every problem belongs to one split by that hash (``problem_split``): a
quarter of all problems (``EVAL_FRACTION``) are eval problems, the rest train problems. Every seed
belongs to a split too (its low bit, see ``split_seed``), and ``sample`` redraws, deterministically
from the seed, until the problem belongs to the seed's split. So no problem drawn by an eval seed
can ever be drawn by a train seed, in any environment, at any difficulty.

This module imports only the standard library: every sandboxed run of a candidate program imports
it in a fresh process, so it must stay cheap (no torch, no transformers).
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from dataclasses import asdict, dataclass, field

from worldsmith.envs import answers

TYPE_CHECKING = False  # typing stays out of the import: sandboxed programs import this in every run
if TYPE_CHECKING:
    from typing import ClassVar

#: Splits the framework knows; their seeds are disjoint by construction (see ``split_seed``).
SPLITS: dict[str, int] = {"train": 0, "eval": 1}

#: The share of all problems that belong to the eval split. A quarter keeps the eval split large on
#: small problem spaces (a difficulty with 1,000 distinct problems holds about 250 unseen ones)
#: while training keeps three quarters; it also bounds the cost of sampling: an eval seed needs
#: 1 / 0.25 = 4 draws on average, a train seed 1 / 0.75 = 1.33. Changing it moves problems between
#: the splits (raising it only moves train problems to eval), so results measured under different
#: fractions are not comparable.
EVAL_FRACTION = 0.25
#: ``problem_split`` cuts a 16-bit bucket of the problem's hash at ``EVAL_FRACTION``.
_SPLIT_BUCKETS = 1 << 16
_EVAL_BUCKETS = round(EVAL_FRACTION * _SPLIT_BUCKETS)
#: The most draws ``sample`` makes for one seed before it gives up (``SplitExhausted``). A problem
#: space large enough to split fails an eval seed with probability 0.75 ** 100, about 3e-13.
MAX_SPLIT_DRAWS = 100


def stable_hash(*parts: object) -> int:
    """A 64-bit integer from the parts' text, identical across processes and Python versions.

    >>> stable_hash("gcd_euclid", 3) == stable_hash("gcd_euclid", 3)
    True
    """
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def split_seed(split: str, index: int) -> int:
    """The seed of item ``index`` of ``split``.

    The low bit carries the split (train even, eval odd), so no train seed can ever equal an eval
    seed, and the rest comes from a hash, so adjacent indices give unrelated seeds. ``sample``
    draws only problems of the seed's split, so the problems differ too, not just the seeds.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return ((stable_hash("split", split, index) >> 2) << 1) | SPLITS[split]


def seed_split(seed: int) -> str:
    """The split a seed belongs to: its low bit (every integer is a train or an eval seed)."""
    return "eval" if seed & 1 else "train"


def problem_id(prompt: str) -> str:
    """The identity of the problem a prompt states: 16 hex digits of a SHA-256 of the prompt with
    whitespace runs collapsed. Seed, difficulty, environment and the instance's private data (a
    planted solution, a generator's seed) do not enter: two instances whose prompts read the same
    are the same problem to a model.

    >>> problem_id("Start at 3 and apply in order: +4.") == problem_id(" Start at 3  and apply in order: +4. ")
    True
    """
    text = " ".join(prompt.split())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def problem_split(pid: str) -> str:
    """The split problem ``pid`` (a ``problem_id``) belongs to: ``"eval"`` for a share
    ``EVAL_FRACTION`` of all problems, chosen by hash, else ``"train"``."""
    return "eval" if stable_hash("problem_split", pid) % _SPLIT_BUCKETS < _EVAL_BUCKETS else "train"


class SplitExhausted(ValueError):
    """``sample`` found no problem of the seed's split in ``MAX_SPLIT_DRAWS`` draws: the difficulty
    has too few distinct problems to split."""


@dataclass(frozen=True)
class Instance:
    """One sampled problem. ``data`` is the JSON-serialisable instance ``generate`` returned."""

    env: str
    seed: int
    difficulty: float
    prompt: str
    reference: str
    data: dict

    @property
    def problem_id(self) -> str:
        """The problem's identity (``problem_id`` of the prompt)."""
        return problem_id(self.prompt)

    @property
    def split(self) -> str:
        """The split the problem belongs to (``problem_split``)."""
        return problem_split(self.problem_id)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Score:
    """The verdict on one response: ``value`` in [0, 1], ``passed`` iff value is 1, and why."""

    value: float
    passed: bool
    reason: str
    answer: str | None = field(default=None, compare=False)


def _fail(reason: str, answer: str | None = None) -> Score:
    return Score(0.0, False, reason, answer)


class Environment:
    """Base class of every environment.

    Subclasses set ``name`` and ``description`` and implement the four routines. Class attributes
    an environment may override:

    - ``oracle``: ``"equality"`` (one right answer) or ``"feasibility"`` (any valid answer passes).
    - ``answer_format``: a short human description of the expected answer, shown in prompts.
    - ``allow_boxed``: accept a final ``\\boxed{...}`` when no ``<answer>`` tag is present (math).
    - ``max_answer_chars``: answers longer than this are rejected before ``score`` sees them.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    oracle: ClassVar[str] = "equality"
    answer_format: ClassVar[str] = "the final answer"
    allow_boxed: ClassVar[bool] = False
    max_answer_chars: ClassVar[int] = answers.MAX_ANSWER_CHARS

    # --- the four routines an author writes -------------------------------------------------
    def generate(self, rng: random.Random, difficulty: float) -> dict:
        raise NotImplementedError

    def solve(self, instance: dict) -> str:
        raise NotImplementedError

    def render(self, instance: dict) -> str:
        raise NotImplementedError

    def score(self, instance: dict, answer: str) -> float:
        raise NotImplementedError

    # --- optional: exact step checking ------------------------------------------------------
    def steps(self, instance: dict) -> list[str] | None:
        """A reference solution trace, one string per step, or None when not provided."""
        return None

    def check_step(self, instance: dict, previous_steps: list[str], step: str) -> bool:
        """Whether ``step`` is a correct next step after ``previous_steps``."""
        raise NotImplementedError(f"{self.name} does not check steps")

    @classmethod
    def has_steps(cls) -> bool:
        return cls.steps is not Environment.steps

    # --- provided by the framework ------------------------------------------------------------
    def rng_for(self, seed: int, draw: int = 0) -> random.Random:
        """The RNG ``generate`` receives for draw ``draw`` of ``seed``: seeded from a stable hash
        of (name, seed), and of (name, seed, draw) for the redraws after the first."""
        return random.Random(stable_hash(self.name, seed) if draw == 0 else stable_hash(self.name, seed, draw))

    def sample(self, seed: int, difficulty: float = 0.0) -> Instance:
        """Sample the instance for (seed, difficulty); the same arguments give the same instance.

        The problem belongs to the seed's split (``seed_split``): a draw whose problem belongs to
        the other split is redrawn from ``rng_for(seed, draw)``, at most ``MAX_SPLIT_DRAWS``
        times, then ``SplitExhausted`` is raised.
        """
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        difficulty = check_difficulty(difficulty)
        split = seed_split(seed)
        for draw in range(MAX_SPLIT_DRAWS):
            # instances must be plain JSON data; the contract battery (envs/checks.py) proves it per
            # environment, so the hot path does not pay for a JSON round trip on every sample
            data = self.generate(self.rng_for(seed, draw), difficulty)
            prompt = self.render(data)
            if problem_split(problem_id(prompt)) == split:
                return Instance(
                    env=self.name,
                    seed=seed,
                    difficulty=difficulty,
                    prompt=prompt,
                    reference=self.solve(data),
                    data=data,
                )
        raise SplitExhausted(
            f"{self.name} at difficulty {difficulty:g}: no {split}-split problem in {MAX_SPLIT_DRAWS} draws "
            f"of seed {seed}; this difficulty has too few distinct problems to split "
            f"(`worldsmith envs check {self.name}` counts them)"
        )

    def grade(self, instance: Instance | dict, response: object) -> Score:
        """Score a full response. Never raises; anything malformed scores 0 with a reason.

        The final answer is the last ``<answer>...</answer>`` in the response (or, for
        environments with ``allow_boxed``, the last ``\\boxed{...}`` when no tag is present).
        """
        data = instance.data if isinstance(instance, Instance) else instance
        try:
            answer, why = answers.extract_answer(
                response, allow_boxed=self.allow_boxed, max_answer_chars=self.max_answer_chars
            )
        except Exception as exc:  # extraction is ours and bounded; still, never raise
            return _fail(f"extraction failed: {type(exc).__name__}")
        if answer is None:
            return _fail(why)
        started = time.perf_counter()
        try:
            value = self.score(data, answer)
        except Exception as exc:
            return _fail(f"scorer raised {type(exc).__name__}: {str(exc)[:120]}", answer)
        elapsed = time.perf_counter() - started
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _fail(f"scorer returned {type(value).__name__}, not a number", answer)
        value = float(value)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            return _fail(f"scorer returned {value!r}, outside [0, 1]", answer)
        passed = value == 1.0
        reason = "correct" if passed else ("partial credit" if value > 0 else "incorrect")
        if elapsed > 1.0:
            reason += f" (slow scorer: {elapsed:.2f}s)"
        return Score(value, passed, reason, answer)

    def wrap(self, answer: str) -> str:
        """A response that states ``answer`` as the final answer."""
        return f"<answer>{answer}</answer>"

    def __repr__(self) -> str:
        return f"<Environment {self.name}>"


def check_difficulty(difficulty: object) -> float:
    """Validate a difficulty: a finite number in [0, 1]."""
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float)):
        raise TypeError(f"difficulty must be a number in [0, 1], got {difficulty!r}")
    difficulty = float(difficulty)
    if not (0.0 <= difficulty <= 1.0):
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    return difficulty


def lerp_int(difficulty: float, low: int, high: int) -> int:
    """An integer size that grows from ``low`` at difficulty 0 to ``high`` at difficulty 1."""
    return low + int(round(difficulty * (high - low)))


def prompt_of(body: str, answer_format: str) -> str:
    """The standard prompt: the task, then how to state the final answer."""
    return f"{body}\nGive {answer_format} as <answer>...</answer>."
