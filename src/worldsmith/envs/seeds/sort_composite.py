"""Sort records by a composite key (equality oracle).

Each record is a unique lowercase name and two integers ``a`` and ``b``. The answer is the names
sorted by ``a`` descending, then ``b`` ascending, then name; ties on ``a`` and on ``(a, b)`` are
planted by drawing the integers from small pools. Difficulty scales the number of records (3 to
40), the name length (1 to 3 letters) and the integer range (0..3 up to -999..999). The records
are never shown already in sorted order.
Steps: step k is the k-th name of the sorted order, so the steps spell the answer.
"""

from __future__ import annotations

import random
import string

from worldsmith.envs.answers import parse_word_list
from worldsmith.envs.contract import Environment, lerp_int, prompt_of
from worldsmith.envs.registry import register


@register
class SortComposite(Environment):
    name = "sort_composite"
    description = "Sort (name, a, b) records by a descending, b ascending, then name."
    oracle = "equality"
    answer_format = "the sorted names, comma-separated"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        n = lerp_int(difficulty, 3, 40)
        length = lerp_int(difficulty, 1, 3)
        high = lerp_int(difficulty, 4, 1000)
        low = -high if difficulty > 0.5 else 0
        pool_a = rng.sample(range(low, high), max(2, n // 3))
        pool_b = rng.sample(range(low, high), max(2, n // 3))
        names: set[str] = set()
        while len(names) < n:
            names.add("".join(rng.choice(string.ascii_lowercase) for _ in range(length)))
        records = [[name, rng.choice(pool_a), rng.choice(pool_b)] for name in sorted(names)]
        while True:
            rng.shuffle(records)
            if [r[0] for r in records] != self._order(records):
                return {"records": records}

    @staticmethod
    def _order(records: list) -> list[str]:
        return [r[0] for r in sorted(records, key=lambda r: (-r[1], r[2], r[0]))]

    def solve(self, instance: dict) -> str:
        return ",".join(self._order(instance["records"]))

    def render(self, instance: dict) -> str:
        rows = "; ".join(f"{name} {a} {b}" for name, a, b in instance["records"])
        body = f"Sort by a descending, then b ascending, then name. Records (name a b): {rows}."
        return prompt_of(body, self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        if not isinstance(answer, str):
            return 0.0
        vocabulary = {r[0] for r in instance["records"]}
        return float(parse_word_list(answer, vocabulary) == self._order(instance["records"]))

    def steps(self, instance: dict) -> list[str]:
        return self._order(instance["records"])

    def check_step(self, instance: dict, previous_steps: list[str], step: str) -> bool:
        order = self._order(instance["records"])
        k = len(previous_steps)
        return isinstance(step, str) and k < len(order) and step.strip() == order[k]
