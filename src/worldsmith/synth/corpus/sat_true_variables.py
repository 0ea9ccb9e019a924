"""Planted 3-SAT: name the variables to set true so that every clause holds (feasibility oracle).

A hidden assignment is drawn and every clause is made true under it (one literal is negated when
it is not); the all-false assignment never works, so an answer names at least one variable. Any
satisfying assignment passes, its true variables listed in any order.
"""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int_list


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def holds(true_vars, clauses):
    return all(any((lit > 0) == (abs(lit) in true_vars) for lit in clause) for clause in clauses)


class SatTrueVariables(Environment):
    name = "sat_true_variables"
    description = "Choose the variables to set true so that a 3-CNF formula holds."
    oracle = "feasibility"
    answer_format = "the numbers of the variables set to true, in any order, comma-separated"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 6, 40)
        m = round(n * (2.0 + 2.2 * difficulty))
        while True:
            planted = sorted(v for v in range(1, n + 1) if rng.random() < 0.5)
            clauses = []
            for _ in range(m):
                clause = [v if rng.random() < 0.5 else -v for v in rng.sample(range(1, n + 1), 3)]
                if not holds(set(planted), [clause]):
                    i = rng.randrange(3)
                    clause[i] = -clause[i]
                clauses.append(clause)
            if planted and not holds(set(), clauses):
                return {"n": n, "clauses": clauses, "planted": planted}

    def solve(self, instance):
        return ",".join(map(str, instance["planted"]))

    def render(self, instance):
        listed = " ".join("(" + " ".join(map(str, c)) + ")" for c in instance["clauses"])
        return (
            f"Variables x1..x{instance['n']}; in each clause at least one literal must hold (k means "
            f"xk is true, -k that it is false): {listed}.\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        named = parse_int_list(answer)
        if not named or not all(1 <= v <= instance["n"] for v in named):
            return 0.0
        return 1.0 if holds(set(named), instance["clauses"]) else 0.0
