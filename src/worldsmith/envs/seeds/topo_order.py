"""Topological order of a DAG over letter-named nodes (feasibility oracle).

Nodes are distinct uppercase names (one letter, or two letters beyond 26 nodes). Edges follow a
hidden order: every node but the first gets an edge from an earlier node, plus extra forward
edges. Instances where the alphabetical listing is already a valid order are redrawn. Any order
of all nodes with X before Y for every edge X>Y passes. Difficulty scales the node count (3 to
50) and the extra edges (0 up to n).
Steps: step k is the k-th node of an order; the reference trace takes, at each step, the
alphabetically smallest node whose predecessors are all placed.
"""

from __future__ import annotations

import heapq
import random
import string

from worldsmith.envs.answers import parse_word_list
from worldsmith.envs.contract import Environment, lerp_int, prompt_of
from worldsmith.envs.registry import register


def is_order(order: list[str], edges: list) -> bool:
    """Whether ``order`` puts every edge's source before its target (nodes assumed distinct)."""
    position = {node: i for i, node in enumerate(order)}
    return all(position[u] < position[v] for u, v in edges)


@register
class TopoOrder(Environment):
    name = "topo_order"
    description = "Order the nodes of a DAG so that every edge points forward."
    oracle = "feasibility"
    answer_format = "the order, comma-separated"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        n = lerp_int(difficulty, 3, 50)
        letters = string.ascii_uppercase
        pool = list(letters) if n <= 26 else [a + b for a in letters for b in letters]
        while True:
            order = rng.sample(pool, n)
            pairs = {(rng.randrange(i), i) for i in range(1, n)}
            extra = len(pairs) + lerp_int(difficulty, 0, n)
            while len(pairs) < min(extra, n * (n - 1) // 2):
                pairs.add(tuple(sorted(rng.sample(range(n), 2))))
            edges = [[order[i], order[j]] for i, j in sorted(pairs)]
            rng.shuffle(edges)
            if not is_order(sorted(order), edges):
                return {"nodes": sorted(order), "edges": edges}

    def _predecessors(self, instance: dict) -> dict[str, set[str]]:
        before: dict[str, set[str]] = {node: set() for node in instance["nodes"]}
        for u, v in instance["edges"]:
            before[v].add(u)
        return before

    def steps(self, instance: dict) -> list[str]:
        before, placed, result = self._predecessors(instance), set(), []
        ready = [node for node, preds in before.items() if not preds]
        heapq.heapify(ready)
        while ready:
            node = heapq.heappop(ready)
            placed.add(node)
            result.append(node)
            for other, preds in before.items():
                if node in preds and preds <= placed:
                    heapq.heappush(ready, other)
        return result

    def solve(self, instance: dict) -> str:
        return ",".join(self.steps(instance))

    def render(self, instance: dict) -> str:
        edges = ", ".join(f"{u}>{v}" for u, v in instance["edges"])
        body = f"Order nodes {' '.join(instance['nodes'])} so each edge X>Y has X first: {edges}."
        return prompt_of(body, self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        if not isinstance(answer, str):
            return 0.0
        order = parse_word_list(answer, set(instance["nodes"]))
        if order is None or sorted(order) != instance["nodes"]:
            return 0.0
        return float(is_order(order, instance["edges"]))

    def check_step(self, instance: dict, previous_steps: list[str], step: str) -> bool:
        if not isinstance(step, str):
            return False
        node = step.strip()
        before = self._predecessors(instance)
        return node in before and node not in previous_steps and before[node] <= set(previous_steps)
