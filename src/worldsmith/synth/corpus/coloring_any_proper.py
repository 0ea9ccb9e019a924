"""Colour a sparse graph with k colours so that no edge joins equal colours (feasibility oracle).

A colouring using all k colours is planted and edges are drawn only between differently coloured
vertices; any proper colouring passes, whatever its colour names.
"""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int_list


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class AnyProperColoring(Environment):
    name = "any_proper_coloring"
    description = "Colour the vertices with colours 1..k so that every edge joins different colours."
    oracle = "feasibility"
    answer_format = "the colours of vertices 1, 2, 3, ... in order, comma-separated"

    def generate(self, rng, difficulty):
        n, k = scale(difficulty, 6, 36), scale(difficulty, 3, 5)
        colours = []
        while len(set(colours)) < k:
            colours = [rng.randint(1, k) for _ in range(n)]
        pairs = [[u, v] for u in range(1, n + 1) for v in range(u + 1, n + 1) if colours[u - 1] != colours[v - 1]]
        edges = sorted(rng.sample(pairs, min(len(pairs), 2 * n)))
        return {"n": n, "k": k, "edges": edges, "planted": colours}

    def solve(self, instance):
        return ",".join(map(str, instance["planted"]))

    def render(self, instance):
        listed = " ".join(f"{u}-{v}" for u, v in instance["edges"])
        return (
            f"A graph has vertices 1 to {instance['n']} and edges {listed}. Colour each vertex with one "
            f"of the colours 1 to {instance['k']} so that every edge joins two different colours.\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        colours = parse_int_list(answer)
        if colours is None or len(colours) != instance["n"]:
            return 0.0
        if not all(1 <= c <= instance["k"] for c in colours):
            return 0.0
        return 1.0 if all(colours[u - 1] != colours[v - 1] for u, v in instance["edges"]) else 0.0
