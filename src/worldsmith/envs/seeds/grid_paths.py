"""Count monotone lattice paths through a grid with blocked cells (equality oracle).

A path starts in the top-left cell, ends in the bottom-right cell, moves only right or down and
never enters a blocked cell. The grid is drawn as text rows, ``.`` open and ``#`` blocked; the
corners are always open and at least one path exists. Difficulty scales the grid from 3..4 up to
12..18 rows and columns, with about a fifth of the cells blocked.
Steps: the dynamic programme row by row; step k is the number of paths into each cell of row k,
comma-separated (0 for a blocked cell), so the last entry of the last step is the answer. For the
grid ``..`` / ``..`` the steps are ``["1,1", "1,2"]``.
"""

from __future__ import annotations

import random

from worldsmith.envs.answers import parse_int, parse_int_list
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
    def _rows(grid: list[str]) -> list[list[int]]:
        """Paths into every cell, one list per row (the dynamic programme's table)."""
        ways, table = [0] * len(grid[0]), []
        ways[0] = 1
        for row in grid:
            for j, cell in enumerate(row):
                if cell == "#":
                    ways[j] = 0
                elif j > 0:
                    ways[j] += ways[j - 1]
            table.append(list(ways))
        return table

    @classmethod
    def _count(cls, grid: list[str]) -> int:
        return cls._rows(grid)[-1][-1]

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

    def steps(self, instance: dict) -> list[str]:
        return [",".join(str(w) for w in row) for row in self._rows(instance["grid"])]

    def check_step(self, instance: dict, previous_steps: list[str], step: str) -> bool:
        table = self._rows(instance["grid"])
        k = len(previous_steps)
        return isinstance(step, str) and k < len(table) and parse_int_list(step) == table[k]
