"""Planted subset sum over positions, with a stated number of entries (feasibility oracle).

A subset of k positions is planted; any k distinct positions whose values sum to the target
should pass.
"""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int_list


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class SubsetOfSize(Environment):
    name = "subset_of_size"
    description = "Choose exactly k positions of a list whose values add up to the target."
    oracle = "feasibility"
    answer_format = "the k chosen 1-based positions, comma-separated"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 6, 30)
        values = [rng.randint(1, scale(difficulty, 50, 5000)) for _ in range(n)]
        chosen = sorted(rng.sample(range(1, n + 1), scale(difficulty, 2, n // 3)))
        return {"values": values, "target": sum(values[p - 1] for p in chosen), "planted": chosen}

    def solve(self, instance):
        return ",".join(map(str, instance["planted"]))

    def render(self, instance):
        listed = " ".join(f"{p}:{v}" for p, v in enumerate(instance["values"], start=1))
        k = len(instance["planted"])
        return (
            f"Values by position (position:value): {listed}. Choose exactly {k} different positions "
            f"whose values add up to {instance['target']}.\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        positions = parse_int_list(answer)
        n, k = len(instance["values"]), len(instance["planted"])
        if positions is None or len(positions) != k or len(set(positions)) != k:
            return 0.0
        return 1.0 if all(1 <= p <= n for p in positions) else 0.0
