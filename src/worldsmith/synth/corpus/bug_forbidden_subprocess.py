"""Reach a target number with + - * and the given numbers, each used once (feasibility oracle)."""

import subprocess
import sys

from worldsmith import Environment


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class ReachTarget(Environment):
    name = "reach_target"
    description = "Write an arithmetic expression over the given numbers that equals the target."
    oracle = "feasibility"
    answer_format = "an expression using + - * and parentheses"

    def generate(self, rng, difficulty):
        numbers = [rng.randint(1, scale(difficulty, 9, 50)) for _ in range(scale(difficulty, 3, 6))]
        expr, value = str(numbers[0]), numbers[0]
        for x in numbers[1:]:
            op = rng.choice("+-*")
            expr = f"({expr} {op} {x})"
            value = value + x if op == "+" else value - x if op == "-" else value * x
        return {"numbers": numbers, "target": value, "expression": expr}

    def solve(self, instance):
        return instance["expression"]

    def render(self, instance):
        listed = ", ".join(map(str, instance["numbers"]))
        return (
            f"Using each of {listed} exactly once, with + - * and parentheses, make "
            f"{instance['target']}.\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        used = sorted(int(t) for t in answer.replace("(", " ").replace(")", " ").split() if t.isdigit())
        if used != sorted(instance["numbers"]) or any(ch not in "0123456789+-*() " for ch in answer):
            return 0.0
        out = subprocess.run([sys.executable, "-c", f"print({answer})"], capture_output=True, text=True, timeout=5)
        return 1.0 if out.stdout.strip() == str(instance["target"]) else 0.0
