"""Count the primes up to a bound (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def prime_count(n):
    sieve = [True] * (n + 1)
    sieve[0:2] = [False, False]
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = [False] * len(sieve[i * i :: i])
    return sum(sieve)


class PrimeCount(Environment):
    name = "prime_count"
    description = "Count the primes less than or equal to a bound."
    answer_format = "the number of primes as an integer"

    def generate(self, rng, difficulty):
        return {"bound": 10 * scale(difficulty, 3, 500)}

    def solve(self, instance):
        return str(prime_count(instance["bound"]))

    def render(self, instance):
        return (
            f"How many primes are less than or equal to {instance['bound']}?\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == prime_count(instance["bound"]) else 0.0
