"""Strict answer extraction and parsing, shared by every environment.

Rules (each one closes a reward hack seen in the wild):

- The final answer is the text inside the **last** ``<answer>...</answer>`` of the response. For
  math environments (``allow_boxed``), a response without an answer tag may instead end its
  reasoning with ``\\boxed{...}``; the last box is taken, and a final answer holding more than one
  box is a spray and fails.
- One answer, anchored: parsers match the whole answer (after trimming outer whitespace), never a
  substring. "5 or 6", "4242" for "42" and "the answer is 42" all fail.
- No tolerance unless an environment declares one: integers are decimal digits with an optional
  sign; ``42.0``, ``0x2A``, ``1e3``, ``nan`` and ``inf`` are not integers.
- Size bounded: responses longer than ``MAX_RESPONSE_CHARS`` and answers longer than an
  environment's ``max_answer_chars`` fail before any parsing; brace nesting is bounded.
- Nothing is ever evaluated as code. Scanning uses ``str.rfind`` and linear loops, not regular
  expressions that could backtrack.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing and fractions stay out of the import: sandboxed programs import this in every run
if TYPE_CHECKING:
    from fractions import Fraction

MAX_RESPONSE_CHARS = 200_000
MAX_ANSWER_CHARS = 2_000
MAX_BRACE_DEPTH = 50
MAX_INT_DIGITS = 60

OPEN, CLOSE = "<answer>", "</answer>"
BOX = "\\boxed{"


def extract_answer(
    response: object, *, allow_boxed: bool = False, max_answer_chars: int = MAX_ANSWER_CHARS
) -> tuple[str | None, str]:
    """Return ``(answer, reason)``; ``answer`` is None when there is no acceptable final answer.

    >>> extract_answer("think... <answer> 42 </answer>")
    ('42', 'ok')
    >>> extract_answer("the answer is 42")[0] is None
    True
    """
    if not isinstance(response, str):
        return None, f"response is {type(response).__name__}, not text"
    if len(response) > MAX_RESPONSE_CHARS:
        return None, f"response longer than {MAX_RESPONSE_CHARS} characters"
    end = response.rfind(CLOSE)
    if end != -1:
        start = response.rfind(OPEN, 0, end)
        if start == -1:
            return None, "closing </answer> without an opening tag"
        answer = response[start + len(OPEN) : end].strip()
    elif allow_boxed:
        found = last_boxed(response)
        if found is None:
            return None, "no <answer>...</answer> or \\boxed{...} final answer"
        answer = found.strip()
    else:
        return None, "no <answer>...</answer> final answer"
    if not answer:
        return None, "empty final answer"
    if len(answer) > max_answer_chars:
        return None, f"final answer longer than {max_answer_chars} characters"
    if OPEN in answer:
        return None, "nested <answer> tag"
    if allow_boxed:
        if answer.count(BOX) > 1:
            return None, "more than one \\boxed{} in the final answer"
        if answer.startswith(BOX):
            inner = _boxed_at(answer, 0)
            if inner is None or len(inner) + len(BOX) + 1 != len(answer):
                return None, "malformed \\boxed{} in the final answer"
            answer = inner.strip()
            if not answer:
                return None, "empty \\boxed{}"
    return answer, "ok"


def last_boxed(text: str) -> str | None:
    """The content of the last balanced ``\\boxed{...}`` in ``text``, or None."""
    start = text.rfind(BOX)
    if start == -1:
        return None
    return _boxed_at(text, start)


def _boxed_at(text: str, start: int) -> str | None:
    depth = 0
    i = start + len(BOX) - 1
    for j in range(i, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
            if depth > MAX_BRACE_DEPTH:
                return None
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


# --- strict parsers: each returns None for anything that is not exactly the expected form -------


def parse_int(text: str) -> int | None:
    """A canonical decimal integer: optional minus sign, no leading zeros, nothing else.

    >>> parse_int("-17"), parse_int("42.0"), parse_int("0x2A"), parse_int("042"), parse_int("4 2")
    (-17, None, None, None, None)
    """
    s = text.strip()
    body = s[1:] if s[:1] == "-" else s
    if not body or len(body) > MAX_INT_DIGITS or not (body.isascii() and body.isdigit()):
        return None
    if (body[0] == "0" and len(body) > 1) or s == "-0":
        return None
    return int(s)


def parse_fraction(text: str) -> Fraction | None:
    """An integer or ``p/q`` with integer p and positive integer q (not necessarily reduced)."""
    from fractions import Fraction

    s = text.strip()
    if s.count("/") > 1:
        return None
    if "/" not in s:
        value = parse_int(s)
        return None if value is None else Fraction(value)
    num, den = s.split("/")
    p, q = parse_int(num), parse_int(den)
    if p is None or q is None or q <= 0:
        return None
    return Fraction(p, q)


def split_items(text: str, max_items: int = 500) -> list[str] | None:
    """Split a list answer on commas (or, when there are none, on whitespace).

    Empty items (``"a,,b"``) make the whole answer malformed. Surrounding brackets are allowed.
    """
    s = text.strip()
    if s[:1] in "[(" and s[-1:] in "])":
        s = s[1:-1].strip()
    if not s:
        return None
    parts = s.split(",") if "," in s else s.split()
    items = [p.strip() for p in parts]
    if any(not p for p in items) or len(items) > max_items:
        return None
    return items


def parse_int_list(text: str, max_items: int = 500) -> list[int] | None:
    """A list of integers in the form ``split_items`` accepts; None if any item is not an int."""
    items = split_items(text, max_items)
    if items is None:
        return None
    values = [parse_int(p) for p in items]
    return None if any(v is None for v in values) else values  # type: ignore[return-value]


def parse_word_list(text: str, vocabulary: set[str], max_items: int = 500) -> list[str] | None:
    """A list of tokens drawn from ``vocabulary`` (compared exactly, case-sensitive)."""
    items = split_items(text, max_items)
    if items is None or any(p not in vocabulary for p in items):
        return None
    return items
