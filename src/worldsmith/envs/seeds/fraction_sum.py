"""Sum of a few positive fractions, answered as a fraction (equality oracle, a math environment).

Difficulty scales the number of terms (2 to 6) and the largest denominator (6 to 60); numerators are
below their denominators and terms are not necessarily reduced (``2/4`` may appear).
The reference is the reduced sum, ``p/q`` or an integer. Any exactly equal value passes: ``6/8`` for
``3/4``, or a single LaTeX fraction such as ``\\frac{3}{4}`` (compared by ``math_equal``). Decimals,
expressions (``1/2 + 1/4``) and anything else fail: the task is to compute the sum as a fraction.
Steps: the running sum after adding each term from the second on, as reduced fractions, so the last
step is the answer: for ``1/2 + 1/3 + 1/6`` the steps are ``["5/6", "1"]``.
"""

from __future__ import annotations

import random
from fractions import Fraction

from worldsmith.envs.answers import parse_fraction
from worldsmith.envs.contract import Environment, lerp_int, prompt_of
from worldsmith.envs.registry import register

_LATEX_FRACTIONS = ("\\frac", "\\dfrac", "\\tfrac")


def _text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _single_latex_fraction(answer: str) -> bool:
    """Whether ``answer`` is one LaTeX fraction of integers, optionally signed: ``\\frac{3}{4}``,
    ``-\\dfrac{6}{8}``, ``\\frac{-3}{4}``, ``\\frac34``. Nothing else may appear: no operators
    outside the braces, no second fraction, no decimals."""
    body = answer.strip()
    if body.startswith("-"):
        body = body[1:].lstrip()
    command = next((c for c in _LATEX_FRACTIONS if body.startswith(c)), None)
    if command is None:
        return False
    rest = body[len(command) :].strip()
    if len(rest) == 2 and rest.isascii() and rest.isdigit():
        return True
    groups = []
    while rest.startswith("{"):
        end = rest.find("}")
        if end == -1:
            return False
        groups.append(rest[1:end].strip())
        rest = rest[end + 1 :].lstrip()
    if rest or len(groups) != 2:
        return False
    return all(g.removeprefix("-").isascii() and g.removeprefix("-").isdigit() for g in groups)


@register
class FractionSum(Environment):
    name = "fraction_sum"
    description = "Add a few positive fractions; answer the sum as a reduced fraction p/q (or an integer)."
    oracle = "equality"
    answer_format = "the sum as a reduced fraction p/q (or an integer)"
    allow_boxed = True

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        n_terms = lerp_int(difficulty, 2, 6)
        max_den = lerp_int(difficulty, 6, 60)
        terms = []
        for _ in range(n_terms):
            den = rng.randint(2, max_den)
            terms.append([rng.randint(1, den - 1), den])
        return {"terms": terms}

    def _trace(self, instance: dict) -> list[Fraction]:
        total, sums = Fraction(0), []
        for p, q in instance["terms"]:
            total += Fraction(p, q)
            sums.append(total)
        return sums[1:]

    def solve(self, instance: dict) -> str:
        return _text(self._trace(instance)[-1])

    def render(self, instance: dict) -> str:
        expression = " + ".join(f"{p}/{q}" for p, q in instance["terms"])
        return prompt_of(f"Compute {expression}.", self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        if not isinstance(answer, str):
            return 0.0
        target = self._trace(instance)[-1]
        value = parse_fraction(answer)
        if value is not None:
            return float(value == target)
        if not _single_latex_fraction(answer):
            return 0.0
        from worldsmith.envs.mathcheck import math_equal

        return float(math_equal(answer, _text(target))[0])

    def steps(self, instance: dict) -> list[str]:
        return [_text(v) for v in self._trace(instance)]

    def check_step(self, instance: dict, previous_steps: list[str], step: str) -> bool:
        trace = self._trace(instance)
        k = len(previous_steps)
        if k >= len(trace) or not isinstance(step, str):
            return False
        return parse_fraction(step) == trace[k]
