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
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from accelerate import Accelerator

from worldsmith.configuration import dump
from worldsmith.envs.contract import Instance, stable_hash
from worldsmith.policy.backend import Rollouts, SamplingParams, merge_rollouts
from worldsmith.policy.hf_backend import (
    HFBackend,
    grouped_sequence_logprobs,
    sequence_logprobs,
    shares_prompts,
)
from worldsmith.policy.sampling import CUTS
from worldsmith.progress import progress_bar
from worldsmith.rl.advantages import call_advantage, get_advantage, mssr_shaping
from worldsmith.rl.config import RunConfig
from worldsmith.rl.cuts import cuts_rows, mixed_cuts_metrics
from worldsmith.rl.env_metrics import environment_metrics
from worldsmith.rl.losses import aggregation_denominator, get_loss, kl_estimate
from worldsmith.rl.mssr import BetaTracker, sampled_token_entropy
from worldsmith.rl.pool import EnvPool
from worldsmith.rl.reward_check import safe_grade, safe_grade_batch, validate_rewards
from worldsmith.rl.shaping import g2rl_metrics, g2rl_novelty, g2rl_shape, g2rl_signed, head_statistics
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
    is_cuts: torch.Tensor | None = None  # (B,) bool, True on rows sampled with CUTS


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

    ``ref_model`` is needed only when ``cfg.train.loss_cfg.kl_coef > 0``. ``pool`` replaces the
    pool built from ``cfg.pool`` (e.g. one whose membership changes during the run).
    """

    def __init__(self, cfg: RunConfig, model, tokenizer, ref_model=None, accelerator: Accelerator | None = None,
                 pool: EnvPool | None = None):
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
        self.pool = pool if pool is not None else EnvPool(cfg.pool)
        self.advantage_fn = get_advantage(cfg.train.advantage)
        self.loss_fn = get_loss(cfg.train.loss)
        s = cfg.sampling
        self.backend = HFBackend(self.acc.unwrap_model(self.model), tokenizer, device=self.acc.device, batch_size=s.batch_size)
        self.cuts = CUTS(s.cuts.k, s.cuts.delta, s.cuts.warmup) if s.cuts.enabled and s.mixed_plan.cuts else None
        # MSSR's baseline is state carried across steps (and checkpoints), owned here
        self.tracker = BetaTracker(cfg.train.mssr) if cfg.train.advantage == "mssr" else None
        self._pending_metrics: dict = {}  # logged with the next step (e.g. MSSR's initialisation pass)
        self.step_index = 0

    @property
    def env_of(self) -> dict:
        """The pool's environments by ``Environment.name`` (as in ``Instance.env``)."""
        return {env.name: env for env in self.pool.envs.values()}

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
            rollouts, is_cuts = self._generate(grouped, params)  # is_cuts (B,) bool
        env_of = self.env_of
        with timer("grade"):
            prefetch_grades(env_of, grouped, rollouts.texts)
            scores = safe_grade_batch([(env_of[inst.env], inst, text)
                                       for inst, text in zip(grouped, rollouts.texts)], t.grade_timeout_s)
            rewards, reward_metrics = validate_rewards(scores, failure_value=t.failure_reward)  # (B,)
        passed = [bool(getattr(s, "passed", False)) for s in scores]
        device = self.acc.device
        rewards = rewards.to(device)
        mask = rollouts.completion_mask  # (B, T)
        group_ids = torch.arange(len(mine), device=device).repeat_interleave(t.group_size)  # (B,)
        g2rl = t.shaping.g2rl
        full_entropy = self.tracker is not None and t.mssr.entropy_mode == "full_distribution"
        with timer("old_logprobs"):
            if plain_sampling(params) and not is_cuts.any() and not (g2rl.enabled or full_entropy):
                old_logp, features, entropy = rollouts.behaviour_logp, None, None  # drawn from the policy itself
            else:  # one forward: CUTS tokens need policy log-probs; G2RL / full entropy need its hidden states
                old_logp, features, entropy = self._old_pass(rollouts, g2rl.enabled, full_entropy)
        ref_logp = None
        if self.ref_model is not None:
            with timer("ref_logprobs"):
                ref_logp = self._logprobs(self.ref_model, rollouts)
        method_metrics: dict = {}
        shaped = rewards  # (B,)
        if g2rl.enabled:
            nu = g2rl_novelty(features, g2rl_signed(rewards, g2rl), group_ids, g2rl.eps)  # (B,) weights exp(+-1)
            shaped = g2rl_shape(rewards, nu, group_ids, g2rl).to(device)  # (B,)
            method_metrics.update(g2rl_metrics(features, nu, rewards, shaped, group_ids, g2rl))
        keys = self._prompt_keys(grouped)
        extras: dict = {"old_logp": old_logp, "prompt_keys": keys}
        if self.tracker is not None:
            if entropy is None:
                entropy = sampled_token_entropy(old_logp, mask)  # (B, T)
            extras.update(baseline=self.tracker.values(keys).to(device), entropy=entropy)
        advantages = call_advantage(self.advantage_fn, shaped, mask, group_ids, t.advantage_cfg, **extras)  # (B, T)
        if self.tracker is not None:
            method_metrics.update(self._update_tracker(keys, shaped, rewards, mask, group_ids, extras, ref_logp))
        if is_cuts.any():
            c = self.cfg.sampling.cuts
            method_metrics.update(mixed_cuts_metrics(rewards, is_cuts, group_ids, rollouts.behaviour_logp,
                                                     old_logp, mask, c.warmup, c.k))
        pool_metrics = self._update_pool(instances, step, passed)
        grp = rewards.view(-1, t.group_size)
        metrics = {
            "reward/mean": float(rewards.mean()),
            "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
            "accuracy/train": sum(passed) / len(passed),
            "groups/zero_variance_fraction": float((grp.std(dim=1, unbiased=False) == 0).float().mean()),
            "reward/invalid": reward_metrics["invalid"],
            "completion_tokens/mean": float(mask.sum(1).float().mean()),
            "completion/finished_fraction": float(rollouts.finished.float().mean()) if rollouts.finished is not None else None,
            "entropy": self._sampled_entropy(rollouts, old_logp, is_cuts),
            **{f"reward/{k}": v for k, v in reward_metrics.items() if k.startswith("invalid_") and v},
            **pool_metrics,
            **method_metrics,
            **environment_metrics(env_of, grouped, rollouts.texts, scores),  # e.g. the games' game/itp
        }
        batch = Batch(grouped, rollouts, rewards, passed, group_ids, advantages, old_logp, ref_logp, is_cuts)
        return batch, metrics

    def _generate(self, grouped: list[Instance], params: SamplingParams) -> tuple[Rollouts, torch.Tensor]:
        """One completion per entry, and which rows used CUTS (B,) bool. With CUTS on, the mixed
        plan's CUTS members of each group come from a second call (with its own seed) and are
        merged back in group order."""
        prompts = [inst.prompt for inst in grouped]
        if self.cuts is None:
            return self.backend.generate(prompts, params), torch.zeros(len(prompts), dtype=torch.bool, device=self.acc.device)
        plan = self.cfg.sampling.mixed_plan
        is_cuts = cuts_rows(len(prompts) // self.cfg.train.group_size, plan.standard, plan.cuts, self.acc.device)
        cuts_params = replace(params, seed=stable_hash("cuts", params.seed) % 2**62)
        parts, positions = [], []
        for rows, p, processor in ((~is_cuts, params, None), (is_cuts, cuts_params, self.cuts)):
            idx = rows.nonzero().squeeze(-1).tolist()
            if idx:
                parts.append(self.backend.generate([prompts[i] for i in idx], p, logits_processor=processor))
                positions.append(idx)
        return merge_rollouts(parts, positions, pad_id=self.backend.pad_id), is_cuts

    @staticmethod
    def _sampled_entropy(r: Rollouts, old_logp: torch.Tensor, is_cuts: torch.Tensor) -> float:
        """-mean log-prob of the sampled tokens: of their sampling distribution on the rows drawn from
        the policy; a CUTS-only batch falls back to the policy's log-prob of its tokens."""
        mask = r.completion_mask.bool()
        own = mask & ~is_cuts[:, None]  # (B, T)
        if own.any():
            return float(-(r.behaviour_logp * own).sum() / own.sum())
        return float(-(old_logp * mask).sum() / mask.sum().clamp_min(1))

    def _prompt_keys(self, instances: list[Instance]) -> list[str]:
        """Stable keys of the prompts, for MSSR's tracker: (environment, seed), or the environment."""
        if self.cfg.train.mssr.key == "environment":
            return [inst.env for inst in instances]
        return [f"{inst.env}/{inst.seed}" for inst in instances]

    def _update_tracker(self, keys, shaped, rewards, mask, group_ids, extras, ref_logp) -> dict:
        """MSSR diagnostics, then fold this step's outcomes and KL(pi_old || pi_ref) into the tracker."""
        t, m = self.cfg.train, self.cfg.train.mssr
        baseline, entropy = extras["baseline"], extras["entropy"]
        unshaped = call_advantage(self.advantage_fn, shaped, mask, group_ids, t.advantage_cfg,
                                  **{**extras, "entropy": None})  # (B, T)
        a = t.advantage_cfg
        psi = mssr_shaping(unshaped, entropy, mask, a.entropy_coef, a.entropy_kappa)  # (B, T)
        capped = mask & (unshaped.abs() / a.entropy_kappa < a.entropy_coef * entropy)  # (B, T)
        n = mask.sum().clamp_min(1)
        seen = self.tracker.seen(keys)
        pairs = list(zip(keys, (rewards > m.outcome_threshold).float().tolist()))
        kls: list[float] = []
        if ref_logp is not None:  # per-sample mean token k3 estimate of KL(pi_old || pi_ref)
            per_token = kl_estimate(extras["old_logp"], ref_logp, "k3") * mask
            kls = (per_token.sum(1) / mask.sum(1).clamp_min(1)).tolist()
        if self.acc.num_processes > 1:  # every process keeps the same tracker
            from accelerate.utils import gather_object

            pairs, kls = gather_object(pairs), gather_object(kls)
        kl = sum(kls) / len(kls) if kls else None
        rho = self.tracker.update([k for k, _ in pairs], [b for _, b in pairs], kl)
        return {
            "mssr/rho": rho,
            "mssr/kl": kl,
            "mssr/value_mean": float(baseline.mean()),
            "mssr/value_std": float(baseline.std(unbiased=False)),
            "mssr/value_min": float(baseline.min()),
            "mssr/value_max": float(baseline.max()),
            "mssr/seen_fraction": sum(seen) / len(seen),
            "mssr/entropy": float((entropy * mask).sum() / n),
            "mssr/psi_mean": float(psi.sum() / n),
            "mssr/cap_fraction": float(capped.sum() / n),
        }

    def initialise_tracker(self) -> dict:
        """MSSR's initialisation pass: roll out the current policy ``n_init`` times on the prompts of
        the next ``init_steps`` steps (every training prompt by default; read from a copy of the pool,
        so the pool itself does not move) and set each key's prior from its mean outcome."""
        t, m = self.cfg.train, self.cfg.train.mssr
        started = time.perf_counter()
        preview = EnvPool(self.cfg.pool)
        preview.load_state_dict(self.pool.state_dict())
        steps = range(self.step_index, self.step_index + (m.init_steps or t.steps))
        instances = [inst for s in steps for inst in preview.sample_batch(t.prompts_per_step, s, t.seed)]
        mine = [inst for inst in instances[self.acc.process_index :: self.acc.num_processes] for _ in range(m.n_init)]
        params = replace(self.sampling_params(self.step_index),
                         seed=stable_hash("mssr_init", t.seed, self.acc.process_index) % 2**62)
        rollouts = self.backend.generate([inst.prompt for inst in mine], params)
        env_of = self.env_of
        prefetch_grades(env_of, mine, rollouts.texts)
        scores = [safe_grade(env_of[inst.env], inst, text, t.grade_timeout_s)
                  for inst, text in zip(mine, rollouts.texts)]
        rewards, _ = validate_rewards(scores, failure_value=t.failure_reward)
        pairs = list(zip(self._prompt_keys(mine), (rewards > m.outcome_threshold).float().tolist()))
        if self.acc.num_processes > 1:
            from accelerate.utils import gather_object

            pairs = gather_object(pairs)
        self.tracker.initialise([k for k, _ in pairs], [b for _, b in pairs])
        return {
            "mssr/init_rollouts": len(pairs),
            "mssr/init_outcome_mean": sum(b for _, b in pairs) / max(len(pairs), 1),
            "mssr/init_seconds": time.perf_counter() - started,
        }

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
        g = self._shared_group_size(r)
        for s in range(0, len(r), mb):
            args = (r.prompt_ids[s : s + mb], r.prompt_mask[s : s + mb], r.completion_ids[s : s + mb],
                    r.completion_mask[s : s + mb])
            if g > 1 and mb % g == 0:  # every slice is whole groups: each prompt runs once
                out.append(grouped_sequence_logprobs(model, *args, g, temperature=self._logp_temperature()))
            else:
                out.append(sequence_logprobs(model, *args, temperature=self._logp_temperature()))
        return torch.cat(out)

    def _shared_group_size(self, r: Rollouts, group_ids: torch.Tensor | None = None) -> int:
        """``group_size`` when rows g*G .. g*G+G-1 form group g and share one prompt (so a prompt's
        forward can serve its whole group), else 1."""
        g = self.cfg.train.group_size
        if g < 2 or len(r) % g or (group_ids is not None and not contiguous_groups(group_ids, g)):
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
        lengths = r.completion_mask.sum(1).tolist()
        shared = self._shared_group_size(r, batch.group_ids)
        out = []
        if g > 1 and t.minibatch_size % g == 0 and contiguous_groups(batch.group_ids, g):
            groups = list(range(n // g))
            rng.shuffle(groups)
            for chosen in _chunks(groups, t.minibatch_size // g):
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
        for mini in _chunks(order, t.minibatch_size):
            mini.sort(key=lambda i: lengths[i])
            out.append((mini, _chunks(mini, t.microbatch_size), 1))
        return out

    @torch.no_grad()
    def _old_pass(self, r: Rollouts, features: bool, entropy: bool):
        """Old-policy log-probs (B, T) from one forward, and from the same pass's final hidden states
        G2RL's Phi (B, d) when ``features`` and the full-distribution entropy (B, T) when ``entropy``
        (each None when not asked)."""
        model = self.acc.unwrap_model(self.model)
        if not (features or entropy):
            return self._logprobs(model, r), None, None
        head = model.get_output_embeddings()
        weight = head.weight.detach().float()  # (V, d), cast once for the whole batch
        bias = head.bias.detach().float() if getattr(head, "bias", None) is not None else None
        g, temp, mb = self.cfg.train.shaping.g2rl, self._logp_temperature(), self.cfg.train.microbatch_size
        logps, phis, ents = [], [], []
        for s in range(0, len(r), mb):
            sl = slice(s, s + mb)
            logp, hidden = sequence_logprobs(model, r.prompt_ids[sl], r.prompt_mask[sl], r.completion_ids[sl],
                                             r.completion_mask[sl], temperature=temp, return_hidden=True)
            phi, ent = head_statistics(hidden, weight, r.completion_ids[sl], r.completion_mask[sl], bias=bias,
                                       temperature=temp, chunk=g.chunk, eps=g.eps, features=features,
                                       entropy=entropy)
            logps.append(logp)
            phis.append(phi)
            ents.append(ent)
        return (torch.cat(logps), torch.cat(phis) if features else None, torch.cat(ents) if entropy else None)

    def _logp_temperature(self) -> float:
        temp = self.cfg.sampling.temperature
        return temp if temp > 0 else 1.0

    def update(self, batch: Batch, step: int, timer: PhaseTimer,
               roles: Sequence[tuple[str, Batch, float, int]] = ()) -> dict:
        """PPO epochs over minibatches of the rollout batch, accumulating over microbatches.

        ``roles`` adds other rollout batches to the same update (EvoEnv's generator role), each as
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
            logp = grouped_sequence_logprobs(self.model, *args, shared, temperature=self._logp_temperature())  # (b, w)
        else:
            logp = sequence_logprobs(self.model, *args, temperature=self._logp_temperature())
        ref = batch.ref_logp[ix, :width] if batch.ref_logp is not None else None
        loss, m = self.loss_fn(logp, batch.old_logp[ix, :width], batch.advantages[ix, :width], mask, t.loss_cfg,
                               ref_logp=ref, denominator=denominator)
        self.acc.backward(loss * (scale * self.acc.num_processes))
        return m

    def step(self, step: int) -> dict:
        timer = PhaseTimer()
        started = time.perf_counter()
        self.before_collect(step, timer)
        batch, metrics = self.collect(step, timer)
        metrics.update(self.update(batch, step, timer, self.extra_roles(step, metrics)))
        metrics.update(self.after_update(step))
        metrics.update(self._pending_metrics)
        self._pending_metrics = {}
        metrics.update({f"time/{k}": v for k, v in timer.seconds.items()})
        metrics["time/step"] = time.perf_counter() - started
        return {"step": step, **metrics}

    # hooks for trainers that add work to a step (EvoEnv's generator role, synth/loop.py)
    def before_collect(self, step: int, timer: PhaseTimer) -> None:
        """Runs before the step's rollout batch is sampled."""

    def extra_roles(self, step: int, metrics: dict) -> list[tuple[str, Batch, float, int]]:
        """Other rollout batches to add to this step's update (see ``update``'s ``roles``)."""
        return []

    def after_update(self, step: int) -> dict:
        """Runs after the update; returns metrics for the step's row."""
        return {}

    def postfix(self, row: dict) -> dict:
        """What the progress bar shows after a step."""
        return {"reward": f"{row['reward/mean']:.3f}", "acc": f"{row['accuracy/train']:.2f}",
                "H": f"{row['entropy']:.2f}", "s": f"{row['time/step']:.2f}"}

    # --- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step_index,
            "model": self.acc.unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "pool": self.pool.state_dict(),
            "mssr": self.tracker.state_dict() if self.tracker is not None else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python_rng": random.getstate(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.acc.unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.pool.load_state_dict(state["pool"])
        if self.tracker is not None and state.get("mssr") is not None:
            self.tracker.load_state_dict(state["mssr"])
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location may have moved it to the GPU
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
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
        """Continue from the run's latest checkpoint, if there is one. Without one the run starts
        over from step 0, so the metrics of a run that died before its first checkpoint go."""
        path = run.latest_checkpoint()
        if path is None:
            if self.acc.is_main_process and run.metrics_path.exists():
                run.truncate_metrics(-1)
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
        m = t.mssr
        if self.tracker is not None and m.init_pass and self.step_index == 0 and not self.tracker.initialised:
            self._pending_metrics.update(self.initialise_tracker())
        rows = []
        bar = progress_bar(total=t.steps, initial=self.step_index, desc="train", disable=not (progress and main),
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
            bar.set_postfix(self.postfix(row))
            every = t.checkpoint_every
            if main and ((every and self.step_index % every == 0) or self.step_index == t.steps):
                self.save_checkpoint(run)
        bar.close()
        self.acc.wait_for_everyone()
        return rows
