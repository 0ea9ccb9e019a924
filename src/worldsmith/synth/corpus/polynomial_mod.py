"""Evaluate a polynomial with small coefficients at a point, modulo a prime (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int

PRIMES = [11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
          101, 211, 307, 401, 503, 601, 701, 809, 907, 1009, 2003, 3001, 4001, 5003, 6007, 7001,
          8009, 9001, 9973]


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def evaluate(coeffs, x, p):
    total = 0
    for c in coeffs:
        total = (total * x + c) % p
    return total


class PolynomialMod(Environment):
    name = "polynomial_mod"
    description = "Evaluate an integer polynomial at a point modulo a prime."
    answer_format = "the value as an integer between 0 and p-1"

    def generate(self, rng, difficulty):
        degree = scale(difficulty, 2, 8)
        coeffs = [rng.randint(1, 9)] + [rng.randint(-9, 9) for _ in range(degree)]
        p = rng.choice(PRIMES[: scale(difficulty, 10, len(PRIMES))])
        return {"coeffs": coeffs, "x": rng.randint(2, 99), "p": p}

    def solve(self, instance):
        return str(evaluate(instance["coeffs"], instance["x"], instance["p"]))

    def render(self, instance):
        coeffs = instance["coeffs"]
        degree = len(coeffs) - 1
        terms = " + ".join(f"({c})*x^{degree - k}" for k, c in enumerate(coeffs))
        return (
            f"Let f(x) = {terms}. Compute f({instance['x']}) mod {instance['p']}.\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        if value is None:
            return 0.0
        return 1.0 if value == evaluate(instance["coeffs"], instance["x"], instance["p"]) else 0.0
