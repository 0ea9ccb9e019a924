"""Modular exponentiation: a to the power b, modulo m (equality oracle).

The base and the exponent are both larger than the modulus, so the prompt never states the result.
"""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class ModPower(Environment):
    name = "mod_power"
    description = "Compute a^b mod m for integers larger than the modulus."
    answer_format = "the residue as an integer between 0 and m-1"

    def generate(self, rng, difficulty):
        m = rng.randint(7, 10 ** scale(difficulty, 2, 5))
        a = rng.randint(m + 1, 50 * m)
        b = rng.randint(m + 1, 100 * m)
        return {"a": a, "b": b, "m": m}

    def solve(self, instance):
        return str(pow(instance["a"], instance["b"], instance["m"]))

    def render(self, instance):
        a, b, m = instance["a"], instance["b"], instance["m"]
        return f"Compute {a}^{b} mod {m}.\nGive {self.answer_format} as <answer>...</answer>."

    def score(self, instance, answer):
        value = parse_int(answer)
        if value is None:
            return 0.0
        return 1.0 if value == pow(instance["a"], instance["b"], instance["m"]) else 0.0
