"""Two-sum: name two positions whose values add up to a target (feasibility oracle).

A pair is planted; any pair of distinct positions with the right sum passes.
"""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int_list


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class TwoSumIndices(Environment):
    name = "two_sum_indices"
    description = "Find two distinct positions whose values sum to the target."
    oracle = "feasibility"
    answer_format = "the two 0-based positions, comma-separated"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 6, 40)
        top = scale(difficulty, 30, 9999)
        values = [rng.randint(1, top) for _ in range(n)]
        i, j = sorted(rng.sample(range(n), 2))
        return {"values": values, "target": values[i] + values[j], "planted": [i, j]}

    def solve(self, instance):
        i, j = instance["planted"]
        return f"{i}, {j}"

    def render(self, instance):
        listed = " ".join(f"{k}:{v}" for k, v in enumerate(instance["values"]))
        return (
            f"Values by position (position:value): {listed}. Name two different positions whose "
            f"values add up to {instance['target']}.\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        picked = parse_int_list(answer)
        values = instance["values"]
        if picked is None or len(picked) != 2 or picked[0] == picked[1]:
            return 0.0
        if not all(0 <= k < len(values) for k in picked):
            return 0.0
        return 1.0 if values[picked[0]] + values[picked[1]] == instance["target"] else 0.0
