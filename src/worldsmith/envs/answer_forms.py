"""Answer forms, judged on the trusted side: when two answers are the same value written another
way, and answers of a reference's shape drawn at random.

Both serve the admission gates (``synth.gates``, L5) and the red team (``audit.redteam``), which
must tell an answer a sound scorer may accept from one it must reject without a second, trusted
scorer:

- ``same_value(a, b)``: ``"00"``, ``"+5"`` and ``"05"`` are ``"0"``, ``"5"`` and ``"5"`` written
  another way; ``"[1, 2]"``, ``"1,2"`` and ``"1 2"`` are one list; ``"2/4"`` is ``"1/2"``. A scorer
  that accepts them accepts the right answer, so they are never counted as attacks. Other notations
  stay different answers, as safety.md row 16 asks: ``"42.0"``, ``"4.2e1"``, ``"0x2A"``, a quoted
  ``"42"`` and a one-item list ``"[42]"`` are not ``"42"``.
- ``random_answers(reference, rng)``: answers of the reference's shape (the same number of items,
  items of the same kind, digits of the same count) drawn at random, never the reference and never
  a reordering of its items. A correct verifier of a problem with many valid answers (a planted
  subset sum, a colouring, a satisfying assignment) accepts such an answer only by chance, which
  for a planted problem is tiny; a verifier that checks only the answer's shape (its length, its
  range, its count) accepts almost all of them.

Standard library only, and linear scans (no regular expressions).
"""

from __future__ import annotations

import math
import random

from worldsmith.envs.answers import MAX_INT_DIGITS, parse_int, split_items

#: Draws tried per kind before ``random_answers`` gives the kind up (every draw was the reference
#: or a reordering of it).
MAX_DRAWS = 20


def _loose_int(text: str) -> int | None:
    """A decimal integer with an optional ``+``/``-`` sign and leading zeros allowed, else None."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not (body.isascii() and body.isdigit()):
        return None
    digits = body.lstrip("0") or "0"
    if len(digits) > MAX_INT_DIGITS:
        return None
    value = int(digits)
    return -value if text[:1] == "-" else value


def _rational(text: str) -> tuple[int, int] | None:
    """An integer or ``p/q`` (integer p, positive integer q) as a reduced (numerator, denominator)."""
    if text.count("/") > 1:
        return None
    if "/" not in text:
        value = _loose_int(text)
        return None if value is None else (value, 1)
    num, den = (_loose_int(part.strip()) for part in text.split("/"))
    if num is None or den is None or den <= 0 or text.split("/")[1].strip()[:1] in "+-":
        return None
    g = math.gcd(num, den)
    return num // g, den // g


def _item_key(text: str) -> tuple:
    number = _rational(text)
    return ("number", *number) if number is not None else ("text", " ".join(text.split()))


def value_key(text: str) -> tuple:
    """A key that two answers share exactly when they are the same value written another way.

    >>> value_key("007") == value_key("+7") == value_key("7"), value_key("7.0") == value_key("7")
    (True, False)
    >>> value_key("[3, 1]") == value_key("3,1") == value_key("3 1"), value_key("1,3") == value_key("3,1")
    (True, False)
    """
    s = " ".join(text.split())
    bracketed = s[:1] in "[(" and s[-1:] in "])"
    items = split_items(s)
    if items is None:
        return ("text", s)
    if len(items) == 1 and not bracketed:
        return ("item", _item_key(items[0]))
    return ("list", tuple(_item_key(x) for x in items))


def same_value(answer: str, reference: str) -> bool:
    """Whether ``answer`` is ``reference`` written another way (see ``value_key``)."""
    return value_key(answer) == value_key(reference)


def _layout(reference: str) -> tuple[str, str, str]:
    """(opening bracket, separator, closing bracket) of a list answer, to write draws the same way."""
    s = reference.strip()
    opening, closing = ("", "")
    if s[:1] in "[(" and s[-1:] in "])":
        opening, closing, s = s[0], s[-1], s[1:-1]
    if "," in s:
        sep = ", " if ", " in s else ","
    else:
        sep = " "
    return opening, sep, closing


def _draw(make, reference_items: list[str], rng: random.Random) -> list[str] | None:
    """A draw from ``make(rng)`` whose items are not the reference's in any order, or None."""
    ordered = sorted(map(_item_key, reference_items))
    for _ in range(MAX_DRAWS):
        items = make(rng)
        if sorted(map(_item_key, items)) != ordered:
            return items
    return None


def _list_kinds(items: list[str]) -> dict:
    """Generators of random item lists of the reference's length, by kind."""
    n = len(items)
    kinds = {}
    numbers = [_loose_int(x) for x in items]
    integers = all(v is not None for v in numbers)
    if integers:
        low, high = min(numbers), max(numbers)  # type: ignore[type-var]
        if high - low + 1 > n:  # a draw of n distinct values that is not a permutation of the range
            kinds["range draw"] = lambda rng: [str(v) for v in rng.sample(range(low, high + 1), n)]
        if any(v < 0 for v in numbers) and all(v != 0 for v in numbers):  # type: ignore[operator]
            kinds["random signs"] = lambda rng: [str(abs(v) if rng.random() < 0.5 else -abs(v)) for v in numbers]
    distinct = sorted(set(items))
    # resampling a set-like answer keeps a subset of it (a near miss, perhaps valid), so integers
    # are resampled only where a range draw cannot be made (colours: few values, many positions)
    if len(distinct) > 1 and "range draw" not in kinds:
        kinds["resampled items"] = lambda rng: [rng.choice(distinct) for _ in range(n)]
    return kinds


def _scalar_kind(text: str):
    """A generator of one random scalar of the reference's kind, or None."""
    number = parse_int(text)  # canonical digits only: "0110" is a token, not a number
    if number is not None:
        width = len(str(abs(number)))
        sign = "-" if number < 0 else ""
        low = 0 if width == 1 else 10 ** (width - 1)
        return "random number", lambda rng: sign + str(rng.randrange(low, 10 ** width))
    fraction = text.split("/")
    if len(fraction) == 2 and _rational(text) is not None:
        num, den = fraction[0].strip(), fraction[1].strip()
        sign = "-" if num.startswith("-") else ""
        width = len(num.lstrip("+-"))
        low = 0 if width == 1 else 10 ** (width - 1)
        return "random numerator", lambda rng: f"{sign}{rng.randrange(low, 10 ** width)}/{den}"
    alphabet = sorted(set(text))
    if len(alphabet) > 1:
        return "random characters", lambda rng: "".join(rng.choice(alphabet) for _ in text)
    return None


def random_answers(reference: str, rng: random.Random) -> dict[str, str]:
    """One answer per applicable kind, of the reference's shape and drawn at random with ``rng``.

    Kinds: a list of integers gets ``range draw`` (distinct integers from the reference's range:
    a random set of positions or variables) and ``random signs`` when it holds negative numbers
    (each item's sign drawn at random: a random signed-literal assignment); any other list, or one
    whose range is too narrow for a draw (colours), gets ``resampled items`` (each item drawn from
    the reference's own items: a random colouring). A scalar gets ``random number`` (the same count of digits and
    sign), ``random numerator`` (for ``p/q``) or ``random characters`` (the same length, over the
    reference's own characters, for a token such as ``0110``). No answer is the reference, the
    same value written another way, or a reordering of the reference's items; a kind that cannot
    produce one (``"1,1,1"`` has nothing to resample) is left out.

    >>> sorted(random_answers("4, 9, 2", random.Random(0))), sorted(random_answers("1,2,1,3", random.Random(0)))
    (['range draw'], ['resampled items'])
    """
    s = reference.strip()
    items = split_items(s) if s else None
    out: dict[str, str] = {}
    if items is not None and len(items) > 1:
        opening, sep, closing = _layout(s)
        for kind, make in _list_kinds(items).items():
            drawn = _draw(make, items, rng)
            if drawn is not None and not same_value(sep.join(drawn), s):
                out[kind] = opening + sep.join(drawn) + closing
        return out
    found = _scalar_kind(s) if s and " " not in s else None
    if found is not None:
        kind, make = found
        for _ in range(MAX_DRAWS):
            answer = make(rng)
            if not same_value(answer, s):
                out[kind] = answer
                break
    return out


__all__ = ["random_answers", "same_value", "value_key"]
