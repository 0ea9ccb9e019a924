"""Environments as a ``verifiers`` taskset: tasks from worldsmith's problems, scored by its grades.

``verifiers`` (the v1 API, ``import verifiers.v1 as vf``) pairs a *taskset* (the rows) with each
task's ``@vf.reward`` methods (the rubric). ``WorldsmithTaskset`` yields one ``WorldsmithTask`` per
problem of ``split`` over a mixture of environments (``exports.common.problems``); the task's one
reward, ``worldsmith_grade``, is the environment's own grade of the rollout's final reply, the
problem sampled again from the task's coordinates (``exports.common.Grader``); the ``reference``
field is kept for reading and is not used to grade.

verifiers finds a taskset by the name of a top-level module that lists its ``Taskset`` subclass in
``__all__``; ``export_verifiers`` writes such a module, ``worldsmith_taskset.py``, beside an
``eval.toml`` that names it, so with that folder on ``PYTHONPATH``::

    vf-eval @ OUT/eval.toml --model NAME --client.base-url URL/v1 --client.api-key-var VAR --no-push

Override the problems with ``--env.taskset.envs`` (``NAME[@DIFFICULTY],...``), ``--env.taskset.n``
and ``--env.taskset.split``. Importing this module imports ``verifiers``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import verifiers.v1 as vf

from worldsmith.exports.common import EnvSpec, Grader, manifest, parse_env_specs, problems

_GRADER = Grader()


class WorldsmithData(vf.TaskData):
    """One worldsmith problem: its coordinates (what grading samples again) and its reference."""

    env: str
    seed: int
    difficulty: float
    reference: str = ""


class WorldsmithTask(vf.Task[WorldsmithData]):
    """A worldsmith problem as a single-turn task; its reward is the environment's grade."""

    @vf.reward(weight=1.0)
    async def worldsmith_grade(self, trace: vf.Trace) -> float:
        data = self.data
        return _GRADER.reward(data.env, data.seed, data.difficulty, trace.last_reply)


class WorldsmithTasksetConfig(vf.TasksetConfig):
    """Which problems the taskset holds."""

    envs: str = "gcd_euclid"
    """NAME[@DIFFICULTY][,NAME[@DIFFICULTY]...]: a mixture of environments in equal shares."""
    n: int = 100
    """How many problems."""
    split: Literal["train", "eval"] = "eval"
    """train, or eval: the held-out problems no train seed draws."""


class WorldsmithTaskset(vf.Taskset[WorldsmithTask, WorldsmithTasksetConfig]):
    """``n`` problems of ``split`` over the mixture ``envs`` (see the module doc)."""

    def load(self) -> list[WorldsmithTask]:
        rows = problems(parse_env_specs(self.config.envs), self.config.n, self.config.split)
        return [WorldsmithTask(WorldsmithData(prompt=p.prompt, id=f"{p.env}/{p.seed}", name=f"{p.env}#{p.index}",
                                              env=p.env, seed=p.seed, difficulty=p.difficulty, reference=p.reference),
                               self.config.task)
                for p in rows]


def taskset(specs: str | Sequence[EnvSpec], n: int, split: str = "eval") -> WorldsmithTaskset:
    """The taskset of ``n`` problems of ``split`` over ``specs``."""
    envs = specs if isinstance(specs, str) else ",".join(str(s) for s in specs)
    parse_env_specs(envs)  # an unknown name or a bad difficulty fails here
    return WorldsmithTaskset(WorldsmithTasksetConfig(id=__name__, envs=envs, n=n, split=split))


#: The taskset module ``export_verifiers`` writes: verifiers imports a taskset by a top-level name.
TASKSET_MODULE = f'''"""worldsmith environments as a verifiers taskset (vf-eval @ eval.toml, this folder on PYTHONPATH)."""

from {__name__} import WorldsmithTaskset

__all__ = ["WorldsmithTaskset"]
'''
TASKSET_ID = "worldsmith_taskset"


def export_verifiers(specs: Sequence[EnvSpec], n: int, split: str, out: str | Path, progress: bool = False) -> dict:
    """Write ``out/worldsmith_taskset.py`` (the taskset verifiers imports), ``out/eval.toml`` (a
    ``vf-eval @ eval.toml`` config naming it: the problems, and the plain chat harness run as a local
    subprocess) and ``out/manifest.json``; returns the manifest. The tasks are sampled when the
    taskset loads, so the export holds no copy of them."""
    rows = problems(specs, n, split, progress=progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    envs = ",".join(str(s) for s in specs)
    (out / f"{TASKSET_ID}.py").write_text(TASKSET_MODULE)
    (out / "eval.toml").write_text(
        f"# PYTHONPATH={out}:$PYTHONPATH vf-eval @ eval.toml --model NAME --client.base-url URL/v1 --no-push\n"
        f"[env.taskset]\nid = \"{TASKSET_ID}\"\nenvs = \"{envs}\"\nn = {n}\nsplit = \"{split}\"\n\n"
        "[env.agent.harness]\nid = \"null\"\n\n[env.agent.runtime]\ntype = \"subprocess\"\n")
    info = manifest("verifiers", specs, rows, split) | {"taskset": TASKSET_ID, "config": "eval.toml"}
    (out / "manifest.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


__all__ = ["WorldsmithTaskset"]
