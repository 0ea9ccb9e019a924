"""Environments as reasoning-gym-style procedural datasets.

``WorldsmithDataset`` has the API of reasoning-gym's datasets: ``len(ds)``, ``ds[i]`` returning
``{"question", "answer", "metadata"}``, iteration, and ``ds.score_answer(answer, entry)`` for an
answer already extracted from a response. ``metadata`` carries ``source_dataset``
(``"worldsmith/<env>"``), ``source_index`` and the problem's coordinates (``env``, ``seed``,
``difficulty``), from which ``score_answer`` samples the problem again and grades ``answer`` with the
environment's own ``grade``; the entry's ``answer`` is never used to grade.

>>> ds = WorldsmithDataset("gcd_euclid", size=4)
>>> entry = ds[0]
>>> ds.score_answer(entry["answer"], entry)
1.0
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from worldsmith.exports.common import SOURCE_PREFIX, EnvSpec, Grader, manifest, parse_env_specs, problems


class WorldsmithDataset:
    """``size`` problems of ``split`` over a mixture of environments, reasoning-gym style."""

    def __init__(self, specs: str | Sequence[EnvSpec], size: int = 500, split: str = "train",
                 environments: Mapping[str, Any] | None = None, progress: bool = False) -> None:
        self.specs = parse_env_specs(specs) if isinstance(specs, str) else list(specs)
        self.split = split
        self._problems = problems(self.specs, size, split, environments, progress)
        self._grader = Grader(environments)

    def __len__(self) -> int:
        return len(self._problems)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        p = self._problems[idx]
        return {"question": p.prompt, "answer": p.reference,
                "metadata": {"source_dataset": SOURCE_PREFIX + p.env, "source_index": p.index, "split": self.split,
                             "problem_id": p.problem_id, **p.coordinates}}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    def score_answer(self, answer: str | None, entry: Mapping[str, Any]) -> float:
        """The environment's grade, in [0, 1], of the extracted ``answer`` to ``entry``; ``None`` scores 0."""
        if answer is None:
            return 0.0
        meta = entry["metadata"]
        env = str(meta["env"])
        inst = self._grader.instance(env, meta["seed"], meta["difficulty"])
        response = self._grader.environment(env).wrap(str(answer))
        return self._grader.grade(env, inst.seed, inst.difficulty, response).value


def export_rg(specs: Sequence[EnvSpec], n: int, split: str, out: str | Path, progress: bool = False) -> dict:
    """Write ``out/<split>.jsonl`` (one entry per line) and ``out/manifest.json``; returns the manifest."""
    ds = WorldsmithDataset(specs, n, split, progress=progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{split}.jsonl", "w") as fh:
        for entry in ds:
            fh.write(json.dumps(entry) + "\n")
    info = manifest("rg", specs, ds._problems, split) | {
        "data": f"{split}.jsonl", "dataset": "worldsmith.exports.rg:WorldsmithDataset"}
    (out / "manifest.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
