"""Pluggable judges: a rule judge that runs offline, and an LLM judge over any generation backend.

A judge is a callable ``judge(prompts) -> texts``: it receives the full judge prompts the game built
and returns the judge's raw outputs, which the game parses with the paper's rule. So a game never
knows which kind of judge it has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Judge = Callable[[list[str]], list[str]]


class BackendJudge:
    """Any ``GenerationBackend`` (HF in-process, vLLM, an OpenAI-compatible server) as a judge.

    ``system`` is prepended to each prompt (the backends take one user text); decoding is greedy
    (temperature 0) with ``max_new_tokens``, as in the paper's judges (READ: temperature 0; 100
    tokens for the safety judge, 10 for the self-judge).
    """

    def __init__(self, backend, max_new_tokens: int, system: str = "") -> None:
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self.system = system

    def __call__(self, prompts: list[str]) -> list[str]:
        from worldsmith.policy.backend import SamplingParams

        texts = [f"{self.system}\n\n{p}" if self.system else p for p in prompts]
        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=0.0)
        return list(self.backend.generate(texts, params).texts)


class MarkerJudge:
    """A rule judge: answers ``positive`` when the judged text holds one of ``markers`` (case-
    insensitive) after the last ``split_on`` in the prompt, else ``negative``."""

    def __init__(self, markers: Sequence[str], positive: str, negative: str, split_on: str) -> None:
        self.markers = tuple(m.lower() for m in markers)
        self.positive, self.negative, self.split_on = positive, negative, split_on

    def __call__(self, prompts: list[str]) -> list[str]:
        out = []
        for prompt in prompts:
            judged = prompt.rsplit(self.split_on, 1)[-1].lower()
            out.append(self.positive if any(m in judged for m in self.markers) else self.negative)
        return out
