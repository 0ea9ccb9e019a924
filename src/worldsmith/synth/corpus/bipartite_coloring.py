"""Two-colour a bipartite graph so that every edge joins different colours (feasibility oracle).

A bipartition is planted; every vertex has at least one edge, so any valid colouring passes.
"""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int_list


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class BipartiteColoring(Environment):
    name = "bipartite_coloring"
    description = "Colour each vertex 0 or 1 so that no edge joins two vertices of the same colour."
    oracle = "feasibility"
    answer_format = "the colours of vertices 0, 1, 2, ... in order, comma-separated"

    def generate(self, rng, difficulty):
        n = scale(difficulty, 4, 30)
        side = [0, 1] + [rng.randint(0, 1) for _ in range(n - 2)]
        rng.shuffle(side)
        density = 0.2 + 0.3 * difficulty
        edges = [[u, v] for u in range(n) for v in range(u + 1, n) if side[u] != side[v] and rng.random() < density]
        touched = {x for e in edges for x in e}
        for u in range(n):
            if u not in touched:
                v = rng.choice([w for w in range(n) if side[w] != side[u]])
                edges.append(sorted([u, v]))
                touched.update((u, v))
        return {"n": n, "edges": sorted(edges), "planted": side}

    def solve(self, instance):
        return ", ".join(map(str, instance["planted"]))

    def render(self, instance):
        listed = " ".join(f"{u}-{v}" for u, v in instance["edges"])
        return (
            f"A graph has vertices 0 to {instance['n'] - 1} and edges {listed}. Colour every vertex "
            f"0 or 1 so that each edge joins two different colours.\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        colours = parse_int_list(answer)
        if colours is None or len(colours) != instance["n"] or any(c not in (0, 1) for c in colours):
            return 0.0
        return 1.0 if all(colours[u] != colours[v] for u, v in instance["edges"]) else 0.0
