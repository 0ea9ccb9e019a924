"""The EvoEnv loop: one policy writes environments and learns in them (specs/rl-algorithms.md §1.5-§1.6).

Each step of the trainer (``synth_trainer``) has two roles. The generator role is the method
plug-in ``GeneratorRole`` (``synth/generator.py``); the settings are ``SynthConfig``
(``synth/config.py``):

- **generator**: ``synth.prompts_per_step`` generator prompts, each showing k exemplar programs
  from the pool, ``synth.group_size`` completions each (``proposer: policy``); or the next
  proposals of a folder of programs (``proposer: corpus``). Every proposal goes through the
  admission funnel (gates L1-L5, self-review, calibration against the current solver, novelty)
  and gets the generator reward of the spec's table; admitted programs join the pool.
- **solver**: the usual GRPO batch from the pool, where at least ``synth.seed_floor`` of the
  prompts come from the seed environments.

With the policy as generator, the update minimises L_solver + ``generator_scale`` * L_generator
(role-conditioned GRPO: the generator's advantages are group-relative within each generator
prompt). Admitted environments run only in the sandbox, frozen by hash in the archive. They are
retired when saturated (moving pass rate at or above ``retire.saturation``) or after
``retire.max_steps`` steps in the pool, and quarantined if they stop producing instances.

Run folder: ``config.yaml``, ``metrics.jsonl`` (solver, generator and ``synth/*`` diagnostics per
step), ``funnel.jsonl`` (every proposal with its step, outcome and reward), ``archive.sqlite``,
``funnel.png``, ``training.png``, ``summary.json``, ``checkpoints/`` and ``policy/``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from worldsmith.rl.pool import EnvPool
from worldsmith.rl.trainer import Trainer
from worldsmith.runs import RunDir
from worldsmith.synth.archive import Archive
from worldsmith.synth.config import ADMITTED_PREFIX, SynthConfig
from worldsmith.synth.generator import AdmittedEnvironment, GeneratorRole
from worldsmith.synth.proposers import seed_exemplars
from worldsmith.synth.sandboxed_env import SandboxedEnvError, SandboxedEnvironment


def synth_trainer(cfg: SynthConfig, model, tokenizer, archive: Archive, run: RunDir, ref_model=None,
                  accelerator=None) -> Trainer:
    """The RL trainer of an EvoEnv run: a pool of the seed environments (at least ``synth.seed_floor``
    of each batch) that admitted programs join, and the
    ``GeneratorRole`` plug-in writing into ``archive`` and ``run`` (``trainer.method("generator")``)."""
    return Trainer(cfg, model, tokenizer, ref_model=ref_model, accelerator=accelerator,
                   pool=EnvPool(cfg.pool, floor=cfg.synth.seed_floor),
                   methods=[lambda trainer: GeneratorRole(trainer, archive, run)])


def evaluate_programs(cfg: SynthConfig, policy, tokenizer, archive_path: str | Path, ids: Sequence[int],
                      progress: bool = False) -> dict | None:
    """Held-out accuracy (eval-split seeds, ``cfg.eval`` settings) of ``policy`` on archived
    programs at the calibration difficulty, run in the sandbox: greedy and sampled accuracy over all
    of them, and per program (``synth-<id>``). A program that no longer samples is skipped and
    listed under ``failed``. None when ``ids`` is empty."""
    from worldsmith.eval.runner import evaluate
    from worldsmith.policy.hf_backend import HFBackend

    if not ids:
        return None
    e, d = cfg.eval, cfg.synth.funnel.calibration.difficulty
    backend = HFBackend(policy, tokenizer, batch_size=cfg.sampling.batch_size)
    per, failed = {}, {}
    with Archive(archive_path) as archive:
        for cid in ids:
            cand = archive.runnable(cid)
            if cand is None:
                failed[f"{ADMITTED_PREFIX}{cid}"] = "quarantined: its stored source does not match its sha256"
                continue
            env = AdmittedEnvironment(SandboxedEnvironment(cand.source, cand.name or str(cid),
                                                           mode=cfg.synth.funnel.mode,
                                                           limits=cfg.synth.funnel.gates.limits()), cid)
            try:
                result = evaluate(backend, [(env.name, d)], instances=e.instances, samples=e.samples,
                                  temperature=e.temperature, max_new_tokens=cfg.sampling.max_new_tokens,
                                  greedy=e.greedy, seed=cfg.train.seed, progress=progress,
                                  environments={env.name: env})
            except SandboxedEnvError as exc:
                failed[env.name] = str(exc)[:300]
                continue
            per[env.name] = {"name": cand.name, "accuracy_greedy": result["accuracy_greedy"],
                             "accuracy_sampled": result["accuracy_sampled"]}

    def mean(key: str) -> float | None:
        values = [v[key] for v in per.values() if v[key] is not None]
        return sum(values) / len(values) if values else None

    return {"accuracy_greedy": mean("accuracy_greedy"), "accuracy_sampled": mean("accuracy_sampled"),
            "instances_each": e.instances, "per_program": per, "failed": failed}


def check_context(cfg: SynthConfig, model, tokenizer) -> None:
    """Refuse, in one line, a policy whose context cannot hold a generator prompt and program."""
    if cfg.synth.proposer != "policy":
        return
    limit = getattr(model.config, "max_position_embeddings", None)
    if not limit:
        return
    from worldsmith.synth.proposers import choose_exemplars, render_generator_prompt

    sources = seed_exemplars()
    longest = sorted(sources, key=len)[-cfg.synth.exemplars:] if cfg.synth.exemplars else []
    prompt = render_generator_prompt(choose_exemplars(longest, cfg.synth.exemplars, random.Random(0)))
    need = len(tokenizer(prompt)["input_ids"]) + cfg.synth.max_new_tokens
    if need > limit:
        raise ValueError(f"synth: a generator prompt with {cfg.synth.exemplars} exemplars plus "
                         f"synth.max_new_tokens={cfg.synth.max_new_tokens} needs up to {need} tokens, but the "
                         f"policy's context is {limit}; use a larger model, fewer synth.exemplars, or "
                         f"synth.proposer=corpus")
