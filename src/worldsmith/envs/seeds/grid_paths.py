"""Count monotone lattice paths through a grid with blocked cells (equality oracle).

A path starts in the top-left cell, ends in the bottom-right cell, moves only right or down and
never enters a blocked cell. The grid is drawn as text rows, ``.`` open and ``#`` blocked; the
corners are always open and at least one path exists. Difficulty scales the grid from 3..4 up to
12..18 rows and columns, with about a fifth of the cells blocked.
"""

from __future__ import annotations

import random

from worldsmith.envs.answers import parse_int
from worldsmith.envs.contract import Environment, lerp_int, prompt_of
from worldsmith.envs.registry import register


@register
class GridPaths(Environment):
    name = "grid_paths"
    description = "Count right/down paths from the top-left to the bottom-right of a grid with walls."
    oracle = "equality"
    answer_format = "the number of paths"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        low, high = lerp_int(difficulty, 3, 12), lerp_int(difficulty, 4, 18)
        rows, cols = rng.randint(low, high), rng.randint(low, high)
        while True:
            grid = ["".join("#" if rng.random() < 0.2 else "." for _ in range(cols)) for _ in range(rows)]
            grid[0] = "." + grid[0][1:]
            grid[-1] = grid[-1][:-1] + "."
            if self._count(grid) > 0:
                return {"grid": grid}

    @staticmethod
    def _count(grid: list[str]) -> int:
        ways = [0] * len(grid[0])
        ways[0] = 1
        for row in grid:
            for j, cell in enumerate(row):
                if cell == "#":
                    ways[j] = 0
                elif j > 0:
                    ways[j] += ways[j - 1]
        return ways[-1]

    def solve(self, instance: dict) -> str:
        return str(self._count(instance["grid"]))

    def render(self, instance: dict) -> str:
        grid = "\n".join(instance["grid"])
        body = f"Count right/down paths from top-left to bottom-right avoiding #:\n{grid}"
        return prompt_of(body, self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        if not isinstance(answer, str):
            return 0.0
        return float(parse_int(answer) == self._count(instance["grid"]))
