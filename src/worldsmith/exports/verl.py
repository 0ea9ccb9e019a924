"""Environments for verl: parquet rows in verl's layout and a ``compute_score`` reward module.

Each row has the fields verl's RL dataset and reward manager read:

- ``data_source``: ``"worldsmith/<env>"``
- ``prompt``: the problem as a chat, ``[{"role": "user", "content": ...}]``
- ``ability``: ``"reasoning"``
- ``reward_model``: ``{"style": "rule", "ground_truth": <reference answer>}``
- ``extra_info``: ``{"split", "index", "env", "seed", "difficulty"}``: the problem's coordinates

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` from the file named
by ``custom_reward_function.path`` (function ``custom_reward_function.name``), loading that file on
its own as a module. ``export_verl`` writes ``worldsmith_reward.py`` beside the parquet files: a
two-line module whose ``compute_score`` is the one below. The score is the environment's own grade
of the response (``exports.common.Grader``), the problem sampled again from ``extra_info``; the
reference in the row must match the re-sampled one, so a dataset from another version of an
environment is refused instead of graded against the wrong problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from worldsmith.exports.common import SOURCE_PREFIX, EnvSpec, Grader, Problem, manifest, problems

#: The reward module ``export_verl`` writes: it only forwards to this one.
REWARD_MODULE = '''"""worldsmith's grades as verl's compute_score (custom_reward_function.path=this file)."""

from worldsmith.exports.verl import compute_score  # noqa: F401
'''

_GRADER: Grader | None = None


def verl_records(rows: Sequence[Problem], split: str) -> list[dict[str, Any]]:
    """One verl row per problem (see the module doc)."""
    return [{"data_source": SOURCE_PREFIX + p.env,
             "prompt": [{"role": "user", "content": p.prompt}],
             "ability": "reasoning",
             "reward_model": {"style": "rule", "ground_truth": p.reference},
             "extra_info": {"split": split, "index": p.index, **p.coordinates}}
            for p in rows]


def compute_score(data_source: str, solution_str: str, ground_truth: str,
                  extra_info: Mapping[str, Any] | None = None, **kwargs: Any) -> float:
    """verl's reward signature: the environment's grade, in [0, 1], of ``solution_str``.

    Raises ``ValueError`` for a row worldsmith did not export (no coordinates in ``extra_info``, a
    ``data_source`` naming another environment, or a ground truth that is not the problem's
    reference); a malformed or wrong solution scores 0.
    """
    global _GRADER
    if not extra_info or not {"env", "seed", "difficulty"} <= set(extra_info):
        raise ValueError(f"{data_source}: extra_info lacks the env/seed/difficulty of a worldsmith export")
    env = str(extra_info["env"])
    if data_source != SOURCE_PREFIX + env:
        raise ValueError(f"data_source {data_source!r} does not name the row's environment {env!r}")
    if _GRADER is None:
        _GRADER = Grader()
    inst = _GRADER.instance(env, extra_info["seed"], float(extra_info["difficulty"]))
    if ground_truth != inst.reference:
        raise ValueError(f"{data_source} seed {inst.seed}: ground truth {str(ground_truth)[:40]!r} is not this "
                         "problem's reference (exported by another version of the environment?)")
    return _GRADER.reward(env, inst.seed, inst.difficulty, solution_str)


def export_verl(specs: Sequence[EnvSpec], n: int, split: str, out: str | Path, progress: bool = False) -> dict:
    """Write ``out/<split>.parquet``, ``out/worldsmith_reward.py`` and ``out/manifest.json``;
    returns the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = problems(specs, n, split, progress=progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"{split}.parquet"
    pq.write_table(pa.Table.from_pylist(verl_records(rows, split)), data)
    (out / "worldsmith_reward.py").write_text(REWARD_MODULE)
    info = manifest("verl", specs, rows, split) | {
        "data": data.name, "custom_reward_function": {"path": "worldsmith_reward.py", "name": "compute_score"}}
    (out / "manifest.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
