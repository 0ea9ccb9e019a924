"""Sum of the consecutive integers from a to b inclusive (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class RangeSum(Environment):
    name = "range_sum"
    description = "Add up all the integers from a to b, both included."
    answer_format = "the sum as an integer"

    def generate(self, rng, difficulty):
        top = 10 ** scale(difficulty, 2, 5)
        a = rng.randint(1, top)
        return {"a": a, "b": a + rng.randint(2, top)}

    def solve(self, instance):
        return str(sum(range(instance["a"], instance["b"])))

    def render(self, instance):
        return (
            f"What is {instance['a']} + ({instance['a']} + 1) + ... + {instance['b']}, the sum of "
            f"all integers from {instance['a']} to {instance['b']} inclusive?\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        a, b = instance["a"], instance["b"]
        value = parse_int(answer)
        return 1.0 if value is not None and value == (b - a + 1) * (a + b) // 2 else 0.0
