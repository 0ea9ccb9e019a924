"""Multi-step arithmetic: apply a chain of operations to a starting number (equality oracle).

Difficulty scales the number of operations (1 to 8) and the size of the operands (up to 9 or 99).
Steps: the running value after each operation, e.g. ``["7", "21", "16"]``.
"""

from __future__ import annotations

import random

from worldsmith.envs.answers import parse_int
from worldsmith.envs.contract import Environment, lerp_int, prompt_of
from worldsmith.envs.registry import register

_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@register
class ArithmeticChain(Environment):
    name = "arithmetic_chain"
    description = "Apply a chain of +, -, * operations to a start value; answer the final integer."
    oracle = "equality"
    answer_format = "the final integer"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        n_ops = lerp_int(difficulty, 1, 8)
        high = lerp_int(difficulty, 9, 99)
        ops = []
        for _ in range(n_ops):
            op = rng.choice("+-*" if difficulty > 0.3 else "+-")
            operand = rng.randint(2, 9) if op == "*" else rng.randint(1, high)
            ops.append([op, operand])
        return {"start": rng.randint(1, high), "ops": ops}

    def _trace(self, instance: dict) -> list[int]:
        values, value = [], instance["start"]
        for op, operand in instance["ops"]:
            value = _APPLY[op](value, operand)
            values.append(value)
        return values

    def solve(self, instance: dict) -> str:
        return str(self._trace(instance)[-1])

    def render(self, instance: dict) -> str:
        chain = " ".join(f"{op}{operand}" for op, operand in instance["ops"])
        return prompt_of(f"Start at {instance['start']} and apply in order: {chain}.", self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        return float(parse_int(answer) == self._trace(instance)[-1])

    def steps(self, instance: dict) -> list[str]:
        return [str(v) for v in self._trace(instance)]

    def check_step(self, instance: dict, previous_steps: list[str], step: str) -> bool:
        trace = self._trace(instance)
        k = len(previous_steps)
        return k < len(trace) and parse_int(step) == trace[k]
