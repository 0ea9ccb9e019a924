"""Sum of the cells on a path through a sparse grid (equality oracle)."""

from worldsmith import Environment
from worldsmith.envs.answers import parse_int


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


class SparseGridPath(Environment):
    name = "sparse_grid_path"
    description = "Add up the grid values visited by a sequence of moves."
    answer_format = "the total as an integer"

    def generate(self, rng, difficulty):
        size = scale(difficulty, 3, 9)
        cells = {(r, c): rng.randint(0, 9) for r in range(size) for c in range(size)}
        moves = [rng.choice("RD") for _ in range(size - 1)]
        return {"size": size, "cells": cells, "moves": moves}

    def _total(self, instance):
        r = c = 0
        total = instance["cells"][(0, 0)]
        for move in instance["moves"]:
            r, c = (r, c + 1) if move == "R" else (r + 1, c)
            total += instance["cells"][(r, c)]
        return total

    def solve(self, instance):
        return str(self._total(instance))

    def render(self, instance):
        n = instance["size"]
        rows = "\n".join(" ".join(str(instance["cells"][(r, c)]) for c in range(n)) for r in range(n))
        return (
            f"Start at the top-left cell of\n{rows}\nand follow the moves {''.join(instance['moves'])} "
            f"(R right, D down). What is the sum of the visited cells, including the first?\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        value = parse_int(answer)
        return 1.0 if value is not None and value == self._total(instance) else 0.0
