"""Solver-relative difficulty calibration of an environment (specs/rl-algorithms.md §1.4).

The difficulty contract: draw ``m`` calibration instances, let the current solver answer each
once, and take the pass rate â = (1/m)·Σ 1[passed]. A candidate is admitted only when
0 < â < 1, and earns the difficulty reward Q(â) = exp(−(â − a*)² / (2σ²)) with a* = 0.3.

``calibrate`` accepts anything with ``sample(seed, difficulty)`` and ``grade(instance, response)``:
an ``Environment`` or an adapter over a sandboxed candidate program. ``grade`` may return a
``Score`` (its ``passed`` is used), a bool, or a number (passed iff it equals 1).

Calibration seeds are odd, like eval-split seeds (``envs.split_seed("eval", i)``), so they never
coincide with a training seed, but they come from a calibration-specific stable hash, so they are
not the evaluation set's seeds either.

The confidence interval is the Wilson score interval: with n trials, k passes, p = k/n and z the
two-sided normal quantile of the confidence level,

    centre = (p + z²/(2n)) / (1 + z²/n)
    half   = z / (1 + z²/n) · sqrt(p(1 − p)/n + z²/(4n²))

and the interval is [centre − half, centre + half] clipped to [0, 1]. Unlike the normal
(Wald) interval it stays informative at k = 0 and k = n, which with m = 8 is the common case.

>>> round(difficulty_reward(0.3), 6), round(difficulty_reward(0.125), 4)
(1.0, 0.6819)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worldsmith.envs.contract import check_difficulty, stable_hash
from worldsmith.policy.backend import GenerationBackend, SamplingParams


class EnvLike(Protocol):
    """What calibration needs of an environment: seeded sampling and grading."""

    def sample(self, seed: int, difficulty: float = 0.0) -> Any: ...

    def grade(self, instance: Any, response: object) -> Any: ...


class CalibrationConfig(BaseModel):
    """Every constant of the difficulty contract, tagged READ / INFERRED / PROPOSED (spec §1.4)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)

    m: int = Field(8, ge=1, le=4096, description=(
        "Calibration instances, one solver response each. READ (3rd-party: m = 8)."))
    a_star: float = Field(0.3, ge=0.0, le=1.0, description=(
        "Target solver accuracy, the peak of Q. READ (3rd-party: a* = 0.3)."))
    sigma: float = Field(0.2, gt=0.0, description=(
        "Width of the Gaussian difficulty reward Q. PROPOSED (the spec's 0.2; not recovered)."))
    admit_low: float = Field(0.0, ge=0.0, le=1.0, description=(
        "Admission needs â strictly above this. READ (0 < â)."))
    admit_high: float = Field(1.0, ge=0.0, le=1.0, description=(
        "Admission needs â strictly below this. READ (â < 1)."))
    difficulty: float = Field(0.5, ge=0.0, le=1.0, description=(
        "Difficulty at which calibration instances are sampled. INFERRED (the spec reads the "
        "paper as using the candidate's default or mid difficulty)."))
    temperature: float = Field(1.0, ge=0.0, description=(
        "Solver sampling temperature for the one answer per instance. INFERRED (the solver role's "
        "rollout temperature, 1.0 in rl/config.py)."))
    max_new_tokens: int = Field(32, ge=1, description=(
        "Generation budget per calibration answer. INFERRED (rl/config.py's default; use the "
        "solver's own budget in training)."))
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description=(
        "Two-sided level of the Wilson score interval on â. PROPOSED (the spec gives none)."))
    zero_reward_outside_band: bool = Field(True, description=(
        "Report a difficulty reward of 0 when â is outside the admission band. INFERRED (spec "
        "§1.5: R_gen = 0 when â ∈ {0, 1})."))
    search_band: tuple[float, float] = Field((0.125, 0.5), description=(
        "``find_difficulty``'s default target band of pass rates: 1 to 4 correct of m = 8, "
        "around a* = 0.3, where Q ≥ 0.6. PROPOSED."))
    search_grid: tuple[float, ...] = Field((0.0, 0.25, 0.5, 0.75, 1.0), min_length=1, description=(
        "Difficulties ``find_difficulty`` tries. PROPOSED."))

    @model_validator(mode="after")
    def _check(self) -> CalibrationConfig:
        if self.admit_low >= self.admit_high:
            raise ValueError(f"admit_low {self.admit_low} must be below admit_high {self.admit_high}")
        low, high = self.search_band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"search_band must satisfy 0 <= low <= high <= 1, got {self.search_band}")
        for d in self.search_grid:
            check_difficulty(d)
        return self


@dataclass(frozen=True)
class Calibration:
    """The result of one calibration.

    accuracy: â. ci_low / ci_high: its Wilson score interval. n: instances answered.
    admitted_band: admit_low < â < admit_high (the spec's 0 < â < 1). difficulty_reward: Q(â),
    or 0 outside the band when ``zero_reward_outside_band``. q: Q(â) regardless of the band.
    passed: each instance's verdict, in seed order; seeds: the instance seeds.
    """

    accuracy: float
    ci_low: float
    ci_high: float
    n: int
    admitted_band: bool
    difficulty_reward: float
    q: float
    difficulty: float
    passed: tuple[bool, ...] = ()
    seeds: tuple[int, ...] = ()

    def to_json(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
            "admitted_band": self.admitted_band,
            "difficulty_reward": self.difficulty_reward,
            "q": self.q,
            "difficulty": self.difficulty,
        }


@dataclass(frozen=True)
class DifficultySearch:
    """``find_difficulty``'s answer: the chosen difficulty, its calibration, its distance to the
    band (0 inside it), and the calibration at every difficulty tried."""

    difficulty: float
    calibration: Calibration
    distance: float
    band: tuple[float, float]
    table: dict[float, Calibration]


def difficulty_reward(a: float, a_star: float = 0.3, sigma: float = 0.2) -> float:
    """Q(a) = exp(−(a − a*)² / (2σ²)): 1 at a = a*, falling off as a Gaussian."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return math.exp(-((a - a_star) ** 2) / (2.0 * sigma**2))


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for k successes in n trials (see the module docstring)."""
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need n >= 1 and 0 <= k <= n, got k={k}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = k / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def calibration_seeds(m: int, seed: int = 0) -> list[int]:
    """The ``m`` instance seeds of a calibration run: odd (eval-split parity), from a stable hash
    of ("calibrate", seed, i), so they differ from both training and evaluation seeds."""
    return [((stable_hash("calibrate", seed, i) >> 2) << 1) | 1 for i in range(m)]


def _prompt_of(instance: Any) -> str:
    prompt = instance.get("prompt") if isinstance(instance, Mapping) else getattr(instance, "prompt", None)
    if not isinstance(prompt, str):
        raise TypeError(f"a sampled instance must have a string prompt, got {type(prompt).__name__}")
    return prompt


def _passed(verdict: Any) -> bool:
    if isinstance(verdict, bool):
        return verdict
    if hasattr(verdict, "passed"):
        return bool(verdict.passed)
    if isinstance(verdict, Mapping) and "passed" in verdict:
        return bool(verdict["passed"])
    if isinstance(verdict, (int, float)):
        return float(verdict) == 1.0
    raise TypeError(f"grade returned {type(verdict).__name__}; expected a Score, bool or number")


def calibrate(
    env_like: EnvLike,
    backend: GenerationBackend,
    m: int | None = None,
    difficulty: float | None = None,
    seed: int = 0,
    cfg: CalibrationConfig | None = None,
) -> Calibration:
    """Calibrate ``env_like`` against the solver behind ``backend``.

    Samples ``m`` instances (default ``cfg.m``) at ``difficulty`` (default ``cfg.difficulty``) on
    ``calibration_seeds(m, seed)``, asks the backend for one answer each in one batch at
    ``cfg.temperature`` (the sampling seed also derives from ``seed`` and the difficulty), grades
    each answer, and reports â, its Wilson interval, admission and the difficulty reward.
    """
    cfg = cfg or CalibrationConfig()
    m = cfg.m if m is None else int(m)
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    difficulty = check_difficulty(cfg.difficulty if difficulty is None else difficulty)
    seeds = calibration_seeds(m, seed)
    instances = [env_like.sample(s, difficulty) for s in seeds]
    prompts = [_prompt_of(inst) for inst in instances]
    params = SamplingParams(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        seed=stable_hash("calibrate-sample", seed, difficulty) % 2**62,
    )
    out = backend.generate(prompts, params)
    if len(out.texts) != m:
        raise ValueError(f"backend returned {len(out.texts)} completions for {m} prompts")
    passed = tuple(_passed(env_like.grade(inst, text)) for inst, text in zip(instances, out.texts))
    k = sum(passed)
    accuracy = k / m
    low, high = wilson_interval(k, m, cfg.confidence)
    admitted = cfg.admit_low < accuracy < cfg.admit_high
    q = difficulty_reward(accuracy, cfg.a_star, cfg.sigma)
    reward = q if admitted or not cfg.zero_reward_outside_band else 0.0
    return Calibration(
        accuracy=accuracy,
        ci_low=low,
        ci_high=high,
        n=m,
        admitted_band=admitted,
        difficulty_reward=reward,
        q=q,
        difficulty=difficulty,
        passed=passed,
        seeds=tuple(seeds),
    )


def band_distance(accuracy: float, band: tuple[float, float]) -> float:
    """How far a pass rate lies outside the closed band [low, high]; 0 inside it."""
    low, high = band
    return max(low - accuracy, accuracy - high, 0.0)


def find_difficulty(
    env_like: EnvLike,
    backend: GenerationBackend,
    band: tuple[float, float] | None = None,
    grid: Sequence[float] | None = None,
    m: int | None = None,
    seed: int = 0,
    cfg: CalibrationConfig | None = None,
) -> DifficultySearch:
    """Calibrate at each difficulty of ``grid`` and pick the one whose pass rate is nearest the
    closed ``band`` (distance 0 inside it); ties go to the lower difficulty.

    Defaults: ``band = cfg.search_band``, ``grid = cfg.search_grid``, ``m = cfg.m``. Every
    difficulty uses the same instance seeds, so the rows differ only by difficulty.
    """
    cfg = cfg or CalibrationConfig()
    band = tuple(cfg.search_band if band is None else band)
    if len(band) != 2 or not 0.0 <= band[0] <= band[1] <= 1.0:
        raise ValueError(f"band must be (low, high) with 0 <= low <= high <= 1, got {band}")
    grid = cfg.search_grid if grid is None else grid
    points = sorted({check_difficulty(d) for d in grid})
    if not points:
        raise ValueError("grid must hold at least one difficulty")
    table = {d: calibrate(env_like, backend, m=m, difficulty=d, seed=seed, cfg=cfg) for d in points}
    best = min(points, key=lambda d: (band_distance(table[d].accuracy, band), d))
    return DifficultySearch(
        difficulty=best,
        calibration=table[best],
        distance=band_distance(table[best].accuracy, band),
        band=(float(band[0]), float(band[1])),
        table=table,
    )
