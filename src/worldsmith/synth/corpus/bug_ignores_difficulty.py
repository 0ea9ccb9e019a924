"""Greatest common divisor of two integers (equality oracle)."""

import math

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


class TwoNumberGcd(Environment):
    name = "two_number_gcd"
    description = "Compute the greatest common divisor of two integers."
    answer_format = "the gcd as an integer"

    def generate(self, rng, difficulty):
        factor = rng.randint(2, 50)
        return {"a": factor * rng.randint(2, 400), "b": factor * rng.randint(2, 400)}

    def solve(self, instance):
        return str(math.gcd(instance["a"], instance["b"]))

    def render(self, instance):
        return (
            f"What is gcd({instance['a']}, {instance['b']})?\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == math.gcd(instance["a"], instance["b"]) else 0.0
