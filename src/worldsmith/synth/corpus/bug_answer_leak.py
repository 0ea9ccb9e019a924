"""Multiply two multi-digit integers (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class LongMultiplication(Environment):
    name = "long_multiplication"
    description = "Multiply two integers exactly."
    answer_format = "the product as an integer"

    def generate(self, rng, difficulty):
        digits = scale(difficulty, 2, 8)
        return {"a": rng.randint(10 ** (digits - 1), 10**digits - 1),
                "b": rng.randint(10 ** (digits - 1), 10**digits - 1)}

    def solve(self, instance):
        return str(instance["a"] * instance["b"])

    def render(self, instance):
        return (
            f"Compute {instance['a']} * {instance['b']}.\n"
            f"Give {self.answer_format} as <answer>...</answer>, for example "
            f"<answer>{self.solve(instance)}</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == instance["a"] * instance["b"] else 0.0
