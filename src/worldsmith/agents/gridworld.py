"""Navigation world: walk a grid with walls to the goal cell, read the word written there, answer it.

The task lists the walls, the start and the goal; ``move(N|S|E|W)`` answers with the new position
and the goal's offset, e.g. ``at 2,3 goal 1S 2W`` (or ``blocked at ...``), and on the goal cell with the word. Difficulty grows the grid (4 to 9 cells a
side) and the wall density (0 to 25% of the cells). Exact progress: the share of the start's
shortest-path distance already covered (BFS over the walls), 0.9 once the word is read; the expert
moves along a shortest path, then answers.
"""

from __future__ import annotations

import random
from collections import deque

from worldsmith.agents.contract import Action, AgentEnvironment, ToolError
from worldsmith.envs.contract import lerp_int

MOVES = {"N": (-1, 0), "S": (1, 0), "W": (0, -1), "E": (0, 1)}
#: The words written on goal cells (distinct first letters: reading one is a short copy).
WORDS = ("RED", "BLUE", "GOLD", "PINK", "TEAL", "CYAN", "LIME", "NAVY")


def _distances(size: int, walls: set, goal: tuple[int, int]) -> dict:
    """Shortest-path distance to ``goal`` of every reachable cell."""
    dist = {goal: 0}
    queue = deque([goal])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES.values():
            cell = (r + dr, c + dc)
            if 0 <= cell[0] < size and 0 <= cell[1] < size and cell not in walls and cell not in dist:
                dist[cell] = dist[(r, c)] + 1
                queue.append(cell)
    return dist


class GridWorld(AgentEnvironment):
    name = "agent_gridworld"
    description = "Walk a grid with walls to the goal, read the word there and answer it."
    tools = {"move": "N, S, E or W"}
    answer_format = "the word written on the goal cell"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        size = lerp_int(difficulty, 4, 9)
        cells = [(r, c) for r in range(size) for c in range(size)]
        while True:
            start, goal = rng.sample(cells, 2)
            n_walls = int(difficulty * 0.25 * size * size)
            walls = {cell for cell in rng.sample(cells, n_walls) if cell not in (start, goal)}
            dist = _distances(size, walls, goal)
            if dist.get(start, 0) >= 2:
                break
        word = rng.choice(WORDS)
        return {"size": size, "start": list(start), "goal": list(goal), "walls": sorted(map(list, walls)),
                "word": word}

    def render(self, instance: dict) -> str:
        walls = " ".join(f"{r},{c}" for r, c in instance["walls"]) or "none"
        (sr, sc), (gr, gc) = instance["start"], instance["goal"]
        return (f"Grid {instance['size']}x{instance['size']}, N is row-1. Walls: {walls}. "
                f"At {sr},{sc}. Goal {gr},{gc} ({self._offset(instance, sr, sc)}): read its word.")

    def solve(self, instance: dict) -> str:
        return instance["word"]

    def turn_limit(self, instance: dict) -> int:
        return max(self.max_turns, 2 * instance["size"] + 4)

    def initial_state(self, instance: dict) -> dict:
        return {"at": list(instance["start"]), "read": False}

    def _dist(self, instance: dict) -> dict:
        return _distances(instance["size"], {tuple(w) for w in instance["walls"]}, tuple(instance["goal"]))

    def execute(self, instance: dict, state: dict, action: Action) -> tuple[dict, str]:
        direction = action.argument.strip().upper()
        if direction not in MOVES:
            raise ToolError(f"move takes N, S, E or W, got {action.argument[:20]!r}")
        r, c = state["at"]
        dr, dc = MOVES[direction]
        nr, nc = r + dr, c + dc
        size, walls = instance["size"], {tuple(w) for w in instance["walls"]}
        if not (0 <= nr < size and 0 <= nc < size) or (nr, nc) in walls:
            return dict(state), f"blocked at {r},{c} goal {self._offset(instance, r, c)}"
        new = {"at": [nr, nc], "read": state["read"] or [nr, nc] == list(instance["goal"])}
        if [nr, nc] == list(instance["goal"]):
            return new, f"at {nr},{nc}: the word is {instance['word']}"
        return new, f"at {nr},{nc} goal {self._offset(instance, nr, nc)}"

    @staticmethod
    def _offset(instance: dict, r: int, c: int) -> str:
        """Where the goal lies from (r, c), e.g. ``2S 1W``: the observation is local, so a small
        policy needs no coordinate arithmetic; the walls still demand planning."""
        (gr, gc), parts = instance["goal"], []
        if gr != r:
            parts.append(f"{abs(gr - r)}{'S' if gr > r else 'N'}")
        if gc != c:
            parts.append(f"{abs(gc - c)}{'E' if gc > c else 'W'}")
        return " ".join(parts)

    def expert(self, instance: dict, state: dict) -> str:
        if state["at"] == list(instance["goal"]):
            return f"answer({instance['word']})"
        dist = self._dist(instance)
        r, c = state["at"]
        here = dist.get((r, c))
        for name, (dr, dc) in MOVES.items():
            if here is not None and dist.get((r + dr, c + dc)) == here - 1:
                return f"move({name})"
        return f"answer({instance['word']})" if state["read"] else "move(N)"

    def progress(self, instance: dict, state: dict) -> float:
        if state["read"] and state["at"] == list(instance["goal"]):
            return 0.9
        dist = self._dist(instance)
        start = dist[tuple(instance["start"])]
        here = dist.get(tuple(state["at"]), start)
        return 0.9 * max(0.0, (start - here) / start) * 0.99

    def action_menu(self, instance: dict, state: dict) -> list[str]:
        """Every action worth considering in ``state`` (offline alternatives for CSO)."""
        menu = [f"move({d})" for d in MOVES]
        return [*menu, f"answer({instance['word']})"] if state["read"] else menu
