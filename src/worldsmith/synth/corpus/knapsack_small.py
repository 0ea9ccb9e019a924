"""0/1 knapsack with small integer weights, solved by dynamic programming (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def best_value(weights, values, capacity):
    best = [0] * (capacity + 1)
    for w, v in zip(weights, values):
        for c in range(capacity, w - 1, -1):
            best[c] = max(best[c], best[c - w] + v)
    return best[capacity]


class KnapsackSmall(Environment):
    name = "knapsack_small"
    description = "Pick items of given weight and value under a capacity to maximise total value."
    answer_format = "the largest achievable total value as an integer"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 3, 14)
        heaviest = scale(difficulty, 8, 30)
        weights = [rng.randint(1, heaviest) for _ in range(n)]
        values = [rng.randint(1, 99) for _ in range(n)]
        return {"weights": weights, "values": values, "capacity": max(1, sum(weights) // 2)}

    def solve(self, instance):
        return str(best_value(instance["weights"], instance["values"], instance["capacity"]))

    def render(self, instance):
        items = "; ".join(
            f"item {i + 1}: weight {w}, value {v}"
            for i, (w, v) in enumerate(zip(instance["weights"], instance["values"]))
        )
        return (
            f"A bag holds total weight at most {instance['capacity']}. {items}. Each item can be "
            f"taken at most once. What is the largest total value that fits?\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        if value is None:
            return 0.0
        return 1.0 if value == best_value(instance["weights"], instance["values"], instance["capacity"]) else 0.0
