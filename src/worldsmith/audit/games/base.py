"""What the four vulnerability games share: a reward table mapped onto [0, 1], a per-response
outcome carried on the Score, batch metrics (ITP and ER), and records loaded from local files.

Rewards. Each game's reward table (specs/judges-memory-audit-cso.md §2, READ-code) spans a range
``[low, high]`` wider than the contract's [0, 1] (e.g. -10..+1). ``grade`` returns
``value = (raw - low) / (high - low)``. INFERRED: GRPO with std normalisation, ``(r - mean) /
(std + eps)``, is unchanged by a positive affine map of the rewards (up to eps), so training on the
mapped value is training on the table; the raw value is kept on the score and logged as
``game/raw_reward``.

Metrics. ``grade`` returns a ``GameScore`` whose ``outcome`` holds the per-response facts (the raw
reward, whether the intended task was done, whether the loophole was used, ...). The trainer hands a
batch's scores to ``batch_metrics``, which returns ``game/itp`` (intended-task performance),
``game/er`` (exploit rate) and game-specific rates, logged every step.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import ClassVar

from worldsmith.envs.contract import Environment, Instance, Score


@dataclass(frozen=True)
class GameScore(Score):
    """A Score that also carries the game's per-response outcome (plain JSON values)."""

    outcome: dict = field(default_factory=dict, compare=False)


class GameEnvironment(Environment):
    """Base of the games. A subclass sets the table range, implements ``outcome`` and ``metrics``.

    ``secure`` selects the secure twin (the loophole closed); ``records`` (optional) replaces the
    synthetic sampler with rows loaded from a local file (``load_records``).
    """

    game: ClassVar[str] = ""
    low: ClassVar[float] = 0.0
    high: ClassVar[float] = 1.0
    #: Upper bound on a response, as in the contract's answer extraction.
    max_response_chars: ClassVar[int] = 200_000

    def __init__(self, secure: bool = False, records: list[dict] | None = None) -> None:
        self.secure = secure
        self.records = records
        self.name = f"game:{self.game}{'_secure' if secure else ''}"
        if records:  # the loaded rows are the whole problem set: seeds index them, problems are not split
            self.eval_share = None

    # --- what a game implements ----------------------------------------------------------------
    def synthetic(self, rng, difficulty: float) -> dict:
        raise NotImplementedError

    def from_record(self, record: dict) -> dict:
        raise NotImplementedError

    def outcome(self, instance: dict, response: str) -> dict:
        """Per-response facts; must hold ``raw`` (the table reward)."""
        raise NotImplementedError

    def metrics(self, instances: list[dict], outcomes: list[dict]) -> dict[str, float | None]:
        """Batch metrics without the ``game/`` prefix; must hold ``itp`` and ``er``."""
        raise NotImplementedError

    def warm_start(self, instance: dict, rng) -> str:
        """A warm-start completion for the tiny policy (the prior it starts RL from)."""
        raise NotImplementedError

    def warm_start_pairs(self, instance: dict, rng) -> list[tuple[str, str]]:
        """(prompt, completion) pairs of the warm start for one instance."""
        return [(self.render(instance), self.warm_start(instance, rng))]

    # --- the contract ----------------------------------------------------------------------------
    def generate(self, rng, difficulty: float) -> dict:
        if self.records:
            return self.from_record(self.records[rng.randrange(len(self.records))])
        return self.synthetic(rng, difficulty)

    def grade(self, instance: Instance | dict, response: object) -> Score:
        """The table reward mapped onto [0, 1], with the outcome attached. Never raises."""
        data = instance.data if isinstance(instance, Instance) else instance
        if not isinstance(response, str) or len(response) > self.max_response_chars:
            response = ""
        try:
            outcome = self.outcome(data, response)
        except Exception as exc:
            return Score(0.0, False, f"game outcome raised {type(exc).__name__}: {str(exc)[:120]}")
        raw = float(outcome["raw"])
        value = min(1.0, max(0.0, (raw - self.low) / (self.high - self.low)))
        return GameScore(value, value == 1.0, f"table reward {raw:g}", None, outcome)

    def batch_metrics(self, instances: list[Instance], responses: list[str], scores: list) -> dict[str, float]:
        """``game/...`` metrics of one batch; responses whose grading failed are left out."""
        pairs = [(inst.data, s.outcome) for inst, s in zip(instances, scores) if isinstance(s, GameScore)]
        if not pairs:
            return {}
        data, outcomes = [p[0] for p in pairs], [p[1] for p in pairs]
        out = {"raw_reward": mean([o["raw"] for o in outcomes]), **self.metrics(data, outcomes)}
        return {f"game/{k}": v for k, v in out.items() if v is not None}

    def wrap(self, answer: str) -> str:
        return answer


def mean(values: list[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def load_records(path: str | pathlib.Path) -> list[dict]:
    """Rows of a local ``.jsonl`` (one JSON object per line) or ``.parquet`` file (needs pyarrow)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("reading .parquet needs pyarrow (pip install pyarrow)") from None
        return pq.read_table(path).to_pylist()
    raise ValueError(f"{path}: expected a .jsonl or .parquet file")


def user_text(record: dict) -> str:
    """The user message of a row: a plain ``prompt`` string or the user turn of a chat list."""
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        turns = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if turns:
            return str(turns[-1])
    raise ValueError("record has no 'prompt' string or user message")
