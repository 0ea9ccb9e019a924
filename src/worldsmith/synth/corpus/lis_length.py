"""Length of the longest strictly increasing subsequence (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def lis(values):
    best = []
    for i, v in enumerate(values):
        best.append(1 + max((best[j] for j in range(i) if values[j] < v), default=0))
    return max(best, default=0)


class LisLength(Environment):
    name = "lis_length"
    description = "Find the length of the longest strictly increasing subsequence."
    answer_format = "the length as an integer"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 5, 40)
        top = scale(difficulty, 20, 999)
        return {"values": [rng.randint(1, top) for _ in range(n)]}

    def solve(self, instance):
        return str(lis(instance["values"]))

    def render(self, instance):
        listed = ", ".join(map(str, instance["values"]))
        return (
            f"Sequence: {listed}. How long is its longest strictly increasing subsequence "
            f"(not necessarily contiguous)?\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == lis(instance["values"]) else 0.0
