"""Environments for TRL: a ``datasets.Dataset`` and a reward function ``GRPOTrainer`` accepts.

>>> from worldsmith.exports.trl import trl_dataset, reward_function
>>> dataset = trl_dataset("gcd_euclid,arithmetic_chain@0.5", n=512)            # doctest: +SKIP
>>> trainer = GRPOTrainer(model=..., reward_funcs=reward_function(), train_dataset=dataset, args=...)  # doctest: +SKIP

Rows hold ``prompt`` (text, or with ``chat=True`` one user message) and the coordinates ``env``,
``seed``, ``difficulty``; TRL hands every column but the prompt to reward functions as keyword
lists, so the reward re-samples each problem from its coordinates and grades the completion with
the environment's own ``grade`` (``exports.common.Grader``). ``reference`` is kept for reading and
is not used to grade.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from worldsmith.exports.common import EnvSpec, Grader, Problem, manifest, parse_env_specs, problems


def trl_records(rows: Sequence[Problem], chat: bool = False) -> list[dict[str, Any]]:
    """One TRL row per problem (see the module doc)."""
    return [{"prompt": [{"role": "user", "content": p.prompt}] if chat else p.prompt,
             "env": p.env, "seed": p.seed, "difficulty": p.difficulty, "reference": p.reference}
            for p in rows]


def trl_dataset(specs: str | Sequence[EnvSpec], n: int, split: str = "train", chat: bool = False,
                environments: Mapping[str, Any] | None = None):
    """``n`` problems of ``split`` over the mixture ``specs`` as a ``datasets.Dataset``."""
    from datasets import Dataset

    specs = parse_env_specs(specs) if isinstance(specs, str) else list(specs)
    return Dataset.from_list(trl_records(problems(specs, n, split, environments), chat))


def reward_function(grader: Grader | None = None):
    """A TRL reward function: ``f(prompts, completions, env, seed, difficulty, **kwargs) -> list[float]``,
    the environment's grade of each completion (in [0, 1])."""
    grader = grader or Grader()

    def worldsmith_grade(prompts, completions, env, seed, difficulty, **kwargs) -> list[float]:
        return [grader.reward(e, s, d, c) for c, e, s, d in zip(completions, env, seed, difficulty, strict=True)]

    return worldsmith_grade


def export_trl(specs: Sequence[EnvSpec], n: int, split: str, out: str | Path, chat: bool = False,
               progress: bool = False) -> dict:
    """Write the dataset to ``out`` (``Dataset.save_to_disk``, read back with ``datasets.load_from_disk``)
    and ``out/manifest.json``; returns the manifest."""
    import json

    from datasets import Dataset

    rows = problems(specs, n, split, progress=progress)
    out = Path(out)
    Dataset.from_list(trl_records(rows, chat)).save_to_disk(str(out))
    info = manifest("trl", specs, rows, split) | {"chat": chat,
                                                   "reward": "worldsmith.exports.trl:reward_function()"}
    (out / "manifest.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
