"""Planted subset sum over positions: name entries whose values add up to the target (feasibility
oracle).

A subset of positions is planted; any set of positions, in any order, whose values sum to the
target passes. A position named twice is still one chosen entry.
"""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int_list


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class SubsetPositions(Environment):
    name = "subset_positions"
    description = "Choose positions of a list whose values add up to the target."
    oracle = "feasibility"
    answer_format = "the chosen 1-based positions in any order, comma-separated"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 6, 30)
        values = [rng.randint(1, scale(difficulty, 50, 5000)) for _ in range(n)]
        chosen = rng.sample(range(1, n + 1), scale(difficulty, 2, n // 3))
        return {"values": values, "target": sum(values[p - 1] for p in chosen), "planted": chosen}

    def solve(self, instance):
        return ",".join(map(str, instance["planted"]))

    def render(self, instance):
        listed = " ".join(f"{p}:{v}" for p, v in enumerate(instance["values"], start=1))
        return (
            f"Values by position (position:value): {listed}. Choose positions whose values add up "
            f"to {instance['target']}; each position counts once.\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        positions = parse_int_list(answer)
        values = instance["values"]
        if not positions or not all(1 <= p <= len(values) for p in positions):
            return 0.0
        return 1.0 if sum(values[p - 1] for p in set(positions)) == instance["target"] else 0.0
