"""Rank of a query in a sorted list: how many entries are strictly smaller (equality oracle)."""

import bisect

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class RankSearch(Environment):
    name = "rank_search"
    description = "Count the entries of a sorted list that are smaller than a query value."
    answer_format = "the count as an integer"

    def generate(self, rng, difficulty):
        top = 10 ** scale(difficulty, 2, 4)
        n = scale(difficulty, 5, 60)
        values = sorted(rng.sample(range(1, top), n))
        return {"values": values, "query": rng.randint(1, top)}

    def solve(self, instance):
        return str(bisect.bisect_left(instance["values"], instance["query"]))

    def render(self, instance):
        listed = ", ".join(map(str, instance["values"]))
        return (
            f"The sorted list is [{listed}]. How many of its entries are strictly less than "
            f"{instance['query']}?\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        if value is None:
            return 0.0
        return 1.0 if value == sum(1 for v in instance["values"] if v < instance["query"]) else 0.0
