"""Planted CNF satisfiability (feasibility oracle).

A hidden 0/1 assignment of x1..xn is drawn. For each variable one clause has that variable's
literal as its only literal true under the hidden assignment, so flipping any single bit of it
falsifies a clause; the other clauses pick distinct variables with random signs and, if the hidden
assignment falsifies them, have one literal negated. Instances that the all-0 or all-1 assignment
satisfies are redrawn. Any assignment satisfying every clause passes; the answer is a string of n
characters 0/1, x1 first. Difficulty scales the variable count (3 to 40), the clause width (2 to 3)
and the clause-to-variable ratio (1 up to 4.2, near the hard region for 3-SAT).
"""

from __future__ import annotations

import random

from worldsmith.envs.contract import Environment, lerp_int, prompt_of
from worldsmith.envs.registry import register


def satisfies(bits: list[int], clauses: list) -> bool:
    """Whether the assignment ``bits`` (x1 first) satisfies every clause."""
    return all(any(bits[abs(lit) - 1] == (lit > 0) for lit in clause) for clause in clauses)


@register
class SatPlanted(Environment):
    name = "sat_planted"
    description = "Find a 0/1 assignment satisfying a CNF formula with a planted solution."
    oracle = "feasibility"
    answer_format = "a 0/1 string, x1 first"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        n, width = lerp_int(difficulty, 3, 40), lerp_int(difficulty, 2, 3)
        m = round(n * (1.0 + 3.2 * difficulty))
        variables = range(1, n + 1)
        while True:
            planted = [rng.randint(0, 1) for _ in range(n)]
            true = {v: v if planted[v - 1] else -v for v in variables}
            clauses = []
            for v in variables:  # v is the only true literal: flipping v alone breaks this clause
                others = rng.sample([u for u in variables if u != v], width - 1)
                clause = [true[v]] + [-true[u] for u in others]
                rng.shuffle(clause)
                clauses.append(clause)
            for _ in range(m - n):
                clause = [v if rng.random() < 0.5 else -v for v in rng.sample(variables, width)]
                if not satisfies(planted, [clause]):
                    i = rng.randrange(width)
                    clause[i] = -clause[i]
                clauses.append(clause)
            rng.shuffle(clauses)
            if not satisfies([0] * n, clauses) and not satisfies([1] * n, clauses):
                return {"n": n, "clauses": clauses, "planted": "".join(str(b) for b in planted)}

    def solve(self, instance: dict) -> str:
        return instance["planted"]

    def render(self, instance: dict) -> str:
        clauses = " ".join("(" + " ".join(str(lit) for lit in c) + ")" for c in instance["clauses"])
        body = f"Set x1..x{instance['n']} to 0/1 so every clause holds (-k is not xk): {clauses}"
        return prompt_of(body, self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        if not isinstance(answer, str):
            return 0.0
        text = answer.strip()
        if len(text) != instance["n"] or any(ch not in "01" for ch in text):
            return 0.0
        return float(satisfies([int(ch) for ch in text], instance["clauses"]))
