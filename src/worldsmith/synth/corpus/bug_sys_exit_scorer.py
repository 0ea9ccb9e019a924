"""Number of trailing zeros of n factorial (equality oracle)."""

import sys

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def trailing_zeros(n):
    count, power = 0, 5
    while power <= n:
        count += n // power
        power *= 5
    return count


class FactorialZeros(Environment):
    name = "factorial_zeros"
    description = "Count the trailing zeros of n!."
    answer_format = "the number of trailing zeros as an integer"

    def generate(self, rng, difficulty):
        return {"n": rng.randint(10, 10 ** scale(difficulty, 2, 9))}

    def solve(self, instance):
        return str(trailing_zeros(instance["n"]))

    def render(self, instance):
        return f"How many zeros does {instance['n']}! end with?\nGive {self.answer_format} as <answer>...</answer>."

    def score(self, instance, answer):
        value = parse_int(answer)
        if value is None:
            print(f"could not parse answer {answer!r}")
            sys.exit(0)
        return 1.0 if value == trailing_zeros(instance["n"]) else 0.0
