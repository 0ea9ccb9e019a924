"""Reward hygiene: nothing a grader returns (or raises) can put a non-finite number into training.

``safe_grade`` calls a grader and turns a raise into an Exception value and a hang into a
``GradeTimeout`` value; ``safe_grade_batch`` does the same for a whole batch in one worker thread
(a new thread only after a hang). ``validate_rewards`` turns a list of such raw results into a float tensor,
replacing every invalid entry by ``failure_value`` and counting it by kind.

Limitation of the timeout: Python cannot kill a thread. A grader that hangs is abandoned, not
stopped: its daemon thread keeps running (and holding whatever CPU, memory or locks it holds) until
it returns, if ever, and its late result is discarded. ``abandoned_graders()`` counts them so that a
leak shows up in the logs. Graders that may hang for good belong in a subprocess sandbox.
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from worldsmith.envs.contract import Score

#: Kinds of invalid raw reward, in the order they are checked; each has a metric ``invalid_<kind>``.
INVALID_KINDS = ("exception", "timeout", "none", "bool", "non_numeric", "nan", "inf", "out_of_range")


class GradeTimeout(TimeoutError):
    """The value ``safe_grade`` returns for a grader that did not finish in time."""


_F32_MAX = torch.finfo(torch.float32).max
_abandoned = 0
_abandoned_lock = threading.Lock()


def abandoned_graders() -> int:
    """How many grader threads this process has abandoned after a timeout (they may still run)."""
    return _abandoned


def safe_grade(env: object, instance: object, response: object, timeout_s: float = 10.0) -> object:
    """``env.grade(instance, response)`` (or ``env(instance, response)`` for a plain function),
    run in a worker thread for at most ``timeout_s`` seconds.

    Returns what the grader returned (normally a ``Score``), the Exception it raised, or a
    ``GradeTimeout`` when it did not finish in time (the thread is then abandoned; see the module
    docstring). Never raises for anything the grader does.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
    grade = getattr(env, "grade", env)
    box: dict[str, object] = {}

    def work() -> None:
        box["value"] = _outcome(grade, instance, response)

    worker = threading.Thread(target=work, name="worldsmith-grade", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        _count_abandoned()
        return GradeTimeout(f"grader did not finish within {timeout_s}s (thread abandoned)")
    return box.get("value")


def _outcome(grade, instance: object, response: object) -> object:
    """What the grader returned, or the Exception it raised (a non-Exception raise, such as
    SystemExit, becomes a RuntimeError: the caller always gets a value)."""
    try:
        return grade(instance, response)
    except Exception as exc:
        return exc
    except BaseException as exc:
        return RuntimeError(f"grader raised {type(exc).__name__}")


def _count_abandoned() -> None:
    global _abandoned
    with _abandoned_lock:
        _abandoned += 1


class _BatchState:
    """What the waiting caller and the current batch worker share (guarded by ``cond``)."""

    def __init__(self, n: int) -> None:
        self.cond = threading.Condition()
        self.results: list[object] = [None] * n
        self.done = 0  # items 0..done-1 have a result; item ``done`` is the one being graded
        self.started = time.monotonic()  # when item ``done`` started
        self.generation = 0  # bumped whenever the current worker is abandoned


def safe_grade_batch(
    jobs: Iterable[tuple[object, object, object]], timeout_s: float = 10.0, deadline_s: float | None = None
) -> list[object]:
    """``safe_grade`` for a batch of ``(env, instance, response)`` jobs, in order, in ONE worker
    thread (starting a thread per call costs far more than a typical grader).

    Each item gets the same treatment as ``safe_grade(env, instance, response, timeout_s)``: its
    result, the Exception it raised, or a ``GradeTimeout`` when that one grader call ran longer than
    ``timeout_s``. After a hang the worker is abandoned (and counted by ``abandoned_graders()``) and a
    fresh worker grades the remaining items, so one bad item costs at most ``timeout_s``.
    ``deadline_s`` (optional) bounds the whole batch: items without a result when it passes become
    ``GradeTimeout`` too. Never raises for anything a grader does.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
    if deadline_s is not None and not deadline_s > 0:
        raise ValueError(f"deadline_s must be > 0 or None, got {deadline_s!r}")
    jobs = list(jobs)
    n = len(jobs)
    if n == 0:
        return []
    state = _BatchState(n)
    end = time.monotonic() + deadline_s if deadline_s is not None else math.inf

    def work(generation: int, start: int) -> None:
        for i in range(start, n):
            env, instance, response = jobs[i]
            value = _outcome(getattr(env, "grade", env), instance, response)
            with state.cond:
                if state.generation != generation:  # abandoned while grading: the result is discarded
                    return
                state.results[i] = value
                state.done = i + 1
                state.started = time.monotonic()
                if i + 1 == n:  # the caller re-checks the running item's clock whenever its wait ends
                    state.cond.notify()

    def launch(start: int) -> None:
        threading.Thread(target=work, args=(state.generation, start), name="worldsmith-grade-batch",
                         daemon=True).start()

    with state.cond:
        state.started = time.monotonic()
        launch(0)
        while state.done < n:
            now = time.monotonic()
            if now >= end:
                state.generation += 1
                _count_abandoned()
                for i in range(state.done, n):
                    state.results[i] = GradeTimeout(f"not graded within the batch deadline of {deadline_s}s")
                break
            item_end = state.started + timeout_s
            if now >= item_end:
                state.generation += 1
                _count_abandoned()
                state.results[state.done] = GradeTimeout(
                    f"grader did not finish within {timeout_s}s (thread abandoned)")
                state.done += 1
                state.started = now
                if state.done < n:
                    launch(state.done)
                continue
            state.cond.wait(min(item_end, end) - now)
        return list(state.results)


def _classify(raw: object, low: float, high: float) -> tuple[float | None, str | None]:
    """(value, None) for a valid reward, (None, kind) for an invalid one. Scores give their value."""
    if isinstance(raw, Score):
        raw = raw.value
    if isinstance(raw, GradeTimeout):
        return None, "timeout"
    if isinstance(raw, BaseException):
        return None, "exception"
    if raw is None:
        return None, "none"
    if isinstance(raw, bool):
        return None, "bool"
    if not isinstance(raw, numbers.Real):
        return None, "non_numeric"
    value = float(raw)
    if math.isnan(value):
        return None, "nan"
    if math.isinf(value):
        return None, "inf"
    if not low <= value <= high:
        return None, "out_of_range"
    return value, None


def validate_rewards(
    raw: Sequence[object], failure_value: float = 0.0, low: float = 0.0, high: float = 1.0
) -> tuple[Tensor, dict[str, float]]:
    """Raw grader results -> rewards (B,) float32, every entry finite.

    Accepted: real numbers (ints, floats, numpy scalars) in [low, high], and ``Score`` objects (their
    ``value`` is checked the same way). Replaced by ``failure_value`` and counted by kind: Exception
    instances (a grader that raised; ``GradeTimeout`` counts as "timeout"), None, bools (a grader
    must return a number; True is not silently 1.0), anything else that is not a real number
    (strings, tensors, ...), NaN, +-inf, and values outside [low, high].

    Metrics (floats): n, mean (of the returned rewards), invalid, invalid_fraction, and
    invalid_<kind> for every kind in INVALID_KINDS (0 when absent, so the keys are stable).
    """
    if not (all(abs(x) <= _F32_MAX for x in (failure_value, low, high)) and low <= high):
        raise ValueError(f"need finite float32 failure_value and low <= high, got {failure_value}, [{low}, {high}]")
    counts = dict.fromkeys(INVALID_KINDS, 0)
    values = []
    for item in raw:
        value, kind = _classify(item, low, high)
        if kind is not None:
            counts[kind] += 1
            value = failure_value
        values.append(value)
    rewards = torch.tensor(values, dtype=torch.float32).reshape(len(values))  # (B,)
    invalid = sum(counts.values())
    metrics = {
        "n": float(len(values)),
        "mean": float(rewards.mean()) if values else 0.0,
        "invalid": float(invalid),
        "invalid_fraction": invalid / len(values) if values else 0.0,
    }
    metrics.update({f"invalid_{kind}": float(c) for kind, c in counts.items()})
    return rewards, metrics
