"""Number of distinct values in a list (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class DistinctCount(Environment):
    name = "distinct_count"
    description = "Count how many different values a list contains."
    answer_format = "the number of distinct values as an integer"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 5, 50)
        return {"values": [rng.randint(1, scale(difficulty, 6, 60)) for _ in range(n)]}

    def solve(self, instance):
        return str(len(set(instance["values"])))

    def render(self, instance):
        listed = ", ".join(map(str, instance["values"]))
        return f"How many distinct values are in [{listed}]?\nGive {self.answer_format} as <answer>...</answer>."

    def score(self, instance, answer):
        return parse_int(answer) == len(set(instance["values"]))
