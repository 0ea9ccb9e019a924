"""math_equal: exact equality through math-verify, bounded, from any thread."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

pytest.importorskip("math_verify")

from worldsmith.envs import mathcheck  # noqa: E402
from worldsmith.envs.mathcheck import math_equal, plain_number, power_nesting  # noqa: E402

QUICK_S = 10.0  # generous bound for one call that must be refused early or cut by the timeout


@pytest.fixture(scope="module", autouse=True)
def warm_worker():
    """Start the worker once, so its one-off start-up is not counted in the timings below."""
    assert math_equal("\\frac{1}{2}", "1/2") == (True, "equal")
    yield


@pytest.mark.parametrize(
    "answer, reference",
    [
        ("3/4", "\\frac{3}{4}"),
        ("0.75", "3/4"),
        ("\\frac{3}{4}", "0.75"),
        ("6/8", "3/4"),
        ("\\dfrac{6}{8}", "3/4"),
        ("\\boxed{\\frac34}", "3/4"),
        ("$\\frac{3}{4}$", "3/4"),
        ("-\\frac{1}{2}", "-0.5"),
        ("\\sqrt{1764}", "42"),
        ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),
        ("x = 42", "42"),
        ("x^2+2x+1", "(x+1)^2"),
        ("\\{2, 1\\}", "\\{1, 2\\}"),
        ("42.0", "42"),
    ],
)
def test_equal_values_pass(answer, reference):
    same, why = math_equal(answer, reference)
    assert same, why


@pytest.mark.parametrize(
    "answer, reference",
    [
        ("42.4", "42"),
        ("41.9999", "42"),
        ("41.9999999999", "42"),
        ("nan", "42"),
        ("inf", "42"),
        ("\\infty", "42"),
        ("1e309", "42"),
        ("0x2A", "42"),
        ("42e0", "42"),
        ("042", "42"),
        ("42.0000001 + 0", "42"),
        ("\\frac{420000001}{10000000}", "42"),
        ("4.20000001 \\times 10", "42"),
        ("42\\%", "42"),
        ("0.333333", "1/3"),
        ("\\frac{333333}{1000000}", "1/3"),
        ("3.14159265358979323846", "\\pi"),
        ("\\pi + 10^{-60}", "\\pi"),
    ],
)
def test_tolerance_abuse_fails(answer, reference):
    same, why = math_equal(answer, reference)
    assert not same, why


@pytest.mark.parametrize(
    "answer",
    [
        "41 or 42",
        "42 or 41",
        "41, 42",
        "42, 42",
        "\\{41, 42\\}",
        "[41, 42]",
        "41 = 42",
        "x = 41 = 42",
        "41 \\lor 42",
        "41 \\text{ or } 42",
        "42 43",
        "21 21",
        "40 2",
        "4242",
        "\\boxed{41}\\boxed{42}",
        "42 \\pm 1",
        "x < 43",
        " ".join(str(i) for i in range(1, 101)),
        ", ".join(str(i) for i in range(1, 101)),
    ],
)
def test_sprays_fail(answer):
    same, why = math_equal(answer, "42")
    assert not same, why


@pytest.mark.parametrize(
    "answer",
    [
        "9^{9^{9^9}}",
        "9^{9^{9^{9^{9}}}}",
        "9^9^9^9^9",
        "10^{10^{10}}",
        "100000!",
        "2^{2^{64}}",
        "{" * 100_000 + "}" * 100_000,
        "{" * 30 + "1" + "}" * 30,
        "1" * 10_000_000,
        "\\boxed{1}" * 3,
        "(" * 240 + "1" + ")" * 240,
    ],
    ids=lambda a: a[:20] if len(a) < 40 else f"{a[:10]}...({len(a)} chars)",
)
def test_denial_of_service_is_refused_quickly(answer):
    started = time.perf_counter()
    same, why = math_equal(answer, "42")
    assert not same, why
    assert time.perf_counter() - started < QUICK_S


def test_cheap_checks_never_reach_the_worker():
    for text in ("{" * 100_000, "1" * 10_000_000, "9^{9^{9^{9^9}}}", "\\boxed{1}\\boxed{2}"):
        started = time.perf_counter()
        same, why = math_equal(text, "42")
        assert not same and time.perf_counter() - started < 0.5, why
    assert "longer than" in math_equal("1" * 501, "42")[1]
    assert "brackets" in math_equal("{" * 21 + "}" * 21, "42")[1]
    assert "unbalanced" in math_equal("{{1}", "42")[1]
    assert "'^'" in math_equal("2^{2^{2^{2^2}}}", "42")[1]
    assert "\\boxed" in math_equal("\\boxed{42}\\boxed{42}", "42")[1]


def test_not_text_is_refused():
    assert math_equal(None, "1")[0] is False  # type: ignore[arg-type]
    assert math_equal("1", 1)[0] is False  # type: ignore[arg-type]
    assert math_equal("", "1")[0] is False
    assert math_equal("\\frac{1}{2}", "0.5", timeout_s=0)[0] is False


def test_helpers():
    from fractions import Fraction

    assert plain_number("0.75") == Fraction(3, 4)
    assert plain_number("-12/8") == Fraction(-3, 2)
    assert plain_number("1e3") is plain_number("042") is plain_number(".5") is plain_number("0x2A") is None
    assert plain_number("1_000") is None and plain_number("4 2") is None
    assert power_nesting("x^2 + y^2") == 1
    assert power_nesting("9^{9^{9^9}}") == 3
    assert power_nesting("9^9^9") == 2
    assert power_nesting("e^{x^{2}}") == 2


def test_from_a_thread():
    results = []
    workers = [
        threading.Thread(target=lambda a=a, r=r: results.append(math_equal(a, r)))
        for a, r in [("\\frac{1}{2}", "0.5"), ("\\frac{1}{3}", "0.5"), ("\\sqrt{4}", "2"), ("x", "y")] * 3
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert sorted(same for same, _ in results) == [False] * 6 + [True] * 6


def test_timeout_off_the_main_thread_kills_and_restarts_the_worker():
    pid_before = mathcheck._worker_pid()
    assert pid_before is not None
    out = []

    def hang():
        started = time.perf_counter()
        out.append((mathcheck._request_for_tests("sleep", 60, 0.5), time.perf_counter() - started))

    thread = threading.Thread(target=hang)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    (same, why), elapsed = out[0]
    assert not same and why.startswith("timeout")
    assert elapsed < 5.0
    assert mathcheck._worker_pid() is None  # killed; the next call starts a fresh one
    assert math_equal("\\frac{2}{4}", "0.5") == (True, "equal")
    assert mathcheck._worker_pid() not in (None, pid_before)


def test_a_crash_of_the_worker_gives_a_reason_not_an_exception():
    math_equal("\\frac{2}{4}", "0.5")
    pid = mathcheck._worker_pid()
    assert pid is not None
    out = []
    thread = threading.Thread(target=lambda: out.append(mathcheck._request_for_tests("sleep", 60, 30)))
    thread.start()
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    thread.join(30)
    same, why = out[0]
    assert not same and "crashed" in why
    # and a worker that died between calls is replaced silently
    math_equal("\\frac{2}{4}", "0.5")
    os.kill(mathcheck._worker_pid(), signal.SIGKILL)
    time.sleep(0.2)
    assert math_equal("\\frac{2}{4}", "0.5") == (True, "equal")


def test_in_process_fallback_when_no_worker_can_start(monkeypatch):
    class NoChildren:
        def __init__(self):
            raise AssertionError("daemonic processes are not allowed to have children")

    monkeypatch.setattr(mathcheck, "_Worker", NoChildren)
    monkeypatch.setattr(mathcheck, "_POOL", mathcheck._Pool())
    assert math_equal("\\frac{1}{2}", "0.5") == (True, "equal")  # main thread: inline, timed
    assert math_equal("9^{9^{9^9}}", "42")[0] is False
    out = []
    thread = threading.Thread(target=lambda: out.append(math_equal("\\frac{1}{2}", "0.5")))
    thread.start()
    thread.join(30)
    assert out[0][0] is False and "could not start" in out[0][1]


def test_quiet_cheap_and_cleaned_up_at_exit():
    """In a fresh interpreter: plain numbers never start the worker or import math-verify, the
    worker prints nothing, and it is gone once the interpreter exits."""
    code = textwrap.dedent(
        """
        import sys
        from worldsmith.envs import mathcheck
        assert mathcheck.math_equal("0.75", "3/4") == (True, "equal")
        assert mathcheck._worker_pid() is None and "math_verify" not in sys.modules
        for a, r in [("\\\\frac{1}{2}", "0.5"), ("\\\\undefined{", "1"), ("x^{", "2"), ("\\\\frac{}{}", "1"),
                     ("9^{9^{9^9}}", "1"), ("\\\\sqrt{-1}", "i"), ("1/0", "1")]:
            mathcheck.math_equal(a, r)
        print(mathcheck._worker_pid())
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    lines = out.stdout.split()
    assert len(lines) == 1, out.stdout
    pid = int(lines[0])
    deadline = time.time() + 10
    while time.time() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), "the worker outlived its parent"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_fraction_sum_accepts_equal_fractions_and_latex_but_nothing_looser():
    from fractions import Fraction

    from worldsmith import envs

    env = envs.get("fraction_sum")
    inst = env.sample(3, 0.5)
    value = Fraction(inst.reference)
    p, q = value.numerator, value.denominator
    for good in (f"{p}/{q}", f"{2 * p}/{2 * q}", f"\\frac{{{p}}}{{{q}}}", f"\\dfrac{{{3 * p}}}{{{3 * q}}}"):
        assert env.grade(inst, env.wrap(good)).passed, good
    assert env.grade(inst, f"so the sum is \\boxed{{\\frac{{{p}}}{{{q}}}}}").passed
    half = Fraction(p, q) / 2
    for bad in (
        f"{float(value)}",
        f"\\frac{{{half.numerator}}}{{{half.denominator}}} + \\frac{{{half.numerator}}}{{{half.denominator}}}",
        f"\\frac{{{p}}}{{{q}}} + 0",
        f"\\frac{{{p}.0}}{{{q}}}",
        f"{p}/{q} or {p + 1}/{q}",
        f"\\frac{{{p + 1}}}{{{q}}}",
    ):
        assert not env.grade(inst, env.wrap(bad)).passed, bad
