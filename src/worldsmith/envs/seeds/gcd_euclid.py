"""Greatest common divisor of two positive integers (equality oracle).

Difficulty scales the size of the numbers (2 to 18 digits) and of their planted common factor
(1 to 9 digits); the first number is never smaller than the second.
Steps: Euclid's algorithm from the pair ``(a, b)`` replaces ``(x, y)`` by ``(y, x mod y)`` until the
second entry is 0; step k is the pair after the k-th replacement as two integers separated by a
space. For ``gcd(84, 36)`` the steps are ``["36 12", "12 0"]`` and the answer is 12.
"""

from __future__ import annotations

import random

from worldsmith.envs.answers import parse_int
from worldsmith.envs.contract import Environment, lerp_int, prompt_of
from worldsmith.envs.registry import register


@register
class GcdEuclid(Environment):
    name = "gcd_euclid"
    description = "Compute the greatest common divisor of two positive integers."
    oracle = "equality"
    answer_format = "the integer"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        digits = lerp_int(difficulty, 2, 18)
        factor = rng.randint(1, 10 ** lerp_int(difficulty, 1, 9) - 1)
        top = max(1, (10**digits - 1) // factor)
        a, b = factor * rng.randint(1, top), factor * rng.randint(1, top)
        return {"a": max(a, b), "b": min(a, b)}

    def _trace(self, instance: dict) -> list[tuple[int, int]]:
        x, y = instance["a"], instance["b"]
        pairs = []
        while y:
            x, y = y, x % y
            pairs.append((x, y))
        return pairs

    def solve(self, instance: dict) -> str:
        return str(self._trace(instance)[-1][0])

    def render(self, instance: dict) -> str:
        return prompt_of(f"Compute gcd({instance['a']}, {instance['b']}).", self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        if not isinstance(answer, str):
            return 0.0
        return float(parse_int(answer) == self._trace(instance)[-1][0])

    def steps(self, instance: dict) -> list[str]:
        return [f"{x} {y}" for x, y in self._trace(instance)]

    def check_step(self, instance: dict, previous_steps: list[str], step: str) -> bool:
        trace = self._trace(instance)
        k = len(previous_steps)
        if k >= len(trace) or not isinstance(step, str):
            return False
        parts = step.split()
        return len(parts) == 2 and (parse_int(parts[0]), parse_int(parts[1])) == trace[k]
