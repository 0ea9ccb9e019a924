"""Median of a list of integers of odd length (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


class ListMedian(Environment):
    name = "list_median"
    description = "Find the median of an odd-length list of integers."
    answer_format = "the median as an integer"

    def generate(self, rng, difficulty):
        n = 2 ** int(3 + 14 * difficulty) + 1
        return {"values": [rng.randint(1, 99999) for _ in range(n)]}

    def solve(self, instance):
        values = sorted(instance["values"])
        return str(values[len(values) // 2])

    def render(self, instance):
        listed = ", ".join(map(str, instance["values"]))
        return f"What is the median of {listed}?\nGive {self.answer_format} as <answer>...</answer>."

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and str(value) == self.solve(instance) else 0.0
