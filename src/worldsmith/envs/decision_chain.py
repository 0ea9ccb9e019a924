"""A depth-H chain of binary decisions with one correct path, every step checkable (equality oracle).

The setting of VPPO's Theorem 1 (a binary reasoning tree of depth H with one correct path): at each
of H levels the prompt shows two different digits, and the correct move is the larger one. The
answer is the path, the H chosen digits in order (``"785"``); step k restates level k's pair and the
choice, ``"3|7=7"``, so an outcome reward pays only when all H decisions are right, while a step
verifier can say which decision went wrong first. A policy that guesses each level passes with
probability 2^-H.

Difficulty sets the depth: H = 1 + round(15 * difficulty), so ``depth_difficulty(H)`` = (H - 1) / 15
gives depths 1 to 16 exactly. The answer must be exactly the H digits (``"785"``): separators,
signs or anything else fail, so ``"7,8,5"`` is not read as the number 785 either way.
"""

from __future__ import annotations

import random

from worldsmith.envs.contract import Environment, prompt_of
from worldsmith.envs.registry import register

MAX_DEPTH = 16


def depth_of(difficulty: float) -> int:
    """The depth H at ``difficulty``: 1 at 0, ``MAX_DEPTH`` at 1."""
    return 1 + round((MAX_DEPTH - 1) * difficulty)


def depth_difficulty(depth: int) -> float:
    """The difficulty whose depth is ``depth`` (1 .. ``MAX_DEPTH``)."""
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be in 1..{MAX_DEPTH}, got {depth}")
    return (depth - 1) / (MAX_DEPTH - 1)


@register
class DecisionChain(Environment):
    name = "decision_chain"
    description = "Walk a depth-H tree of binary choices, taking the larger digit at every level."
    oracle = "equality"
    answer_format = "the chosen digits in order"

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        return {"levels": [rng.sample(range(10), 2) for _ in range(depth_of(difficulty))]}

    @staticmethod
    def _path(instance: dict) -> list[str]:
        return [str(max(pair)) for pair in instance["levels"]]

    @classmethod
    def _trace(cls, instance: dict) -> list[str]:
        return [f"{a}|{b}={c}" for (a, b), c in zip(instance["levels"], cls._path(instance))]

    def solve(self, instance: dict) -> str:
        return "".join(self._path(instance))

    def render(self, instance: dict) -> str:
        levels = " ".join(f"{a}|{b}" for a, b in instance["levels"])
        body = f"At each level take the larger digit. Levels: {levels}."
        return prompt_of(body, self.answer_format)

    def score(self, instance: dict, answer: str) -> float:
        if not isinstance(answer, str):
            return 0.0
        text = answer.strip()
        return float(text.isascii() and text.isdigit() and text == self.solve(instance))

    def steps(self, instance: dict) -> list[str]:
        return self._trace(instance)

    def check_step(self, instance: dict, previous_steps: list[str], step: str) -> bool:
        trace = self._trace(instance)
        k = len(previous_steps)
        return isinstance(step, str) and k < len(trace) and step.replace(" ", "") == trace[k]


#: The fixed, unstated rule of ``decision_path``: at level k take the larger digit when
#: ``PATH_RULE[k]`` is "L", the smaller when it is "S".
PATH_RULE = "LSSLSLLSLSSLLSLS"


@register
class DecisionPath(DecisionChain):
    """Theorem 1's tree with its one correct path unstated: at level k the right move is the larger or
    the smaller digit by a fixed rule per level (``PATH_RULE``) that the prompt does not give. A policy
    learns each level's rule only from rewards, and a level's rule says nothing about another's, so
    an outcome reward needs a whole correct path (2^-H by guessing) while a step verifier can credit
    each correct level of a prefix. Same form, depths and step checks as ``decision_chain``."""

    name = "decision_path"
    description = "Walk a depth-H tree of binary choices whose right move at each level is fixed but unstated."

    @staticmethod
    def _path(instance: dict) -> list[str]:
        pick = {"L": max, "S": min}
        return [str(pick[PATH_RULE[k]](pair)) for k, pair in enumerate(instance["levels"])]

    def render(self, instance: dict) -> str:
        levels = " ".join(f"{a}|{b}" for a, b in instance["levels"])
        body = f"At each level take the digit its level's rule picks. Levels: {levels}."
        return prompt_of(body, self.answer_format)
