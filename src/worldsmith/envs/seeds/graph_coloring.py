"""Planted graph colouring (feasibility oracle).

Vertices 1..n get a hidden colouring with all k colours used, and edges are drawn only between
differently coloured vertices, so a proper colouring exists. Any list of n colours in 1..k that
gives every edge two different colours passes. Difficulty scales the vertex count (5 to 40) and
the edge density (about n edges up to 2.3n, near the hard region for 3-colouring); k is 3.
"""

from __future__ import annotations

import random

from worldsmith.envs.answers import parse_int_list
from worldsmith.envs.contract import Environment, lerp_int, prompt_of
from worldsmith.envs.registry import register


@register
class GraphColoring(Environment):
    name = "graph_coloring"
    description = "Colour the vertices of a graph with k colours so that no edge joins equal colours."
    oracle = "feasibility"
    answer_format = "the colours in vertex order, comma-separated"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        n, k = lerp_int(difficulty, 5, 40), 3
        m = round(n * (1.0 + 1.3 * difficulty))
        colours: list[int] = []
        while len(set(colours)) < k:
            colours = [rng.randint(1, k) for _ in range(n)]
        vertices = range(1, n + 1)
        allowed = [[u, v] for u in vertices for v in vertices if u < v and colours[u - 1] != colours[v - 1]]
        edges = sorted(rng.sample(allowed, min(m, len(allowed))))
        return {"n": n, "k": k, "edges": edges, "planted": colours}

    def solve(self, instance: dict) -> str:
        return ",".join(str(c) for c in instance["planted"])

    def render(self, instance: dict) -> str:
        edges = " ".join(f"{u}-{v}" for u, v in instance["edges"])
        n, k = instance["n"], instance["k"]
        body = f"Colour vertices 1..{n} with colours 1..{k}, adjacent ones differently. Edges: {edges}."
        return prompt_of(body, self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        if not isinstance(answer, str):
            return 0.0
        colours = parse_int_list(answer)
        if colours is None or len(colours) != instance["n"]:
            return 0.0
        if any(not 1 <= c <= instance["k"] for c in colours):
            return 0.0
        return float(all(colours[u - 1] != colours[v - 1] for u, v in instance["edges"]))
