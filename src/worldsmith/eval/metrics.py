"""pass@k, maj@k and evaluation summaries per environment and difficulty. Pure Python.

A problem is one (env, difficulty, seed) with an optional greedy outcome and n sampled outcomes:

>>> round(pass_at_k(n=4, c=1, k=2), 6)
0.5
>>> maj_at_k(["7", "8", "8"], [True, False, False], k=3)
0.0
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n - c, k) / C(n, k).

    Computed as the product 1 - prod_{i = n - c + 1}^{n} (1 - k / i), which never forms the large
    binomials. Needs 0 <= c <= n and 1 <= k <= n.
    """
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every k-subset contains a pass
        return 1.0
    fail_all = 1.0
    for i in range(n - c + 1, n + 1):
        fail_all *= 1.0 - k / i
    return 1.0 - fail_all


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> float:
    """1.0 if the majority answer among the first k samples is correct, else 0.0.

    Answers are compared as exact strings (normalise them first). None answers (nothing extracted)
    do not vote; with no votes the result is 0.0. Ties go to the answer that occurs first. The
    correctness of the winner is that of its first occurrence.
    """
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} correctness flags")
    if not 1 <= k <= len(answers):
        raise ValueError(f"need 1 <= k <= {len(answers)}, got k={k}")
    votes = Counter(a for a in answers[:k] if a is not None)
    if not votes:
        return 0.0
    top = max(votes.values())
    winner = next(a for a in answers[:k] if a is not None and votes[a] == top)
    return float(bool(correct[answers.index(winner)]))


@dataclass(frozen=True)
class EvalRecord:
    """The outcomes on one problem.

    greedy_passed: the greedy response's verdict, None when not run. passed: the verdicts of the
    sampled responses, in sampling order. answers: their extracted answers (None when nothing was
    extracted), same length as passed, or empty when not recorded (then maj@k is not computed).
    steps_valid: whether each sampled response's every step passed the environment's step check
    (``step_validity``), same length as passed, or empty where the environment checks no steps.
    """

    env: str
    difficulty: float
    seed: int
    greedy_passed: bool | None = None
    passed: tuple[bool, ...] = ()
    answers: tuple[str | None, ...] = ()
    steps_valid: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "passed", tuple(bool(p) for p in self.passed))
        object.__setattr__(self, "answers", tuple(self.answers))
        object.__setattr__(self, "steps_valid", tuple(bool(v) for v in self.steps_valid))
        if self.answers and len(self.answers) != len(self.passed):
            raise ValueError(f"{len(self.answers)} answers but {len(self.passed)} sampled verdicts")

    @classmethod
    def of(cls, record: EvalRecord | Mapping) -> EvalRecord:
        """An EvalRecord from itself or from a mapping with its fields (other keys are ignored)."""
        if isinstance(record, EvalRecord):
            return record
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _stats(records: list[EvalRecord], k: int | None) -> dict:
    """Problem-weighted means; a metric is None when no problem has what it needs."""
    sampled = [r for r in records if r.passed]
    return {
        "problems": len(records),
        "greedy_accuracy": _mean([float(r.greedy_passed) for r in records if r.greedy_passed is not None]),
        "pass@1": _mean([sum(r.passed) / len(r.passed) for r in sampled]),
        "pass@k": _mean([pass_at_k(len(r.passed), sum(r.passed), k) for r in sampled]) if k else None,
        "maj@k": _mean([maj_at_k(r.answers, r.passed, k) for r in sampled if r.answers]) if k else None,
        "step_validity": _mean([sum(r.steps_valid) / len(r.steps_valid) for r in records if r.steps_valid]),
    }


def summarise(records: Iterable[EvalRecord | Mapping], k: int | None = None) -> dict:
    """Aggregate problem records overall, per environment, and per (environment, difficulty).

    k defaults to the smallest number of samples of any problem that has samples; an explicit k
    larger than some problem's sample count raises ValueError. Every problem weighs the same.
    Returns ``{"k", "overall", "per_env": {env: stats}, "per_env_difficulty": {env: {difficulty:
    stats}}}`` where stats is ``{"problems", "greedy_accuracy", "pass@1", "pass@k", "maj@k",
    "step_validity"}`` (a
    metric is None where no problem provides what it needs; pass@1 uses all n samples as c / n).
    """
    records = [EvalRecord.of(r) for r in records]
    counts = [len(r.passed) for r in records if r.passed]
    if k is None:
        k = min(counts) if counts else None
    elif counts and not 1 <= k <= min(counts):
        raise ValueError(f"k={k} needs at least k samples per problem; the fewest is {min(counts)}")
    by_env: dict[str, list[EvalRecord]] = {}
    for r in records:
        by_env.setdefault(r.env, []).append(r)
    per_env_difficulty = {}
    for env, rs in sorted(by_env.items()):
        by_difficulty: dict[float, list[EvalRecord]] = {}
        for r in rs:
            by_difficulty.setdefault(float(r.difficulty), []).append(r)
        per_env_difficulty[env] = {d: _stats(group, k) for d, group in sorted(by_difficulty.items())}
    return {
        "k": k,
        "overall": _stats(records, k),
        "per_env": {env: _stats(rs, k) for env, rs in sorted(by_env.items())},
        "per_env_difficulty": per_env_difficulty,
    }


def step_validity(env, instance, response: str) -> bool | None:
    """Whether every step of ``response`` passes ``env.check_step`` in order: its steps before the
    final answer (``worldsmith.steps.split_steps``: "Step k:" markers, else non-empty lines), at
    least one of them. None when the environment checks no steps (or is not an ``Environment``,
    e.g. a sandboxed program)."""
    from worldsmith.steps import step_texts

    has_steps = getattr(env, "has_steps", None)
    if has_steps is None or not has_steps():
        return None
    steps = step_texts(response)
    if not steps:
        return False
    data = instance.data
    try:
        return all(env.check_step(data, steps[:k], step) for k, step in enumerate(steps))
    except Exception:
        return False
