"""Shortest-path length between two nodes of an undirected graph (equality oracle).

The graph is a random connected "long" tree (each node joins one of the few nodes added just
before it) plus random shortcut edges, with shuffled labels 1..n, so breadth-first search is
needed. The target is drawn among the nodes at least half the eccentricity of the source away.
Difficulty scales the node count (4 to 60) and with it the number of shortcuts (0 to max(1, n/6)).
Steps: breadth-first search layer by layer until the target is reached; step k is the set of nodes
at distance k from the source, comma-separated in any order, so the answer is the number of steps.
"""

from __future__ import annotations

import random
from collections import deque

from worldsmith.envs.answers import parse_int, parse_int_list
from worldsmith.envs.contract import Environment, lerp_int, prompt_of
from worldsmith.envs.registry import register


def bfs(edges: list, source: int) -> dict[int, int]:
    """Distances from ``source`` to every node it reaches."""
    neighbours: dict[int, list[int]] = {}
    for u, v in edges:
        neighbours.setdefault(u, []).append(v)
        neighbours.setdefault(v, []).append(u)
    dist, queue = {source: 0}, deque([source])
    while queue:
        u = queue.popleft()
        for v in neighbours.get(u, []):
            if v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


@register
class GraphDistance(Environment):
    name = "graph_distance"
    description = "Length of the shortest path between two nodes of an undirected graph."
    oracle = "equality"
    answer_format = "the integer"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        n = lerp_int(difficulty, 4, 60)
        order = rng.sample(range(1, n + 1), n)
        pairs = {frozenset((order[i], order[rng.randint(max(0, i - 3), i - 1)])) for i in range(1, n)}
        size = len(pairs) + rng.randint(0, max(1, n // 6))
        while len(pairs) < size:
            pairs.add(frozenset(rng.sample(order, 2)))
        edges = [[u, v] if rng.random() < 0.5 else [v, u] for u, v in sorted(sorted(p) for p in pairs)]
        rng.shuffle(edges)
        source = rng.randint(1, n)
        dist = bfs(edges, source)
        far = max(dist.values())
        target = rng.choice(sorted(v for v, d in dist.items() if 2 * d >= far and v != source))
        return {"n": n, "edges": edges, "source": source, "target": target}

    def solve(self, instance: dict) -> str:
        return str(bfs(instance["edges"], instance["source"])[instance["target"]])

    def render(self, instance: dict) -> str:
        edges = " ".join(f"{u}-{v}" for u, v in instance["edges"])
        body = f"Undirected edges: {edges}. Shortest path length from {instance['source']} to {instance['target']}?"
        return prompt_of(body, self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        if not isinstance(answer, str):
            return 0.0
        return float(parse_int(answer) == bfs(instance["edges"], instance["source"])[instance["target"]])

    def _layers(self, instance: dict) -> list[list[int]]:
        dist = bfs(instance["edges"], instance["source"])
        depth = dist[instance["target"]]
        return [sorted(v for v, d in dist.items() if d == k) for k in range(1, depth + 1)]

    def steps(self, instance: dict) -> list[str]:
        return [",".join(str(v) for v in layer) for layer in self._layers(instance)]

    def check_step(self, instance: dict, previous_steps: list[str], step: str) -> bool:
        layers = self._layers(instance)
        k = len(previous_steps)
        if not isinstance(step, str) or k >= len(layers):
            return False
        nodes = parse_int_list(step)
        return nodes is not None and len(nodes) == len(set(nodes)) and sorted(nodes) == layers[k]
