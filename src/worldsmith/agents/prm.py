"""Process rewards for agent steps, behind the PRM interface every step scorer shares.

``StepPRM`` is the interface: ``score_steps(instance, steps) -> list[float]`` (one score in [0, 1]
per step) and ``first_error(instance, steps, threshold) -> int | None``. Here a step is an action
text of an episode. ``ExactProgressPRM`` implements it from the environment's own exact progress
signal, so a learned or LLM-judged PRM with the same two methods can replace it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from worldsmith.agents.contract import AgentEnvironment, Session
from worldsmith.envs.contract import Instance

#: Score of a step that changes nothing (a bump into a wall, a repeated look): below γ_low = 0.45,
#: so a wasted step can be critical. PROPOSED.
IDLE_SCORE = 0.25


@runtime_checkable
class StepPRM(Protocol):
    def score_steps(self, instance: Instance, steps: list[str]) -> list[float]: ...

    def first_error(self, instance: Instance, steps: list[str], threshold: float) -> int | None: ...


class ExactProgressPRM:
    """Step scores from exact progress: 1 for a step that moves closer to a solved task (or answers
    correctly), ``IDLE_SCORE`` for one that changes nothing, 0 for one that moves away, errs
    (malformed, unknown tool, bad argument, failing code) or answers wrongly."""

    def __init__(self, env: AgentEnvironment) -> None:
        self.env = env

    def score_steps(self, instance: Instance, steps: list[str]) -> list[float]:
        session = Session(self.env, instance, max_turns=len(steps) + 1)
        scores = []
        for text in steps:
            if session.done:
                scores.append(0.0)  # a step after the answer is never progress
                continue
            before, errors = session.progress, _failures(session)
            session.act(text)
            turn = session.episode.turns[-1]
            failed = turn.kind in ("malformed", "unknown_tool") or bool(turn.error) or _failures(session) > errors
            after = session.progress
            if turn.kind == "answer":
                scores.append(1.0 if session.episode.reward == 1.0 else 0.0)
            elif failed or after < before:
                scores.append(0.0)
            else:
                scores.append(1.0 if after > before else IDLE_SCORE)
        return scores

    def score_candidate(self, instance: Instance, prefix: list[str], action: str) -> float:
        """The score of ``action`` taken after ``prefix``."""
        return self.score_steps(instance, [*prefix, action])[-1]

    def first_error(self, instance: Instance, steps: list[str], threshold: float) -> int | None:
        for i, score in enumerate(self.score_steps(instance, steps)):
            if score < threshold:
                return i
        return None


def _failures(session: Session) -> int:
    """Failed steps so far (a cut observation is not a failure of the step)."""
    counts = session.episode.errors
    return sum(counts.values()) - counts["observation_truncated"]
