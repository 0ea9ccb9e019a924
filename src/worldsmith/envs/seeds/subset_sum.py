"""Planted subset sum (feasibility oracle).

A hidden subset of the listed positive integers sums to the target; any non-empty choice of
listed entries (a sub-multiset: each entry used at most as often as it is listed) with that sum
passes. The target is never itself in the list, and the planted subset never appears in the
list as a sorted contiguous run. Difficulty scales the list length (4 to 40), the planted subset
size (2 to n/2) and the size of the numbers (1 to 6 digits).
"""

from __future__ import annotations

import random
from collections import Counter

from worldsmith.envs.answers import parse_int_list
from worldsmith.envs.contract import Environment, lerp_int, prompt_of
from worldsmith.envs.registry import register


@register
class SubsetSum(Environment):
    name = "subset_sum"
    description = "Choose some of the listed numbers that add up to the target."
    oracle = "feasibility"
    answer_format = "the chosen numbers, comma-separated"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        n = lerp_int(difficulty, 4, 40)
        k = lerp_int(difficulty, 2, n // 2)
        high = 10 ** lerp_int(difficulty, 1, 6) - 1
        while True:
            numbers = [rng.randint(1, high) for _ in range(n)]
            planted = sorted(numbers[:k])
            rng.shuffle(numbers)
            runs = (numbers[i : i + k] for i in range(n - k + 1))
            if sum(planted) not in numbers and planted not in runs:
                return {"numbers": numbers, "target": sum(planted), "planted": planted}

    def solve(self, instance: dict) -> str:
        return ",".join(str(x) for x in instance["planted"])

    def render(self, instance: dict) -> str:
        numbers = ", ".join(str(x) for x in instance["numbers"])
        body = f"Pick entries of [{numbers}], each at most once, summing to {instance['target']}."
        return prompt_of(body, self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        if not isinstance(answer, str):
            return 0.0
        chosen = parse_int_list(answer)
        if not chosen:
            return 0.0
        fits = Counter(chosen) <= Counter(instance["numbers"])
        return float(fits and sum(chosen) == instance["target"])
