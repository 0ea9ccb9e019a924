"""Colour a graph with k colours so that no edge joins equal colours (feasibility oracle).

A proper colouring is planted.
"""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int_list


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class GraphKColoring(Environment):
    name = "graph_k_coloring"
    description = "Colour the vertices with colours 1..k so that adjacent vertices differ."
    oracle = "feasibility"
    answer_format = "the colours of vertices 1, 2, 3, ... in order, comma-separated"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 5, 30)
        k = scale(difficulty, 3, 5)
        colours = [rng.randint(1, k) for _ in range(n)]
        edges = [[u, v] for u in range(n) for v in range(u + 1, n)
                 if colours[u] != colours[v] and rng.random() < 0.3]
        return {"n": n, "k": k, "edges": edges, "planted": colours}

    def solve(self, instance):
        return ", ".join(map(str, instance["planted"]))

    def render(self, instance):
        listed = " ".join(f"{u + 1}-{v + 1}" for u, v in instance["edges"])
        return (
            f"A graph has vertices 1 to {instance['n']} and edges {listed}. Colour each vertex "
            f"with one of the colours 1 to {instance['k']} so that every edge joins two different "
            f"colours.\nGive {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        colours = parse_int_list(answer)
        if colours is None or len(colours) != instance["n"]:
            return 0.0
        return 1.0 if all(c >= 1 for c in colours) else 0.0
