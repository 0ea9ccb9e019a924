"""Interval scheduling: the largest number of pairwise non-overlapping intervals (equality oracle).

Intervals are half-open, [start, end): one may begin exactly where another ends.
"""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def max_disjoint(intervals):
    count, free_from = 0, None
    for start, end in sorted(intervals, key=lambda iv: (iv[1], iv[0])):
        if free_from is None or start >= free_from:
            count += 1
            free_from = end
    return count


class IntervalScheduling(Environment):
    name = "interval_scheduling"
    description = "Choose as many non-overlapping meetings as possible; report how many."
    answer_format = "the maximum number of meetings as an integer"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 4, 30)
        horizon = scale(difficulty, 20, 200)
        longest = scale(difficulty, 6, 40)
        intervals = []
        for _ in range(n):
            start = rng.randint(0, horizon - 1)
            intervals.append([start, start + rng.randint(1, longest)])
        return {"intervals": intervals}

    def solve(self, instance):
        return str(max_disjoint(instance["intervals"]))

    def render(self, instance):
        listed = "; ".join(f"[{s}, {e})" for s, e in instance["intervals"])
        return (
            "Meetings occupy these half-open time intervals (a meeting may start exactly when "
            f"another ends): {listed}. What is the largest number of meetings that can be attended "
            f"with no two overlapping?\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == max_disjoint(instance["intervals"]) else 0.0
