"""The RL spine: sample instances -> generate -> grade -> advantages -> policy loss -> update.

``Trainer.step`` is one top-to-bottom pass of that pipeline; ``Trainer.fit`` loops it with logging,
checkpoints and a progress bar. Algorithms come from the registries by name, and methods
(exploration, shaping, extra roles) are plug-ins whose hooks the step calls at fixed points
(``worldsmith.rl.methods``); the trainer holds no algorithm of its own.

Shapes: B = prompts_per_step * group_size completions, T = longest completion, P = longest prompt.
"""

from __future__ import annotations

import math
import pathlib
import random
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from accelerate import Accelerator

from worldsmith.configuration import dump
from worldsmith.distributed import on_main
from worldsmith.envs.contract import Instance, stable_hash
from worldsmith.policy.backend import Rollouts, SamplingParams, vision_inputs
from worldsmith.policy.hf_backend import (
    HFBackend,
    grouped_sequence_logprobs,
    sequence_logprobs,
    shares_prompts,
)
from worldsmith.progress import progress_bar
from worldsmith.rl.advantages import call_advantage, get_advantage
from worldsmith.rl.config import RunConfig
from worldsmith.rl.env_metrics import environment_metrics
from worldsmith.rl.losses import aggregation_denominator, get_loss
from worldsmith.rl.methods import LMHead, Method, StepContext, configured_methods
from worldsmith.rl.pool import EnvPool
from worldsmith.rl.reward_check import safe_grade_batch, validate_rewards
from worldsmith.runs import RunDir, atomic_write_bytes
from worldsmith.vision.images import BadImage, decode, instance_png

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
    off_policy: torch.Tensor | None = None  # (B,) bool, True on rows a method's sampler drew


class PhaseTimer:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


def plain_sampling(params: SamplingParams) -> bool:
    """Whether sampled tokens were drawn from the temperature-1 policy itself, so the behaviour
    log-probs already are the old-policy log-probs and no second forward is needed."""
    return params.temperature == 1.0 and params.top_k == 0 and params.top_p == 1.0


def contiguous_groups(group_ids: torch.Tensor, group_size: int) -> bool:
    """Whether rows g*G .. g*G+G-1 are exactly group g, for every g (G = ``group_size``)."""
    n = group_ids.shape[0]
    if group_size < 1 or n % group_size:
        return False
    return torch.equal(group_ids, torch.arange(n // group_size, device=group_ids.device).repeat_interleave(group_size))


def prefetch_grades(env_of: dict, instances: list[Instance], texts: list[str]) -> None:
    """Let environments that grade in batches (``prefetch_grades``: sandboxed programs) score all
    of their rows in one call, so the per-row grading that follows reads the verdicts."""
    rows: dict[str, list[int]] = {}
    for i, inst in enumerate(instances):
        if hasattr(env_of[inst.env], "prefetch_grades"):
            rows.setdefault(inst.env, []).append(i)
    for name, idx in rows.items():
        env_of[name].prefetch_grades([instances[i] for i in idx], [texts[i] for i in idx])


def _chunks(items: list, size: int) -> list[list]:
    return [items[s : s + size] for s in range(0, len(items), size)]


def _split(items: list, parts: int) -> list[list]:
    """``items`` in ``parts`` contiguous pieces whose sizes differ by at most one."""
    q, r = divmod(len(items), parts)
    out, start = [], 0
    for k in range(parts):
        size = q + (1 if k < r else 0)
        out.append(items[start : start + size])
        start += size
    return out


#: Loss metrics that are shares of the minibatch's loss: a minibatch's value is their sum over
#: its microbatches. The others are token means (weighted by n_tokens), or extremes.
ADDITIVE_LOSS_METRICS = ("loss", "pg_loss", "kl_loss", "n_tokens")


def _combine_micro(rows: list[dict]) -> dict:
    """One minibatch's loss metrics from its microbatches' (see ADDITIVE_LOSS_METRICS)."""
    if len(rows) == 1:
        return rows[0]
    weights = [r.get("n_tokens", 1.0) for r in rows]
    total = sum(weights) or 1.0
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if key in ADDITIVE_LOSS_METRICS:
            out[key] = sum(values)
        elif key == "ratio_min":
            out[key] = min(v for v, w in zip(values, weights) if w) if any(weights) else 0.0
        elif key == "ratio_max":
            out[key] = max(v for v, w in zip(values, weights) if w) if any(weights) else 0.0
        else:
            out[key] = sum(v * w for v, w in zip(values, weights)) / total
    return out


def _mean_metrics(rows: list[dict], prefix: str) -> dict:
    keys = {k for m in rows for k in m}
    return {f"{prefix}{k}": sum(m.get(k, 0.0) for m in rows) / len(rows) for k in sorted(keys)} if rows else {}


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

    ``tokenizer`` is the policy's processing class: a tokenizer, or for a vision-language policy its
    processor (``load_policy`` gives it), in which case each instance's image goes with its prompt
    into generation and every log-prob pass. ``ref_model`` is needed only when
    ``cfg.train.loss_cfg.kl_coef > 0``. ``pool`` replaces the
    pool built from ``cfg.pool`` (e.g. one whose membership changes during the run). The method
    plug-ins the config switches on are built here; ``methods`` adds plug-ins built by the caller
    (each a ``Method`` taking this trainer), whose hooks run after the configured ones'.
    """

    def __init__(self, cfg: RunConfig, model, tokenizer, ref_model=None, accelerator: Accelerator | None = None,
                 pool: EnvPool | None = None, methods: Sequence = ()):
        self.cfg = cfg
        self.acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        for key in ("prompts_per_step", "minibatch_size"):  # both describe the global batch
            if getattr(cfg.train, key) % self.acc.num_processes:
                raise ValueError(f"train.{key} ({getattr(cfg.train, key)}) must be divisible by "
                                 f"the number of processes ({self.acc.num_processes})")
        self.tokenizer = tokenizer
        model.zero_grad(set_to_none=True)  # a gradient left by earlier training (e.g. SFT) is not this run's
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
        self.pool = pool if pool is not None else EnvPool(cfg.pool)
        self.advantage_fn = get_advantage(cfg.train.advantage)
        self.loss_fn = get_loss(cfg.train.loss)
        s = cfg.sampling
        self.backend = HFBackend(self.acc.unwrap_model(self.model), tokenizer, device=self.acc.device, batch_size=s.batch_size)
        self._pending_metrics: dict = {}  # logged with the next step (e.g. a method's before_fit pass)
        self.step_index = 0
        self.train_seconds = 0.0  # summed time/step of the steps taken (train.time_budget_s)
        self.methods: list[Method] = [cls(self) for cls in configured_methods(cfg)]
        self.methods += [make(self) for make in methods]

    def method(self, name: str) -> Method:
        """The active method plug-in called ``name`` (KeyError when the run does not use it)."""
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(f"this run uses no method {name!r}; active: {', '.join(m.name for m in self.methods) or 'none'}")

    @property
    def env_of(self) -> dict:
        """The pool's environments by ``Environment.name`` (as in ``Instance.env``)."""
        return {env.name: env for env in self.pool.envs.values()}

    # --- one step --------------------------------------------------------------------------------
    def sampling_params(self, step: int) -> SamplingParams:
        s = self.cfg.sampling
        seed = stable_hash("rollout", self.cfg.train.seed, step, self.acc.process_index) % 2**62
        return SamplingParams(s.max_new_tokens, s.temperature, s.top_k, s.top_p, seed=seed)

    def row_seeds(self, step: int) -> tuple[int, ...]:
        """One sampling seed per completion of this process's share at ``step``, a function of the
        prompt's place in the global batch and the completion's place in its group only, so a row's
        completion is the same on any number of processes."""
        t, p, n = self.cfg.train, self.acc.process_index, self.acc.num_processes
        return tuple(stable_hash("rollout", t.seed, step, prompt, j) % 2**62
                     for prompt in range(p, t.prompts_per_step, n) for j in range(t.group_size))

    def collect(self, step: int, timer: PhaseTimer) -> tuple[Batch, dict]:
        """Sample prompts, generate a group per prompt, grade, validate rewards, compute advantages.
        The methods' hooks run at the points named in ``worldsmith.rl.methods``. The metrics
        describe the global batch (every process's share)."""
        t = self.cfg.train
        # every process draws the same batch and takes its own share of the prompts
        instances = self.pool.sample_batch(t.prompts_per_step, step, t.seed)
        mine = instances[self.acc.process_index :: self.acc.num_processes]
        grouped = [inst for inst in mine for _ in range(t.group_size)]  # B
        ctx = StepContext(step, grouped, replace(self.sampling_params(step), row_seeds=self.row_seeds(step)))
        with timer("generate"):
            ctx.rollouts, ctx.off_policy = self._generate(grouped, ctx.params)  # off_policy (B,) bool
        with timer("grade"):
            ctx.scores, rewards, reward_metrics = self.grade(grouped, ctx.rollouts.texts)  # (B,)
        ctx.passed = [bool(getattr(s, "passed", False)) for s in ctx.scores]
        device = self.acc.device
        ctx.rewards = rewards.to(device)
        ctx.group_ids = torch.arange(len(mine), device=device).repeat_interleave(t.group_size)  # (B,)
        hidden = [m for m in self.methods if m.wants_hidden]
        with timer("old_logprobs"):
            # drawn from the policy itself (not a vision policy's: its sampler masks image tokens)
            if plain_sampling(ctx.params) and not ctx.off_policy.any() and not hidden and ctx.rollouts.vision is None:
                ctx.old_logp = ctx.rollouts.behaviour_logp
            else:  # one forward: off-policy rows need policy log-probs; methods may need its hidden states
                ctx.old_logp, ctx.hidden = self._old_pass(ctx.rollouts, hidden)
        if self.ref_model is not None:
            with timer("ref_logprobs"):
                ctx.ref_logp = self.logprobs(self.ref_model, ctx.rollouts)
        method_metrics: dict = {}
        ctx.shaped = ctx.rewards  # (B,)
        for m in self.methods:
            ctx.shaped, extra = m.shape_rewards(ctx, ctx.shaped)
            method_metrics.update(extra)
        ctx.prompt_keys = [f"{inst.env}/{inst.seed}" for inst in grouped]
        ctx.advantage_inputs = {"old_logp": ctx.old_logp, "prompt_keys": ctx.prompt_keys}
        for m in self.methods:
            ctx.advantage_inputs.update(m.advantage_inputs(ctx))
        ctx.advantages = call_advantage(self.advantage_fn, ctx.shaped, ctx.mask, ctx.group_ids, t.advantage_cfg,
                                        **ctx.advantage_inputs)  # (B, T)
        for m in self.methods:
            method_metrics.update(m.after_advantages(ctx))
        pool_metrics = self._update_pool(instances, step, ctx.passed)
        metrics = {**self._batch_metrics(ctx, reward_metrics), **pool_metrics, **self._across_processes(method_metrics)}
        batch = Batch(grouped, ctx.rollouts, ctx.rewards, ctx.passed, ctx.group_ids, ctx.advantages, ctx.old_logp,
                      ctx.ref_logp, ctx.off_policy)
        return batch, metrics

    def _batch_metrics(self, ctx: StepContext, reward_metrics: dict) -> dict:
        """The step's reward, accuracy and completion figures over the global batch: every
        process's rows are gathered (one object gather) before they are summarised."""
        r = ctx.rollouts
        mask = r.completion_mask.bool()
        own = mask & ~ctx.off_policy[:, None]  # (B, T) rows drawn from the policy itself
        rows = list(zip(ctx.rewards.tolist(), ctx.passed, mask.sum(1).tolist(),
                        r.finished.tolist() if r.finished is not None else [None] * len(r),
                        (r.behaviour_logp * own).sum(1).tolist(), own.sum(1).tolist(),
                        (ctx.old_logp * mask).sum(1).tolist(), ctx.instances, r.texts, ctx.scores))
        shares = self.gather([(rows, reward_metrics)])
        rows = [row for part, _ in shares for row in part]
        rewards, passed, lengths, finished, own_sum, own_n, old_sum, grouped, texts, scores = map(list, zip(*rows))
        g = self.cfg.train.group_size
        values = torch.tensor(rewards, dtype=torch.float64)
        grp = values.view(-1, g)
        counts: dict[str, float] = {}
        for _, m in shares:
            for k, v in m.items():
                if k == "invalid" or k.startswith("invalid_") and k != "invalid_fraction":
                    counts[k] = counts.get(k, 0.0) + v
        if sum(own_n):  # -mean log-prob of the sampled tokens under their sampling distribution
            entropy = -sum(own_sum) / sum(own_n)
        else:  # a batch drawn only by a method's sampler: the policy's log-prob of its tokens
            entropy = -sum(old_sum) / max(1, sum(lengths))
        return {
            "reward/mean": float(values.mean()),
            "reward/std": float(values.std()) if len(values) > 1 else 0.0,
            "accuracy/train": sum(passed) / len(passed),
            "groups/zero_variance_fraction": float((grp.std(dim=1, unbiased=False) == 0).double().mean()),
            "reward/invalid": counts.get("invalid", 0.0),
            "completion_tokens/mean": sum(lengths) / len(lengths),
            "completion/finished_fraction": sum(finished) / len(finished) if None not in finished else None,
            "entropy": float(entropy),
            **{f"reward/{k}": v for k, v in counts.items() if k.startswith("invalid_") and v},
            **environment_metrics(self.env_of, grouped, texts, scores),  # e.g. the games' game/itp
        }

    def _across_processes(self, metrics: dict) -> dict:
        """Per-process metrics (the methods') averaged over processes: each process holds an equal
        share of the batch, so a share's mean or fraction averages to the global one."""
        if self.acc.num_processes == 1:
            return metrics
        parts = self.gather([metrics])
        out = {}
        for key in parts[0]:
            values = [p.get(key) for p in parts]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            out[key] = sum(values) / len(values) if numeric else values[0]
        return out

    def grade(self, instances: list[Instance], texts: list[str]) -> tuple[list, torch.Tensor, dict]:
        """Grade one response per instance, each call bounded by ``train.grade_timeout_s``: the
        scores, the validated rewards (B,) (invalid ones replaced by ``train.failure_reward``) and
        the validation's counts."""
        t, env_of = self.cfg.train, self.env_of
        prefetch_grades(env_of, instances, texts)
        scores = safe_grade_batch([(env_of[inst.env], inst, text) for inst, text in zip(instances, texts)],
                                  t.grade_timeout_s)
        rewards, reward_metrics = validate_rewards(scores, failure_value=t.failure_reward)  # (B,)
        return scores, rewards, reward_metrics

    def gather(self, items: list) -> list:
        """Every process's ``items``, concatenated in process order (``items`` itself on one process)."""
        if self.acc.num_processes == 1:
            return items
        from accelerate.utils import gather_object

        return gather_object(items)

    def pool_preview(self) -> EnvPool:
        """A copy of the pool in its current state, to look ahead at upcoming batches without moving it."""
        preview = EnvPool(self.cfg.pool, floor=self.pool.floor, factory=self.pool.factory)
        preview.load_state_dict(self.pool.state_dict())
        return preview

    def _generate(self, grouped: list[Instance], params: SamplingParams) -> tuple[Rollouts, torch.Tensor]:
        """One completion per entry, and which rows a method's sampler drew (B,) bool: the first
        method whose ``generate`` answers generates; otherwise the policy samples every row."""
        for m in self.methods:
            out = m.generate(grouped, params)
            if out is not None:
                return out
        rollouts = self.generate_for(grouped, params)
        return rollouts, torch.zeros(len(grouped), dtype=torch.bool, device=self.acc.device)

    def generate_for(self, instances: Sequence[Instance], params: SamplingParams, **kwargs) -> Rollouts:
        """The policy's completions of ``instances``' prompts, with their images when the policy takes
        images (``kwargs`` go to the backend, e.g. a ``logits_processor``)."""
        if getattr(self.backend, "takes_images", False):
            kwargs["images"] = self._pictures(instances)
        return self.backend.generate([inst.prompt for inst in instances], params, **kwargs)

    def _pictures(self, instances: Sequence[Instance]) -> list[bytes | None]:
        """Each instance's image bytes (None without one). An unusable image (corrupt, oversized, not
        PNG/JPEG: e.g. from an admitted program) does not stop the run: its row is asked without a
        picture, and the step logs how many rows that happened to (``images/unusable``)."""
        out, bad, checked = [], 0, {}
        for inst in instances:
            try:
                png = instance_png(inst.data)
                if png is not None and png not in checked:
                    checked[png] = decode(png)
            except BadImage:
                png, bad = None, bad + 1
            out.append(png)
        if bad:
            key = "images/unusable"
            self._pending_metrics[key] = self._pending_metrics.get(key, 0) + bad
        return out

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
    def logprobs(self, model, r: Rollouts) -> torch.Tensor:
        """Per-token log-probs (B, T) of the rollouts' completions under ``model``, at the
        temperature the loss scores them (``logp_temperature``), in microbatches."""
        out = []
        mb = self.cfg.train.microbatch_size
        g = self._shared_group_size(r)
        for s in range(0, len(r), mb):
            args = (r.prompt_ids[s : s + mb], r.prompt_mask[s : s + mb], r.completion_ids[s : s + mb],
                    r.completion_mask[s : s + mb])
            if g > 1 and mb % g == 0:  # every slice is whole groups: each prompt runs once
                out.append(grouped_sequence_logprobs(model, *args, g, temperature=self.logp_temperature()))
            else:
                out.append(sequence_logprobs(model, *args, temperature=self.logp_temperature(),
                                             image_inputs=self._images(r, range(s, min(s + mb, len(r))))))
        return torch.cat(out)

    def _images(self, r: Rollouts, rows) -> dict:
        """The image inputs of ``rows`` of ``r`` for a forward pass ({} for a text batch)."""
        return vision_inputs([r.vision[i] for i in rows], self.acc.device) if r.vision is not None else {}

    def _shared_group_size(self, r: Rollouts, group_ids: torch.Tensor | None = None) -> int:
        """``group_size`` when rows g*G .. g*G+G-1 form group g and share one prompt (so a prompt's
        forward can serve its whole group), else 1."""
        g = self.cfg.train.group_size
        if g < 2 or len(r) % g or (group_ids is not None and not contiguous_groups(group_ids, g)):
            return 1
        if r.vision is not None:  # the grouped forward runs text only
            return 1
        return g if shares_prompts(r.prompt_ids, r.prompt_mask, g) else 1

    def _minibatches(self, batch: Batch, rng: random.Random) -> list[tuple[list[int], list[list[int]], int]]:
        """One epoch's minibatches as ``(rows, microbatches of rows, G)``; G > 1 means every
        microbatch is whole groups of G rows sharing a prompt (computed with the grouped forward).

        When the batch is contiguous groups and minibatch_size is a multiple of group_size, whole
        groups are shuffled into minibatches, and the groups of a minibatch are ordered by their
        longest completion; otherwise rows are shuffled. Either way, when microbatches cannot be
        whole shared-prompt groups, the rows of a minibatch are ordered by completion length so each
        microbatch carries little padding.
        """
        t, r = self.cfg.train, batch.rollouts
        n, g = len(r), t.group_size
        size = t.minibatch_size // self.acc.num_processes  # this process's share of a minibatch
        lengths = r.completion_mask.sum(1).tolist()
        shared = self._shared_group_size(r, batch.group_ids)
        out = []
        if g > 1 and size % g == 0 and contiguous_groups(batch.group_ids, g):
            groups = list(range(n // g))
            rng.shuffle(groups)
            for chosen in _chunks(groups, size // g):
                chosen.sort(key=lambda k: max(lengths[k * g : k * g + g]))
                rows = [k * g + j for k in chosen for j in range(g)]
                if shared > 1 and t.microbatch_size % g == 0:
                    out.append((rows, _chunks(rows, t.microbatch_size), shared))
                else:
                    by_length = sorted(rows, key=lambda i: lengths[i])
                    out.append((rows, _chunks(by_length, t.microbatch_size), 1))
            return out
        order = list(range(n))
        rng.shuffle(order)
        for mini in _chunks(order, size):
            mini.sort(key=lambda i: lengths[i])
            out.append((mini, _chunks(mini, t.microbatch_size), 1))
        return out

    @torch.no_grad()
    def _old_pass(self, r: Rollouts, consumers: Sequence[Method]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Old-policy log-probs (B, T) from one forward, and from the same pass's final hidden states
        each consumer's ``hidden_statistics``, concatenated over slices (by method name)."""
        model = self.acc.unwrap_model(self.model)
        if not consumers:
            return self.logprobs(model, r), {}
        out = model.get_output_embeddings()
        bias = getattr(out, "bias", None)
        head = LMHead(out.weight.detach().float(), bias.detach().float() if bias is not None else None)  # cast once
        temp, mb = self.logp_temperature(), self.cfg.train.microbatch_size
        logps, parts = [], {m.name: [] for m in consumers}
        for s in range(0, len(r), mb):
            sl = slice(s, s + mb)
            logp, hidden = sequence_logprobs(model, r.prompt_ids[sl], r.prompt_mask[sl], r.completion_ids[sl],
                                             r.completion_mask[sl], temperature=temp, return_hidden=True,
                                             image_inputs=self._images(r, range(len(r))[sl]))
            logps.append(logp)
            for m in consumers:
                parts[m.name].append(m.hidden_statistics(hidden, head, r.completion_ids[sl], r.completion_mask[sl], temp))
        return torch.cat(logps), {name: torch.cat(p) for name, p in parts.items()}

    def logp_temperature(self) -> float:
        """The temperature log-probs are taken at: the sampling temperature (1 for greedy)."""
        temp = self.cfg.sampling.temperature
        return temp if temp > 0 else 1.0

    def update(self, batch: Batch, step: int, timer: PhaseTimer,
               roles: Sequence[tuple[str, Batch, float, int]] = ()) -> dict:
        """PPO epochs over minibatches of the rollout batch, accumulating over microbatches.

        ``roles`` adds other rollout batches to the same update (from methods' ``extra_roles``), each as
        ``(name, batch, weight, microbatch_size)``: its rows are split into as many chunks as the
        main batch has minibatches, and each optimizer step minimises the main minibatch's mean
        loss plus ``weight`` times its chunk's mean loss (so an epoch minimises L + weight * L_role).
        Their loss metrics are logged as ``<name>/loss/...``.
        """
        t = self.cfg.train
        rng = random.Random(stable_hash("minibatch", t.seed, step))
        loss_metrics: list[dict] = []
        role_metrics: dict[str, list[dict]] = {name: [] for name, *_ in roles}
        grad_norms = []
        self.model.train()
        for _ in range(t.ppo_epochs):
            minibatches = self._minibatches(batch, rng)
            role_chunks = [(name, b, w, _split(list(range(len(b.rollouts))), len(minibatches)), mb)
                           for name, b, w, mb in roles]
            for j, (mini, micro, shared) in enumerate(minibatches):
                with timer("backward"):
                    denominator = self._denominator(batch, mini)
                    loss_metrics.append(_combine_micro(
                        [self._backward_rows(batch, idx, shared, 1.0, denominator) for idx in micro]))
                    for name, b, weight, chunks, mb in role_chunks:
                        chunk = chunks[j]
                        if not chunk:
                            continue
                        denominator = self._denominator(b, chunk)
                        role_metrics[name].append(_combine_micro(
                            [self._backward_rows(b, idx, 1, weight, denominator) for idx in _chunks(chunk, mb)]))
                with timer("optimizer"):
                    if self.cfg.optim.grad_clip is not None:
                        norm = self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
                        grad_norms.append(float(norm))
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.model.eval()
        if self.acc.num_processes > 1:  # each minibatch's figures over every process's rows
            parts = self.gather([(loss_metrics, role_metrics)])
            loss_metrics = [_combine_micro([p[0][j] for p in parts]) for j in range(len(loss_metrics))]
            role_metrics = {name: [_combine_micro([p[1][name][j] for p in parts]) for j in range(len(rows))]
                            for name, rows in role_metrics.items()}
        out = _mean_metrics(loss_metrics, "loss/")
        for name, rows in role_metrics.items():
            out.update(_mean_metrics(rows, f"{name}/loss/"))
        if "loss/kl" in out:
            out["kl"] = out["loss/kl"]
        if grad_norms:
            out["grad_norm"] = sum(grad_norms) / len(grad_norms)
        out["lr"] = self.scheduler.get_last_lr()[0]
        return out

    def _denominator(self, batch: Batch, rows: list[int]) -> float:
        """The loss aggregation's normaliser over the whole minibatch ``rows`` (summed over all
        processes under DDP: tokens, sequences, or rows times the longest width for token_sum_norm)."""
        lc = self.cfg.train.loss_cfg
        mask = batch.rollouts.completion_mask[torch.tensor(rows, device=self.acc.device)]  # (b, T)
        if self.acc.num_processes == 1:
            return aggregation_denominator(mask, lc.aggregation, lc.norm_length)
        if lc.aggregation == "token_sum_norm":
            width = torch.tensor(float(lc.norm_length or int(mask.sum(1).max())), device=self.acc.device)
            rows_total = self.acc.reduce(torch.tensor(float(len(rows)), device=self.acc.device), reduction="sum")
            return float(max(1.0, float(rows_total) * float(self.acc.reduce(width, reduction="max"))))
        local = torch.tensor(aggregation_denominator(mask, lc.aggregation) if mask.any() else 0.0,
                             device=self.acc.device)
        return float(max(1.0, float(self.acc.reduce(local, reduction="sum"))))

    def _backward_rows(self, batch: Batch, idx: list[int], shared: int, scale: float,
                       denominator: float | None = None) -> dict:
        """Forward the rows ``idx`` of ``batch`` under the current policy, and backpropagate
        ``scale`` times their policy loss, normalised by ``denominator`` (the whole minibatch's, so
        that the microbatches' losses add up to the minibatch's); returns the loss's metrics.
        Under DDP the loss is multiplied by the number of processes, which DDP's gradient average
        divides out again: the gradient is that of the global minibatch's loss."""
        t, r = self.cfg.train, batch.rollouts
        ix = torch.tensor(idx, device=self.acc.device)
        width = max(1, int(r.completion_mask[ix].sum(1).max()))
        mask = r.completion_mask[ix, :width]  # (b, w)
        args = (r.prompt_ids[ix], r.prompt_mask[ix], r.completion_ids[ix, :width], mask)
        if shared > 1:  # whole groups: each prompt runs once for its group
            logp = grouped_sequence_logprobs(self.model, *args, shared, temperature=self.logp_temperature())  # (b, w)
        else:
            logp = sequence_logprobs(self.model, *args, temperature=self.logp_temperature(),
                                     image_inputs=self._images(r, idx))
        ref = batch.ref_logp[ix, :width] if batch.ref_logp is not None else None
        loss, m = self.loss_fn(logp, batch.old_logp[ix, :width], batch.advantages[ix, :width], mask, t.loss_cfg,
                               ref_logp=ref, denominator=denominator)
        self.acc.backward(loss * (scale * self.acc.num_processes))
        return m

    def step(self, step: int) -> dict:
        timer = PhaseTimer()
        started = time.perf_counter()
        for m in self.methods:
            m.before_collect(step, timer)
        batch, metrics = self.collect(step, timer)
        roles = [role for m in self.methods for role in m.extra_roles(step, metrics)]
        metrics.update(self.update(batch, step, timer, roles))
        for m in self.methods:
            metrics.update(m.after_update(step))
        metrics.update(self._pending_metrics)
        self._pending_metrics = {}
        metrics.update({f"time/{k}": v for k, v in timer.seconds.items()})
        metrics["time/step"] = time.perf_counter() - started
        return {"step": step, **metrics}

    def out_of_time(self) -> bool:
        """Whether ``train.time_budget_s`` is spent (never, without one)."""
        budget = self.cfg.train.time_budget_s
        return budget is not None and self.train_seconds >= budget

    def _main_value(self, value: float) -> float:
        """The main process's ``value`` on every process, so that all stop at the same step."""
        if self.acc.num_processes == 1:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def postfix(self, row: dict) -> dict:
        """What the progress bar shows after a step: the headline figures, then the methods' fields."""
        out = {"reward": f"{row['reward/mean']:.3f}", "acc": f"{row['accuracy/train']:.2f}",
               "H": f"{row['entropy']:.2f}", "s": f"{row['time/step']:.2f}"}
        for m in self.methods:
            out.update(m.postfix(row))
        return out

    # --- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step_index,
            "train_seconds": self.train_seconds,
            "model": self.acc.unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "pool": self.pool.state_dict(),
            "methods": {m.name: m.state_dict() for m in self.methods},
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python_rng": random.getstate(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step_index = int(state["step"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.acc.unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.pool.load_state_dict(state["pool"])
        saved = state.get("methods", {})
        for m in self.methods:
            if saved.get(m.name) is not None:
                m.load_state_dict(saved[m.name])
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location may have moved it to the GPU
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        random.setstate(state["python_rng"])

    def save_checkpoint(self, run: RunDir) -> pathlib.Path:
        import io

        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        path = run.checkpoint_dir / f"step_{self.step_index}.pt"
        for m in self.methods:
            m.before_checkpoint(path)
        atomic_write_bytes(path, buffer.getvalue())
        kept = sorted(run.checkpoint_dir.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for old in kept[: -self.cfg.train.keep_checkpoints]:
            old.unlink(missing_ok=True)
        # a method's files beside a checkpoint (``<checkpoint>.<suffix>``) go with it
        kept_names = {p.name for p in kept[-self.cfg.train.keep_checkpoints :]}
        for companion in run.checkpoint_dir.glob("step_*.pt.*"):
            if companion.name.split(".pt.")[0] + ".pt" not in kept_names:
                companion.unlink(missing_ok=True)
        return path

    def resume(self, run: RunDir) -> bool:
        """Continue from the run's latest checkpoint, if there is one. Without one the run starts
        over from step 0, so the metrics of a run that died before its first checkpoint go."""
        path = on_main(run.latest_checkpoint)  # one process sets damaged checkpoints aside
        main = self.acc.is_main_process
        if path is None:
            if main and run.metrics_path.exists():
                run.truncate_metrics(-1)
            return False
        # a CPU process's device is "cpu:<rank>", which torch.load cannot map storages to
        where = "cpu" if self.acc.device.type == "cpu" else self.acc.device
        self.load_state_dict(torch.load(path, map_location=where, weights_only=False))
        if main:
            run.truncate_metrics(self.step_index - 1)
        self.acc.wait_for_everyone()
        return True

    # --- the loop --------------------------------------------------------------------------------
    def fit(self, run: RunDir, *, progress: bool = True, on_step=None) -> list[dict]:
        """Train up to ``cfg.train.steps`` steps (fewer when ``train.time_budget_s`` runs out), logging
        each to ``metrics.jsonl``.

        ``on_step(trainer, row)`` (optional) runs after each step on the main process (e.g. evals).
        """
        t = self.cfg.train
        main = self.acc.is_main_process
        if main:
            dump(self.cfg, run.root / "config.yaml")
        for m in self.methods:
            self._pending_metrics.update(m.before_fit())
        rows = []
        bar = progress_bar(total=t.steps, initial=self.step_index, desc="train", disable=not (progress and main),
                           dynamic_ncols=True)
        while self.step_index < t.steps and not self.out_of_time():
            row = self.step(self.step_index)
            self.step_index += 1
            self.train_seconds += self._main_value(row["time/step"])
            if on_step is not None and main:
                on_step(self, row)
            if main:
                run.log(row)
            rows.append(row)
            bar.update(1)
            bar.set_postfix(self.postfix(row))
            every = t.checkpoint_every
            last = self.step_index == t.steps or self.out_of_time()
            if main and ((every and self.step_index % every == 0) or last):
                self.save_checkpoint(run)
        bar.close()
        self.acc.wait_for_everyone()
        return rows
