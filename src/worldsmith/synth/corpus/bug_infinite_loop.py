"""Modular inverse of k modulo m (equality oracle)."""

import math

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class ModularInverse(Environment):
    name = "modular_inverse"
    description = "Find the inverse of k modulo m."
    answer_format = "the inverse as an integer between 1 and m-1"

    def generate(self, rng, difficulty):
        m = rng.randint(12, 10 ** scale(difficulty, 2, 6))
        step = rng.randint(2, 6)
        while True:
            k = step * rng.randint(1, m // step)
            if math.gcd(k, m) == 1:
                return {"k": k, "m": m}

    def solve(self, instance):
        return str(pow(instance["k"], -1, instance["m"]))

    def render(self, instance):
        return (
            f"Find x with {instance['k']} * x = 1 (mod {instance['m']}).\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        if value is None or not 0 < value < instance["m"]:
            return 0.0
        return 1.0 if value * instance["k"] % instance["m"] == 1 else 0.0
