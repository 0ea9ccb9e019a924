"""The RL spine: sample instances -> generate -> grade -> advantages -> policy loss -> update.

``Trainer.step`` is one top-to-bottom pass of that pipeline; ``Trainer.fit`` loops it with logging,
checkpoints and a progress bar. Algorithms come from the registries by name; the trainer holds no
algorithm of its own.

Shapes: B = prompts_per_step * group_size completions, T = longest completion, P = longest prompt.
"""

from __future__ import annotations

import math
import pathlib
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from worldsmith.configuration import dump
from worldsmith.envs.contract import Instance, stable_hash
from worldsmith.policy.backend import Rollouts, SamplingParams
from worldsmith.policy.hf_backend import HFBackend, sequence_logprobs
from worldsmith.rl.advantages import get_advantage
from worldsmith.rl.config import RunConfig
from worldsmith.rl.losses import get_loss
from worldsmith.rl.pool import EnvPool
from worldsmith.rl.reward_check import safe_grade, validate_rewards
from worldsmith.runs import RunDir, atomic_write_bytes

PHASES = ("generate", "grade", "old_logprobs", "ref_logprobs", "backward", "optimizer")


@dataclass
class Batch:
    """One step's rollouts with everything the loss needs (all tensors on the training device)."""

    instances: list[Instance]  # B, each prompt repeated group_size times
    rollouts: Rollouts
    rewards: torch.Tensor  # (B,)
    passed: list[bool]  # B
    group_ids: torch.Tensor  # (B,)
    advantages: torch.Tensor  # (B, T)
    old_logp: torch.Tensor  # (B, T)
    ref_logp: torch.Tensor | None  # (B, T)


class PhaseTimer:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start


def plain_sampling(params: SamplingParams) -> bool:
    """Whether sampled tokens were drawn from the temperature-1 policy itself, so the behaviour
    log-probs already are the old-policy log-probs and no second forward is needed."""
    return params.temperature == 1.0 and params.top_k == 0 and params.top_p == 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, cfg, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warm, kind = cfg.warmup_steps, cfg.schedule

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 1.0 - progress if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Trainer:
    """GRPO-family training of ``model`` on ``cfg.pool``. Call ``fit(run_dir)``.

    ``ref_model`` is needed only when ``cfg.train.loss_cfg.kl_coef > 0``.
    """

    def __init__(self, cfg: RunConfig, model, tokenizer, ref_model=None, accelerator: Accelerator | None = None):
        self.cfg = cfg
        self.acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        if cfg.train.prompts_per_step % self.acc.num_processes:
            raise ValueError(f"train.prompts_per_step ({cfg.train.prompts_per_step}) must be divisible by "
                             f"the number of processes ({self.acc.num_processes})")
        self.tokenizer = tokenizer
        trainable = [p for p in model.parameters() if p.requires_grad]
        o = cfg.optim
        optimizer = torch.optim.AdamW(trainable, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        self.model, self.optimizer = self.acc.prepare(model, optimizer)
        self.scheduler = make_scheduler(self.optimizer, o, cfg.train.steps)
        self.ref_model = ref_model
        if cfg.train.loss_cfg.kl_coef > 0:
            if ref_model is None:
                raise ValueError("train.loss_cfg.kl_coef > 0 needs a reference model")
            self.ref_model = ref_model.to(self.acc.device).eval().requires_grad_(False)
        self.pool = EnvPool(cfg.pool)
        self.env_of = {env.name: env for env in self.pool.envs.values()}
        self.advantage_fn = get_advantage(cfg.train.advantage)
        self.loss_fn = get_loss(cfg.train.loss)
        s = cfg.sampling
        self.backend = HFBackend(self.acc.unwrap_model(self.model), tokenizer, device=self.acc.device, batch_size=s.batch_size)
        self.step_index = 0

    # --- one step --------------------------------------------------------------------------------
    def sampling_params(self, step: int) -> SamplingParams:
        s = self.cfg.sampling
        seed = stable_hash("rollout", self.cfg.train.seed, step, self.acc.process_index) % 2**62
        return SamplingParams(s.max_new_tokens, s.temperature, s.top_k, s.top_p, seed=seed)

    def collect(self, step: int, timer: PhaseTimer) -> tuple[Batch, dict]:
        """Sample prompts, generate a group per prompt, grade, validate rewards, compute advantages."""
        t = self.cfg.train
        # every process draws the same batch and takes its own share of the prompts
        instances = self.pool.sample_batch(t.prompts_per_step, step, t.seed)
        mine = instances[self.acc.process_index :: self.acc.num_processes]
        grouped = [inst for inst in mine for _ in range(t.group_size)]  # B
        params = self.sampling_params(step)
        with timer("generate"):
            rollouts = self.backend.generate([inst.prompt for inst in grouped], params)
        with timer("grade"):
            scores = [safe_grade(self.env_of[inst.env], inst, text, t.grade_timeout_s)
                      for inst, text in zip(grouped, rollouts.texts)]
            rewards, reward_metrics = validate_rewards(scores, failure_value=t.failure_reward)  # (B,)
        passed = [bool(getattr(s, "passed", False)) for s in scores]
        device = self.acc.device
        rewards = rewards.to(device)
        mask = rollouts.completion_mask  # (B, T)
        group_ids = torch.arange(len(mine), device=device).repeat_interleave(t.group_size)  # (B,)
        advantages = self.advantage_fn(rewards, mask, group_ids, t.advantage_cfg)  # (B, T)
        with timer("old_logprobs"):
            if plain_sampling(params):
                old_logp = rollouts.behaviour_logp  # drawn from the policy itself: no second forward
            else:
                old_logp = self._logprobs(self.acc.unwrap_model(self.model), rollouts)
        ref_logp = None
        if self.ref_model is not None:
            with timer("ref_logprobs"):
                ref_logp = self._logprobs(self.ref_model, rollouts)
        pool_metrics = self._update_pool(instances, step, passed)
        grp = rewards.view(-1, t.group_size)
        metrics = {
            "reward/mean": float(rewards.mean()),
            "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
            "accuracy/train": sum(passed) / len(passed),
            "groups/zero_variance_fraction": float((grp.std(dim=1) == 0).float().mean()),
            "reward/invalid": reward_metrics["invalid"],
            "completion_tokens/mean": float(mask.sum(1).float().mean()),
            "completion/finished_fraction": float(rollouts.finished.float().mean()) if rollouts.finished is not None else None,
            # an unbiased estimate of the sampling distribution's entropy from the sampled tokens
            "entropy": float(-(rollouts.behaviour_logp * mask).sum() / mask.sum().clamp_min(1)),
            **{f"reward/{k}": v for k, v in reward_metrics.items() if k.startswith("invalid_") and v},
            **pool_metrics,
        }
        batch = Batch(grouped, rollouts, rewards, passed, group_ids, advantages, old_logp, ref_logp)
        return batch, metrics

    def _update_pool(self, instances: list[Instance], step: int, passed: list[bool]) -> dict:
        """Steer the pool with every process's outcomes, so all processes keep the same pool."""
        g = self.cfg.train.group_size
        per_prompt = [sum(passed[i : i + g]) / g for i in range(0, len(passed), g)]
        if self.acc.num_processes > 1:
            from accelerate.utils import gather_object

            pairs = gather_object([(self.acc.process_index + k * self.acc.num_processes, p)
                                   for k, p in enumerate(per_prompt)])
            pairs.sort()
            per_prompt = [p for _, p in pairs]
        return self.pool.update(instances[: len(per_prompt)], per_prompt)

    @torch.no_grad()
    def _logprobs(self, model, r: Rollouts) -> torch.Tensor:
        out = []
        mb = self.cfg.train.microbatch_size
        for s in range(0, len(r), mb):
            out.append(sequence_logprobs(model, r.prompt_ids[s : s + mb], r.prompt_mask[s : s + mb],
                                         r.completion_ids[s : s + mb], r.completion_mask[s : s + mb],
                                         temperature=self._logp_temperature()))
        return torch.cat(out)

    def _logp_temperature(self) -> float:
        temp = self.cfg.sampling.temperature
        return temp if temp > 0 else 1.0

    def update(self, batch: Batch, step: int, timer: PhaseTimer) -> dict:
        """PPO epochs over minibatches of the rollout batch, accumulating over microbatches."""
        t, r = self.cfg.train, batch.rollouts
        n = len(r)
        rng = random.Random(stable_hash("minibatch", t.seed, step))
        loss_metrics: list[dict] = []
        grad_norms = []
        self.model.train()
        for _ in range(t.ppo_epochs):
            order = list(range(n))
            rng.shuffle(order)
            for start in range(0, n, t.minibatch_size):
                mini = order[start : start + t.minibatch_size]
                # bucket by length inside the minibatch so each microbatch carries little padding
                lengths = r.completion_mask.sum(1)
                mini.sort(key=lambda i: int(lengths[i]))
                micro = [mini[s : s + t.microbatch_size] for s in range(0, len(mini), t.microbatch_size)]
                with timer("backward"):
                    for idx in micro:
                        ix = torch.tensor(idx, device=self.acc.device)
                        width = int(lengths[ix].max())
                        mask = r.completion_mask[ix, :width]  # (b, w)
                        logp = sequence_logprobs(self.model, r.prompt_ids[ix], r.prompt_mask[ix],
                                                 r.completion_ids[ix, :width], mask,
                                                 temperature=self._logp_temperature())  # (b, w)
                        ref = batch.ref_logp[ix, :width] if batch.ref_logp is not None else None
                        loss, m = self.loss_fn(logp, batch.old_logp[ix, :width], batch.advantages[ix, :width],
                                               mask, t.loss_cfg, ref_logp=ref)
                        self.acc.backward(loss * (len(idx) / len(mini)))
                        loss_metrics.append(m)
                with timer("optimizer"):
                    if self.cfg.optim.grad_clip is not None:
                        norm = self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
                        grad_norms.append(float(norm))
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.model.eval()
        keys = {k for m in loss_metrics for k in m}
        out = {f"loss/{k}": sum(m.get(k, 0.0) for m in loss_metrics) / len(loss_metrics) for k in sorted(keys)}
        if "loss/kl" in out:
            out["kl"] = out["loss/kl"]
        if grad_norms:
            out["grad_norm"] = sum(grad_norms) / len(grad_norms)
        out["lr"] = self.scheduler.get_last_lr()[0]
        return out

    def step(self, step: int) -> dict:
        timer = PhaseTimer()
        started = time.perf_counter()
        batch, metrics = self.collect(step, timer)
        metrics.update(self.update(batch, step, timer))
        metrics.update({f"time/{k}": v for k, v in timer.seconds.items()})
        metrics["time/step"] = time.perf_counter() - started
        return {"step": step, **metrics}

    # --- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step_index,
            "model": self.acc.unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "pool": self.pool.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.acc.unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.pool.load_state_dict(state["pool"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        self.step_index = int(state["step"])

    def save_checkpoint(self, run: RunDir) -> pathlib.Path:
        import io

        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        path = run.checkpoint_dir / f"step_{self.step_index}.pt"
        atomic_write_bytes(path, buffer.getvalue())
        kept = sorted(run.checkpoint_dir.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for old in kept[: -self.cfg.train.keep_checkpoints]:
            old.unlink(missing_ok=True)
        return path

    def resume(self, run: RunDir) -> bool:
        """Continue from the run's latest checkpoint, if there is one."""
        path = run.latest_checkpoint()
        if path is None:
            return False
        self.load_state_dict(torch.load(path, map_location=self.acc.device, weights_only=False))
        run.truncate_metrics(self.step_index - 1)
        return True

    # --- the loop --------------------------------------------------------------------------------
    def fit(self, run: RunDir, *, progress: bool = True, on_step=None) -> list[dict]:
        """Train up to ``cfg.train.steps`` steps, logging each to ``metrics.jsonl``.

        ``on_step(trainer, row)`` (optional) runs after each step on the main process (e.g. evals).
        """
        t = self.cfg.train
        main = self.acc.is_main_process
        if main:
            dump(self.cfg, run.root / "config.yaml")
        rows = []
        bar = tqdm(total=t.steps, initial=self.step_index, desc="train", disable=not (progress and main),
                   dynamic_ncols=True)
        while self.step_index < t.steps:
            row = self.step(self.step_index)
            self.step_index += 1
            if on_step is not None and main:
                on_step(self, row)
            if main:
                run.log(row)
            rows.append(row)
            bar.update(1)
            bar.set_postfix(reward=f"{row['reward/mean']:.3f}", acc=f"{row['accuracy/train']:.2f}",
                            H=f"{row['entropy']:.2f}", s=f"{row['time/step']:.2f}")
            every = t.checkpoint_every
            if main and ((every and self.step_index % every == 0) or self.step_index == t.steps):
                self.save_checkpoint(run)
        bar.close()
        self.acc.wait_for_everyone()
        return rows
