"""validate_rewards, safe_grade and safe_grade_batch: nothing a grader does can put a non-finite reward into training."""

import threading
import time
from fractions import Fraction

import pytest
import torch

from worldsmith.envs.contract import Score
from worldsmith.rl.reward_check import (
    INVALID_KINDS,
    GradeTimeout,
    abandoned_graders,
    safe_grade,
    safe_grade_batch,
    validate_rewards,
)


def test_every_kind_of_invalid_reward_is_replaced_and_counted():
    raw = [float("nan"), float("inf"), None, "x", 2.0, -1, 0.5, Exception("grader broke")]
    rewards, m = validate_rewards(raw)
    assert rewards.dtype == torch.float32 and rewards.shape == (8,)
    assert rewards.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0]
    assert m["invalid_nan"] == 1 and m["invalid_inf"] == 1 and m["invalid_none"] == 1
    assert m["invalid_non_numeric"] == 1 and m["invalid_out_of_range"] == 2 and m["invalid_exception"] == 1
    assert m["invalid_bool"] == 0 and m["invalid_timeout"] == 0
    assert m["invalid"] == 7 and m["invalid_fraction"] == pytest.approx(7 / 8, abs=1e-12)
    assert m["n"] == 8 and m["mean"] == pytest.approx(0.5 / 8, abs=1e-7)
    assert set(m) == {"n", "mean", "invalid", "invalid_fraction"} | {f"invalid_{k}" for k in INVALID_KINDS}


def test_failure_value_and_bounds():
    rewards, m = validate_rewards([float("-inf"), 3, 1.5, True], failure_value=-1.0, low=-2.0, high=2.0)
    assert rewards.tolist() == [-1.0, -1.0, 1.5, -1.0]
    assert m["invalid_inf"] == 1 and m["invalid_out_of_range"] == 1 and m["invalid_bool"] == 1
    with pytest.raises(ValueError):
        validate_rewards([1.0], failure_value=float("nan"))
    with pytest.raises(ValueError):
        validate_rewards([1.0], low=1.0, high=0.0)
    with pytest.raises(ValueError):
        validate_rewards([1.0], high=float("inf"))


def test_scores_timeouts_and_other_numbers():
    raw = [Score(1.0, True, "correct"), Score(float("nan"), False, "bad"), GradeTimeout("slow"), 1, Fraction(1, 4),
           torch.tensor(0.5), [1.0]]
    rewards, m = validate_rewards(raw)
    assert rewards.tolist() == [1.0, 0.0, 0.0, 1.0, 0.25, 0.0, 0.0]
    assert m["invalid_nan"] == 1 and m["invalid_timeout"] == 1 and m["invalid_exception"] == 0
    assert m["invalid_non_numeric"] == 2


def test_empty_batch():
    rewards, m = validate_rewards([])
    assert rewards.shape == (0,) and m["n"] == 0 and m["invalid_fraction"] == 0.0 and m["mean"] == 0.0


class Grader:
    def __init__(self, fn):
        self.grade = fn


def test_safe_grade_passes_results_through():
    score = Score(1.0, True, "correct")
    assert safe_grade(Grader(lambda inst, resp: score), {}, "r", timeout_s=5) is score
    assert safe_grade(lambda inst, resp: 0.25, {}, "r", timeout_s=5) == 0.25  # a plain function works too


def test_safe_grade_turns_a_raise_into_a_value():
    def boom(inst, resp):
        raise ZeroDivisionError("no")

    result = safe_grade(Grader(boom), {}, "r", timeout_s=5)
    assert isinstance(result, ZeroDivisionError)
    assert validate_rewards([result])[1]["invalid_exception"] == 1

    def leaves(inst, resp):
        raise SystemExit(3)

    assert isinstance(safe_grade(leaves, {}, "r", timeout_s=5), RuntimeError)


def test_safe_grade_turns_a_hang_into_a_timeout_and_counts_the_abandoned_thread():
    release = threading.Event()

    def hang(inst, resp):
        release.wait(30)
        return 1.0

    before = abandoned_graders()
    started = time.perf_counter()
    result = safe_grade(Grader(hang), {}, "r", timeout_s=0.2)
    elapsed = time.perf_counter() - started
    release.set()  # let the abandoned thread finish
    assert isinstance(result, GradeTimeout) and isinstance(result, TimeoutError)
    assert 0.15 <= elapsed < 5.0
    assert abandoned_graders() == before + 1
    rewards, m = validate_rewards([result])
    assert rewards.tolist() == [0.0] and m["invalid_timeout"] == 1
    with pytest.raises(ValueError):
        safe_grade(Grader(hang), {}, "r", timeout_s=0)


def test_safe_grade_batch_grades_in_order_in_one_thread():
    threads = set()

    def grade(inst, resp):
        threads.add(threading.get_ident())
        return inst["k"] * 0.1 if resp == "r" else Score(1.0, True, "ok")

    jobs = [(grade, {"k": k}, "r" if k % 2 else "s") for k in range(50)]
    results = safe_grade_batch(jobs, timeout_s=5)
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert len(results) == 50
    assert results == [safe_grade(grade, inst, resp, timeout_s=5) for _, inst, resp in jobs]
    assert results[1] == pytest.approx(0.1) and results[2].passed
    assert safe_grade_batch([], timeout_s=5) == []
    with pytest.raises(ValueError):
        safe_grade_batch(jobs, timeout_s=0)
    with pytest.raises(ValueError):
        safe_grade_batch(jobs, timeout_s=1, deadline_s=0)


def test_safe_grade_batch_captures_each_raise_and_keeps_going():
    def boom(inst, resp):
        raise ZeroDivisionError("no")

    def leaves(inst, resp):
        raise SystemExit(3)

    ok = Grader(lambda inst, resp: 0.5)
    results = safe_grade_batch([(ok, {}, "a"), (Grader(boom), {}, "b"), (leaves, {}, "c"), (ok, {}, "d")], timeout_s=5)
    assert results[0] == 0.5 and results[3] == 0.5
    assert isinstance(results[1], ZeroDivisionError) and isinstance(results[2], RuntimeError)
    rewards, m = validate_rewards(results)
    assert rewards.tolist() == [0.5, 0.0, 0.0, 0.5] and m["invalid_exception"] == 2


def test_safe_grade_batch_times_out_a_hanging_item_and_grades_the_rest():
    release = threading.Event()

    def grade(inst, resp):
        if resp == "hang":
            release.wait(30)
        return 1.0

    jobs = [(grade, {}, r) for r in ("a", "b", "hang", "c", "d")]
    before = abandoned_graders()
    started = time.perf_counter()
    results = safe_grade_batch(jobs, timeout_s=0.2)
    elapsed = time.perf_counter() - started
    release.set()
    assert 0.15 <= elapsed < 5.0
    assert results[:2] == [1.0, 1.0] and results[3:] == [1.0, 1.0]
    assert isinstance(results[2], GradeTimeout)
    assert abandoned_graders() == before + 1
    rewards, m = validate_rewards(results)
    assert rewards.tolist() == [1.0, 1.0, 0.0, 1.0, 1.0] and m["invalid_timeout"] == 1


def test_safe_grade_batch_timeout_is_per_item_and_the_deadline_bounds_the_batch():
    def slow(inst, resp):
        time.sleep(0.05)
        return 1.0

    jobs = [(slow, {}, str(i)) for i in range(6)]
    assert safe_grade_batch(jobs, timeout_s=0.2) == [1.0] * 6  # 0.3 s in all, each item well within 0.2 s

    release = threading.Event()

    def hang(inst, resp):
        release.wait(30)
        return 1.0

    before = abandoned_graders()
    started = time.perf_counter()
    results = safe_grade_batch(jobs[:2] + [(hang, {}, "h")] + jobs[2:], timeout_s=10, deadline_s=0.4)
    elapsed = time.perf_counter() - started
    release.set()
    assert 0.35 <= elapsed < 5.0
    assert results[:2] == [1.0, 1.0]
    assert all(isinstance(r, GradeTimeout) for r in results[2:])
    assert abandoned_graders() == before + 1
    assert validate_rewards(results)[1]["invalid_timeout"] == 5
