"""A generative process judge: a language model asked to grade each step, over any backend.

The backend is anything with ``generate(prompts, SamplingParams) -> rollouts`` whose ``texts`` are
the replies: the HF backend of a local policy, or ``HTTPBackend`` for a served model. The judge is
asked for one verdict line per step, ``Step k: correct`` or ``Step k: incorrect``, and decodes
greedily (temperature 0), so the same steps get the same verdicts.

The parser fails closed: a step's score is 1.0 only when the reply holds exactly one verdict line
for it and that verdict is ``correct``. A missing step, a repeated step with any verdict, a verdict
word other than the two, an unreadable reply or a backend error all score the step 0.0, so a judge
that says nothing useful marks the first step wrong and never certifies a prefix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from worldsmith.envs.contract import Instance
from worldsmith.policy.backend import SamplingParams
from worldsmith.prm import PRM

VERDICT = re.compile(r"^\s*step\s*(\d+)\s*[:.)\-]\s*([a-z]+)\s*\.?\s*$", re.IGNORECASE | re.MULTILINE)
WORDS = {"correct": 1.0, "incorrect": 0.0}


def judge_prompt(instance: Instance, steps: Sequence[str]) -> str:
    """The judge's prompt: the problem, the numbered steps, and the reply format."""
    numbered = "\n".join(f"Step {k + 1}: {s}" for k, s in enumerate(steps))
    return (f"Problem:\n{instance.prompt}\n\nSolution steps:\n{numbered}\n\n"
            f"Check each step given the steps before it. Reply with exactly {len(steps)} lines, "
            f"'Step k: correct' or 'Step k: incorrect', for k = 1..{len(steps)}.\n")


def parse_verdicts(reply: object, n_steps: int) -> list[float]:
    """Scores of ``n_steps`` steps from a judge's ``reply``; anything not a clean ``correct`` is 0.0."""
    if not isinstance(reply, str):
        return [0.0] * n_steps
    seen: dict[int, list[str]] = {}
    for m in VERDICT.finditer(reply):
        seen.setdefault(int(m.group(1)), []).append(m.group(2).lower())
    out = []
    for k in range(1, n_steps + 1):
        words = seen.get(k, [])
        out.append(WORDS.get(words[0], 0.0) if len(words) == 1 else 0.0)
    return out


class JudgePRM(PRM):
    """Per-step scores from a generative judge (see the module doc); ``failures`` counts backend
    errors, each of which scored its steps 0."""

    name = "judge"

    def __init__(self, backend, max_new_tokens: int = 64) -> None:
        super().__init__()
        self.backend, self.max_new_tokens = backend, max_new_tokens
        self.failures = 0

    def score_batch(self, items: Sequence[tuple[Instance, Sequence[str]]]) -> list[list[float]]:
        asked = [i for i, (_, steps) in enumerate(items) if steps]
        out: list[list[float]] = [[] for _ in items]
        if not asked:
            return out
        self.calls += len(asked)
        prompts = [judge_prompt(*items[i]) for i in asked]
        budget = max(self.max_new_tokens, 24 * max(len(items[i][1]) for i in asked))
        try:
            texts = list(self.backend.generate(prompts, SamplingParams(max_new_tokens=budget, temperature=0.0)).texts)
        except Exception:
            self.failures += 1
            texts = [None] * len(asked)
        for i, text in zip(asked, texts):
            out[i] = parse_verdicts(text, len(items[i][1]))
        return out

    def score_steps(self, instance: Instance, steps: Sequence[str]) -> list[float]:
        return self.score_batch([(instance, steps)])[0]
