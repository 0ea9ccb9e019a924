"""Exact mathematical equality of two answers, bounded in size and time, callable from any thread.

``math_equal(answer, reference)`` decides whether two final answers denote the same mathematical
object. The decision is strict:

- cheap bounded checks run first, in this process: text longer than ``MAX_CHARS``, brackets nested
  deeper than ``MAX_BRACE_DEPTH``, exponents nested deeper than ``MAX_POWER_NESTING`` or more than
  one ``\\boxed`` is rejected before any parser sees it;
- plain numbers (canonical integers, ``p/q``, decimals such as ``0.75``) are compared exactly as
  fractions, without math-verify: ``41.9999`` is not ``42`` and ``0.75`` is ``3/4``;
- anything else goes to math-verify in a worker process, with decimals turned into exact rationals
  first (so no rounding tolerance), a bound on the size of the numbers involved, and a wall-clock
  timeout. Bare letters in an answer to a purely numeric reference (``nan``, ``inf``, ``1e309``,
  ``0x2A``), a comma, percent sign or relation the reference does not have, numbers with leading
  zeros (``042``) and numbers side by side (``21 21``, which LaTeX reads as a sum) are rejected.

math-verify's own timeouts use ``signal.alarm``, which only works on the main thread, so the
comparison runs in one long-lived worker process per parent process, started lazily with the
``spawn`` method and shared by all threads under a lock. On a timeout the worker is killed and a
fresh one is started on the next call. A worker crash gives ``(False, reason)``, never an exception.

As with every ``spawn`` child, the worker imports the parent's ``__main__`` module, so scripts that
call ``math_equal`` at import time need the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import atexit
import importlib.util
import math
import os
import threading
import time
from fractions import Fraction

from worldsmith.envs.answers import parse_fraction, parse_int

MAX_CHARS = 500
MAX_BRACE_DEPTH = 20
MAX_POWER_NESTING = 3
#: Largest number of decimal digits an intermediate number may have (estimated before evaluation).
MAX_NUMBER_DIGITS = 100_000
#: Largest argument of a factorial-like function, and largest numeric exponent of a symbol.
MAX_FACTORIAL_ARG = 10_000
STARTUP_TIMEOUT_S = 120.0
#: Address space of the worker process, bytes; a blow-up fails inside the worker instead of
#: exhausting the machine.
WORKER_MEMORY_BYTES = 4 << 30

_RELATION_CHARS = "=<>"
_RELATION_COMMANDS = frozenset(
    {"le", "leq", "ge", "geq", "lt", "gt", "ne", "neq", "approx", "equiv", "sim", "simeq", "cong", "leqslant",
     "geqslant", "ll", "gg", "to", "rightarrow", "Rightarrow", "implies", "iff", "in", "subset", "subseteq"}
)


def math_equal(answer: str, reference: str, timeout_s: float = 2.0) -> tuple[bool, str]:
    """Whether ``answer`` and ``reference`` are exactly equal, and why.

    Never raises. Returns ``(False, "timeout ...")`` when math-verify takes longer than
    ``timeout_s`` seconds (measured from the moment the worker receives the pair; the one-off start
    of the worker is not counted).

    >>> math_equal("0.75", "3/4")
    (True, 'equal')
    >>> math_equal("41.9999", "42")
    (False, 'not equal')
    """
    if not isinstance(answer, str) or not isinstance(reference, str):
        return False, "answer and reference must be text"
    answer, reference = _unwrap_dollars(answer.strip()), _unwrap_dollars(reference.strip())
    for label, text in (("answer", answer), ("reference", reference)):
        why = _reject(text)
        if why:
            return False, f"{label} {why}"
    exact_answer, exact_reference = plain_number(answer), plain_number(reference)
    if exact_answer is not None and exact_reference is not None:
        return (True, "equal") if exact_answer == exact_reference else (False, "not equal")
    answer, why = _policy(answer, reference)
    if answer is None:
        return False, why
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        return False, f"timeout_s must be a positive number, got {timeout_s!r}"
    return _POOL.compare(answer, reference, float(timeout_s))


# --- cheap checks, run in this process ---------------------------------------------------------


def plain_number(text: str) -> Fraction | None:
    """The exact value of a canonical integer, ``p/q`` or decimal (``-0.75``); None otherwise.

    >>> plain_number("6/8"), plain_number("-0.5"), plain_number("1e3"), plain_number("042")
    (Fraction(3, 4), Fraction(-1, 2), None, None)
    """
    value = parse_fraction(text)
    if value is not None:
        return value
    s = text.strip()
    negative = s.startswith("-")
    whole, dot, tail = (s[1:] if negative else s).partition(".")
    if not dot or not tail or not (tail.isascii() and tail.isdigit()) or len(tail) > MAX_CHARS:
        return None
    integer = parse_int(whole)
    if integer is None or whole.startswith("-"):
        return None
    value = integer + Fraction(int(tail), 10 ** len(tail))
    return -value if negative else value


def _unwrap_dollars(text: str) -> str:
    if len(text) >= 2 and text.startswith("$") and text.endswith("$"):
        return text.strip("$").strip()
    return text


def _reject(text: str) -> str | None:
    """Why ``text`` is refused before any parsing, or None. Linear time, bounded work."""
    if not text:
        return "is empty"
    if len(text) > MAX_CHARS:
        return f"is longer than {MAX_CHARS} characters"
    if text.count("\\boxed") > 1:
        return "holds more than one \\boxed"
    if "$" in text:
        return "holds a '$' inside"
    braces = nesting = 0  # braces must balance; (, [ and { together must not nest too deeply
    for ch in text:
        if ch in "([{":
            nesting += 1
            if nesting > MAX_BRACE_DEPTH:
                return f"nests brackets deeper than {MAX_BRACE_DEPTH}"
            if ch == "{":
                braces += 1
        elif ch in ")]}":
            nesting = max(0, nesting - 1)
            if ch == "}":
                braces -= 1
                if braces < 0:
                    return "has unbalanced braces"
    if braces:
        return "has unbalanced braces"
    if power_nesting(text) > MAX_POWER_NESTING:
        return f"nests '^' deeper than {MAX_POWER_NESTING}"
    return None


def power_nesting(text: str) -> int:
    """How deeply ``^`` exponents nest in ``text``: ``x^2`` is 1, ``9^{9^9}`` and ``9^9^9`` are 2.

    Braced groups and parentheses opened inside an exponent count as part of it.
    """
    deepest = 0
    stack: list[bool] = []  # one entry per open group: was it opened as an exponent?
    chain = 0  # exponents stacked without braces, as in 9^9^9
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "^":
            level = sum(stack) + chain + 1
            deepest = max(deepest, level)
            j = i + 1
            while j < n and text[j] == " ":
                j += 1
            if j < n and text[j] in "{(":
                stack.append(True)
                chain = 0
                i = j + 1
                continue
            # an unbraced exponent: one character or one \command
            if j < n and text[j] == "\\":
                j += 1
                while j < n and text[j].isalpha():
                    j += 1
            else:
                j += 1
            k = j
            while k < n and text[k] == " ":
                k += 1
            chain = chain + 1 if k < n and text[k] == "^" else 0
            i = j
            continue
        if ch in "{(":
            stack.append(False)
        elif ch in "})" and stack:
            stack.pop()
        chain = 0 if ch not in " " else chain
        i += 1
    return deepest


def _bare_letters(text: str) -> bool:
    """Whether ``text`` holds a latin letter that is not part of a ``\\command`` name."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 1
            while i < n and text[i].isalpha():
                i += 1
            continue
        if ch.isascii() and ch.isalpha():
            return True
        i += 1
    return False


def _commands(text: str) -> set[str]:
    """The names of the ``\\commands`` in ``text``."""
    names, i, n = set(), 0, len(text)
    while i < n:
        if text[i] == "\\":
            j = i + 1
            while j < n and text[j].isalpha():
                j += 1
            names.add(text[i + 1 : j])
            i = max(j, i + 2)
        else:
            i += 1
    return names


def _has_relation(text: str) -> bool:
    return any(ch in text for ch in _RELATION_CHARS) or bool(_commands(text) & _RELATION_COMMANDS)


def _number_layout(text: str) -> str | None:
    """Why the numbers in ``text`` are written in a refused way, or None: ``042`` (a leading zero)
    and ``40 2`` (digits side by side, which the LaTeX parser would read as one expression)."""
    previous = ""  # the last character that is not whitespace
    gap = False
    for i, ch in enumerate(text):
        if ch.isspace():
            gap = True
            continue
        if ch.isdigit():
            if gap and previous.isdigit():
                return "has numbers side by side"
            starts_number = gap or not (previous.isdigit() or previous == ".")
            if ch == "0" and starts_number and text[i + 1 : i + 2].isdigit():
                return "has a number with a leading zero"
        previous, gap = ch, False
    return None


def _policy(answer: str, reference: str) -> tuple[str | None, str]:
    """Refuse forms that would let an answer pass by the checker's leniency, not by being right."""
    layout = _number_layout(answer)
    if layout:
        return None, f"answer {layout}"
    if "," in answer and "," not in reference:
        return None, "answer is a list where one value is expected"
    if "%" in answer and "%" not in reference:
        return None, "answer has a percent sign the reference does not have"
    if _has_relation(answer) and not _has_relation(reference):
        # "x = 5" for "5" is fine; "4 = 5", "x = 4 = 5" or "x < 5" are not
        lhs, eq, rhs = answer.partition("=")
        name = lhs.strip()
        if not (eq and len(name) == 1 and name.isascii() and name.isalpha() and not _has_relation(rhs)):
            return None, "answer states a relation where a value is expected"
        answer = rhs.strip()
        if not answer:
            return None, "answer is empty after '='"
    if _bare_letters(answer) and not _bare_letters(reference):
        return None, "answer has letters but the reference is a number"
    return answer, "ok"


# --- the worker process ------------------------------------------------------------------------


class _Checker:
    """math-verify with exact numbers and size bounds. Lives in the worker process."""

    def __init__(self) -> None:
        import math_verify
        import sympy

        self.sympy = sympy
        self.parse_fn = math_verify.parse
        self.verify_fn = math_verify.verify
        self.config = [math_verify.LatexExtractionConfig()]

    def parse(self, text: str) -> list:
        found = self.parse_fn(
            f"${text}$", extraction_config=self.config, fallback_mode="no_fallback", parsing_timeout=None
        )
        sp = self.sympy
        return [x for x in found if isinstance(x, (sp.Basic, sp.MatrixBase))]

    def exact(self, expr):
        """``expr`` with every decimal replaced by the exact rational it spells."""
        sp = self.sympy
        floats = expr.atoms(sp.Float)
        if not floats:
            return expr
        return expr.xreplace({f: sp.Rational(str(f)) for f in floats})

    def too_big(self, expr) -> bool:
        sp = self.sympy
        for node in sp.preorder_traversal(expr):
            try:
                if isinstance(node, sp.Pow):
                    base, exponent = node.args
                    if exponent.free_symbols:
                        continue
                    size = abs(complex(exponent.evalf(20)))
                    if base.free_symbols:
                        if size > MAX_FACTORIAL_ARG:
                            return True
                        continue
                    magnitude = abs(complex(base.evalf(20)))
                    if magnitude in (0.0, 1.0):
                        continue
                    digits = size * abs(math.log10(magnitude))
                    if not digits <= MAX_NUMBER_DIGITS:  # also catches nan and inf
                        return True
                elif isinstance(node, sp.Function) and type(node).__name__ in _FACTORIAL_LIKE:
                    for arg in node.args:
                        if not arg.free_symbols and not abs(complex(arg.evalf(20))) <= MAX_FACTORIAL_ARG:
                            return True
            except (TypeError, ValueError, OverflowError, AttributeError):
                return True
        return False

    def provably_different(self, gold, pred) -> bool:
        """Catch approximations that pass a numeric comparison: pi vs pi + 10^-60."""
        sp = self.sympy
        pairs = [(gold, pred)]
        if isinstance(gold, sp.Tuple) and isinstance(pred, sp.Tuple) and len(gold) == len(pred):
            pairs = list(zip(gold.args, pred.args))
        for g, p in pairs:
            if not (isinstance(g, sp.Expr) and isinstance(p, sp.Expr)):
                continue
            if g.free_symbols or p.free_symbols:
                continue
            if (g - p).is_zero is False:
                return True
        return False

    def compare(self, answer: str, reference: str) -> tuple[bool, str]:
        gold = self.parse(reference)
        if not gold:
            return False, "reference did not parse"
        pred = self.parse(answer)
        if not pred:
            return False, "answer did not parse"
        gold, pred = gold[0], pred[0]
        if self.too_big(gold) or self.too_big(pred):
            return False, "numbers too large to compare"
        gold, pred = self.exact(gold), self.exact(pred)
        same = self.verify_fn(gold, pred, numeric_precision=100, strict=True, timeout_seconds=None)
        if same and self.provably_different(gold, pred):
            same = False
        return (True, "equal") if same else (False, "not equal")


_FACTORIAL_LIKE = frozenset({"factorial", "factorial2", "subfactorial", "binomial", "gamma", "RisingFactorial",
                             "FallingFactorial", "fibonacci", "lucas", "bell", "catalan", "bernoulli", "harmonic"})


def _silence() -> None:
    """Send the worker's output nowhere: no warnings, logs or tracebacks reach the user's terminal."""
    import logging
    import sys
    import warnings

    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
    sys.stdout = sys.stderr = open(os.devnull, "w")  # lives as long as the worker
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")


def _limit_resources() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent; it stops us at exit
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = WORKER_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(WORKER_MEMORY_BYTES, hard)
        if soft == resource.RLIM_INFINITY or soft > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def _serve(conn) -> None:
    """The worker's main loop: receive ``(kind, payload)``, answer ``(bool, reason)``."""
    _silence()
    _limit_resources()
    try:
        checker = _Checker()
    except BaseException as exc:  # reported to the parent, which never raises
        conn.send(("error", f"math-verify failed to load: {type(exc).__name__}: {str(exc)[:200]}"))
        return
    conn.send(("ready", ""))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        kind, payload = message
        try:
            if kind == "compare":
                result = checker.compare(*payload)
            elif kind == "sleep":  # a test hook: a comparison that never finishes in time
                time.sleep(payload)
                result = (False, "slept")
            else:
                result = (False, f"unknown request {kind!r}")
        except BaseException as exc:  # MemoryError, RecursionError, sympy internals
            result = (False, f"math-verify raised {type(exc).__name__}")
        try:
            conn.send(result)
        except (OSError, ValueError):
            return


# --- the parent side ---------------------------------------------------------------------------


class _Worker:
    def __init__(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_serve, args=(child,), name="worldsmith-mathcheck", daemon=True)
        self.owner = os.getpid()
        try:
            self.proc.start()
        except BaseException:
            self.conn.close()
            raise
        finally:
            child.close()
        if not self.conn.poll(STARTUP_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"math worker did not start within {STARTUP_TIMEOUT_S:.0f}s")
        kind, detail = self.conn.recv()
        if kind != "ready":
            self.stop()
            raise ImportError(detail)

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.proc.is_alive()

    def stop(self, graceful: bool = False) -> None:
        if self.owner != os.getpid():
            return  # inherited through fork: the parent owns it
        try:
            if graceful and self.proc.is_alive():
                self.conn.send(None)
                self.proc.join(1.0)
        except (OSError, ValueError):
            pass
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5.0)
        try:
            self.conn.close()
        except OSError:
            pass


class _Pool:
    """At most one worker per parent process, shared by every thread under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.worker: _Worker | None = None
        self.unavailable: str | None = None
        self.inline: _Checker | None = None
        self.restarts = 0

    def _reset_after_fork(self) -> None:
        self.lock = threading.Lock()
        self.worker = None  # the parent's worker is the parent's; a child starts its own
        self.inline = None

    def compare(self, answer: str, reference: str, timeout_s: float) -> tuple[bool, str]:
        return self.request("compare", (answer, reference), timeout_s)

    def request(self, kind: str, payload: object, timeout_s: float) -> tuple[bool, str]:
        with self.lock:
            if self.unavailable:
                return False, self.unavailable
            try:
                worker = self._worker()
            except ImportError as exc:
                self.unavailable = f"math-verify is unavailable: {str(exc)[:200]}"
                return False, self.unavailable
            except Exception as exc:  # e.g. a daemonic parent may not have children
                if kind == "compare" and threading.current_thread() is threading.main_thread():
                    return self._inline(payload, timeout_s)  # type: ignore[arg-type]
                return False, f"math worker could not start: {type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
            try:
                worker.conn.send((kind, payload))
                ready = worker.conn.poll(timeout_s)
                result = worker.conn.recv() if ready else None
            except (EOFError, OSError, ValueError):
                code = worker.proc.exitcode
                self._discard()
                return False, f"math worker crashed (exit code {code})"
            if result is None:
                self._discard()
                return False, f"timeout after {timeout_s:g}s"
            same, why = result
            return bool(same), str(why)

    def _worker(self) -> _Worker:
        if self.worker is not None and not self.worker.alive():
            self._discard()
        if self.worker is None:
            if importlib.util.find_spec("math_verify") is None:
                raise ImportError("math-verify is not installed (pip install math-verify)")
            self.worker = _Worker()
            self.restarts += 1
        return self.worker

    def _discard(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop()

    def _inline(self, payload: tuple[str, str], timeout_s: float) -> tuple[bool, str]:
        """Compare in this process on the main thread, bounded by an interval timer."""
        import logging
        import signal

        if not hasattr(signal, "setitimer"):
            return False, "math worker could not start and no timer is available"
        if self.inline is None:
            quiet = logging.getLogger("math_verify")
            if quiet.level == logging.NOTSET:
                quiet.setLevel(logging.CRITICAL)
            self.inline = _Checker()

        def expire(signum, frame):
            raise _Expired

        previous = signal.signal(signal.SIGALRM, expire)
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            try:
                return self.inline.compare(*payload)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Expired:
            return False, f"timeout after {timeout_s:g}s"
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            return False, f"math-verify raised {type(exc).__name__}"
        finally:
            signal.signal(signal.SIGALRM, previous)

    def shutdown(self) -> None:
        acquired = self.lock.acquire(timeout=2.0)
        try:
            worker, self.worker = self.worker, None
            if worker is not None:
                worker.stop(graceful=True)
        finally:
            if acquired:
                self.lock.release()


class _Expired(BaseException):
    """Raised by the interval timer; a BaseException so math-verify's ``except Exception`` lets it pass."""


_POOL = _Pool()
atexit.register(_POOL.shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOL._reset_after_fork)


def _request_for_tests(kind: str, payload: object, timeout_s: float) -> tuple[bool, str]:
    """Send a raw request to the worker (``("sleep", seconds)`` simulates a hung comparison)."""
    return _POOL.request(kind, payload, timeout_s)


def _worker_pid() -> int | None:
    worker = _POOL.worker
    return worker.proc.pid if worker is not None and worker.alive() else None
