"""Hamming distance between two binary strings (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class HammingDistance(Environment):
    name = "hamming_distance"
    description = "Count the positions where two equal-length bit strings differ."
    answer_format = "the Hamming distance as an integer"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 6, 64)
        a = "".join(rng.choice("01") for _ in range(n))
        b = "".join(rng.choice("01") for _ in range(n))
        return {"a": a, "b": b}

    def solve(self, instance):
        return str(sum(x != y for x, y in zip(instance["a"], instance["b"])))

    def render(self, instance):
        return (
            f"In how many positions do {instance['a']} and {instance['b']} differ?\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        if parse_int(answer) == sum(x != y for x, y in zip(instance["a"], instance["b"])):
            return "correct"
        return "incorrect"
