"""Reasoning steps of a response: where each step is in the text and in the tokens.

A response reasons in steps before its final answer. Two layouts are recognised:

- **markers**: ``Step 1: ...``, ``Step 2: ...`` (case-insensitive, ``:`` ``.`` or ``)`` after the
  number, each marker at the start of a line); a step runs from its marker to the next one. The
  step's text is what follows the marker, stripped.
- **lines** (the fallback when no marker is present): every non-empty line is a step. This is the
  layout the lab's base policy writes (``"7\\n21\\n16\\n<answer>16</answer>"``).

Only the body before the final answer counts: the text before the last ``<answer>`` tag (or the
last ``\\boxed{`` when there is no tag). A response with no final answer has all its text as body.

Token spans: ``token_spans(ids, decode, steps)`` maps each step's character span to the token
indices ``[start, end)`` that cover it, from the decoded prefixes of ``ids``, so the spans agree
with the text the grader and the process reward model saw. Pure Python, no torch.

>>> [s.text for s in split_steps("Step 1: 3+4 = 7\\nStep 2: 7*3 = 21\\n<answer>21</answer>")]
['3+4 = 7', '7*3 = 21']
>>> [s.text for s in split_steps("7\\n\\n21\\n<answer>21</answer>")]
['7', '21']
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: A step marker at the start of a line: "Step 3:", "step 3.", "STEP 3)".
STEP_MARKER = re.compile(r"^[ \t]*step[ \t]*(\d+)[ \t]*[:.)]", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Step:
    """One step: its text (marker removed, stripped) and the character span ``[start, end)`` of
    the whole step in the response (marker included, trailing newline included when present)."""

    text: str
    start: int
    end: int


def answer_start(response: str) -> int:
    """Where the final answer begins: the last ``<answer>`` tag, else the last ``\\boxed{``, else
    the end of the response."""
    for marker in ("<answer>", "\\boxed{"):
        at = response.rfind(marker)
        if at != -1:
            return at
    return len(response)


def split_steps(response: str, layout: str = "auto") -> list[Step]:
    """The steps of ``response`` before its final answer.

    ``layout``: ``"auto"`` (markers when the body has one, else lines), ``"markers"`` or
    ``"lines"``. Empty steps (a marker with nothing after it, blank lines) are kept out.
    """
    if layout not in ("auto", "markers", "lines"):
        raise ValueError(f"layout must be auto, markers or lines, got {layout!r}")
    if not isinstance(response, str):
        return []
    body_end = answer_start(response)
    body = response[:body_end]
    markers = list(STEP_MARKER.finditer(body))
    if layout == "markers" or (layout == "auto" and markers):
        steps = []
        for i, m in enumerate(markers):
            end = markers[i + 1].start() if i + 1 < len(markers) else body_end
            text = body[m.end() : end].strip()
            if text:
                steps.append(Step(text, m.start(), end))
        return steps
    steps, start = [], 0
    for line in body.splitlines(keepends=True):
        end = start + len(line)
        if line.strip():
            steps.append(Step(line.strip(), start, end))
        start = end
    return steps


def step_texts(response: str, layout: str = "auto") -> list[str]:
    """The texts of ``split_steps(response, layout)``."""
    return [s.text for s in split_steps(response, layout)]


def char_ends(ids: Sequence[int], decode: Callable[[Sequence[int]], str]) -> list[int]:
    """``ends[k]`` = the length of the text of ``ids[: k + 1]``: token k covers the characters
    ``[ends[k - 1], ends[k])``. Computed from decoded prefixes, so multi-byte pieces and tokens
    that decode to nothing (special tokens) land where the full decode puts them."""
    return [len(decode(ids[: k + 1])) for k in range(len(ids))]


def token_index(ends: Sequence[int], char: int) -> int:
    """The index of the token that holds character ``char`` (``len(ends)`` when past the end)."""
    return bisect.bisect_right(ends, char)


def token_spans(ids: Sequence[int], decode: Callable[[Sequence[int]], str],
                steps: Sequence[Step]) -> list[tuple[int, int]]:
    """Token spans ``[start, end)`` of ``steps`` in the completion ``ids`` (``decode`` as the
    policy's text was decoded). A step starts at the token holding its first character and ends
    after the token holding its last one."""
    ends = char_ends(ids, decode)
    return [(token_index(ends, s.start), min(len(ids), token_index(ends, s.end - 1) + 1)) for s in steps]


def token_at(ids: Sequence[int], decode: Callable[[Sequence[int]], str], char: int) -> int:
    """The index of the token holding character ``char`` of ``decode(ids)``, by bisection over
    decoded prefixes (O(log n) decodes; ``len(ids)`` when ``char`` is past the end). Equal to
    ``token_index(char_ends(ids, decode), char)`` whenever prefix lengths grow with the prefix."""
    low, high = 0, len(ids)
    while low < high:
        mid = (low + high) // 2
        if len(decode(ids[: mid + 1])) > char:
            high = mid
        else:
            low = mid + 1
    return low
