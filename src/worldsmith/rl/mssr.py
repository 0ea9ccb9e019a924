"""MSSR's per-prompt value tracker: a Beta baseline with KL-adaptive forgetting (spec §4.2).

Per prompt key x the tracker keeps Beta(alpha(x), beta(x)) and the baseline is
v(x) = alpha / (alpha + beta). After each step, every sample with binary outcome b updates its
prompt: alpha <- rho alpha + b, beta <- rho beta + (1 - b). The forgetting rate rho is global:

- each step appends the batch mean of the per-sample mean token KL(pi_old || pi_ref) (k3) to a
  window of the last N entries; mean_kl = mean of the window;
- mean_kl > target: rho = rho_min; else rho = rho_min + (mean_kl / target) (rho_max - rho_min);
  clipped to [rho_min, rho_max]; (rho_min + rho_max) / 2 while the window is empty.

Initialisation: N_0 = 1 / (1 - rho_min); a prompt with mean initial outcome v0 starts at
alpha = N_0 v0, beta = N_0 (1 - v0); an unseen prompt starts at v_init (alpha = beta = 4 for 0.5).

The advantage (baseline subtraction, batch normalisation, entropy shaping) is the ``mssr``
estimator registered here; the plug-in ``MSSR`` at the end keeps the tracker, runs the
initialisation pass and hands the estimator its baselines and entropies. Config: ``train.mssr``
(the tracker) and ``train.advantage_cfg`` (the shaping coefficients); metrics ``mssr/...``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from worldsmith.envs.contract import stable_hash
from worldsmith.rl.advantages import AdvantageConfig, finish_advantages, register_advantage
from worldsmith.rl.head import head_statistics
from worldsmith.rl.losses import kl_estimate
from worldsmith.rl.methods import LMHead, Method, StepContext, register_method


class MSSRConfig(BaseModel):
    """The tracker and entropy settings of MSSR; defaults from spec §4.2-4.6 with their tags.

    The shaping coefficients (lambda, kappa) are the ``mssr`` estimator's, in ``AdvantageConfig``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rho_min: float = Field(0.875, gt=0.0, lt=1.0, description="Lowest forgetting rate. READ (code).")
    rho_max: float = Field(0.96, gt=0.0, lt=1.0, description="Highest forgetting rate. READ (code).")
    kl_target: float = Field(
        0.01, gt=0.0, description="KL target of the adaptive rule. READ (config_mssr.yaml; the code's default is 0.06)."
    )
    kl_window: int = Field(
        20, ge=1, description="Window N of recent batch KLs. READ (paper's best; the official code hard-codes 10)."
    )
    v_init: float = Field(0.5, ge=0.0, le=1.0, description="Baseline of a prompt never seen. READ (code).")
    outcome_threshold: float = Field(0.5, description="Binary outcome b = 1[reward > threshold]. READ (code).")
    init_pass: bool = Field(
        True, description="Before step 0, roll out the initial policy on the training prompts. READ (code)."
    )
    n_init: int = Field(1, ge=1, description="Rollouts per prompt in the initialisation pass. READ (code).")
    init_steps: int | None = Field(
        None, ge=1,
        description="The initialisation pass covers the prompts of this many upcoming steps (None = all "
        "train.steps, i.e. every training prompt). INFERRED: worldsmith's pool never repeats a seed, so "
        "'every training prompt' is the prompts the run will draw.",
    )
    key: Literal["prompt", "environment"] = Field(
        "prompt",
        description="What the tracker is keyed by: 'prompt' = (environment, seed), READ (dataset index); "
        "'environment' = one baseline per environment, PROPOSED for pools whose prompts never repeat.",
    )
    entropy_mode: Literal["sampled_token", "full_distribution"] = Field(
        "sampled_token",
        description="H_t for shaping: -p log p of the sampled token with p = exp(old log-prob), READ (code); "
        "or the entropy of the full next-token distribution, READ (paper formula).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> MSSRConfig:
        if self.rho_min > self.rho_max:
            raise ValueError(f"need rho_min <= rho_max, got {self.rho_min} > {self.rho_max}")
        return self


def sampled_token_entropy(old_logp: Tensor, mask: Tensor) -> Tensor:
    """The official code's entropy surrogate (B, T): -p log p with p = exp(old_logp), 0 off the mask.

    Bounded by 1/e, so lambda H <= 0.147 with lambda = 0.4.
    """
    logp = torch.where(mask.bool(), old_logp.detach().float(), 0.0)
    return -logp.exp() * logp


class BetaTracker:
    """Per-prompt Beta baselines with KL-adaptive forgetting; ``state_dict`` for checkpoints."""

    def __init__(self, cfg: MSSRConfig | None = None) -> None:
        self.cfg = cfg or MSSRConfig()
        self.alpha: dict[str, float] = {}
        self.beta: dict[str, float] = {}
        self.kl_window: deque[float] = deque(maxlen=self.cfg.kl_window)
        self.initialised = False

    @property
    def n0(self) -> float:
        """N_0 = 1 / (1 - rho_min), the effective sample size of a fresh prior (8 at 0.875)."""
        return 1.0 / (1.0 - self.cfg.rho_min)

    def _prior(self, v: float) -> tuple[float, float]:
        return self.n0 * v, self.n0 * (1.0 - v)

    def values(self, keys: Sequence[str]) -> Tensor:
        """The baselines v(x) (B,) float64 of ``keys``; unseen keys get v_init."""
        out = []
        for k in keys:
            a, b = (self.alpha[k], self.beta[k]) if k in self.alpha else self._prior(self.cfg.v_init)
            out.append(a / (a + b))
        return torch.tensor(out, dtype=torch.float64)

    def seen(self, keys: Sequence[str]) -> list[bool]:
        return [k in self.alpha for k in keys]

    def rho(self) -> float:
        """The current forgetting rate from the KL window."""
        c = self.cfg
        if not self.kl_window:
            return (c.rho_min + c.rho_max) / 2
        mean_kl = sum(self.kl_window) / len(self.kl_window)
        if mean_kl > c.kl_target:
            rho = c.rho_min  # tau = min(mean_kl / target, 1) = 1: rho jumps to rho_min (as in the code)
        else:
            rho = c.rho_min + (mean_kl / c.kl_target) * (c.rho_max - c.rho_min)
        return min(max(rho, c.rho_min), c.rho_max)

    def initialise(self, keys: Sequence[str], outcomes: Sequence[float]) -> None:
        """Set each key's prior from the mean of its initial outcomes (in [0, 1])."""
        sums: dict[str, list[float]] = {}
        for k, b in zip(keys, outcomes):
            sums.setdefault(k, []).append(float(b))
        for k, bs in sums.items():
            self.alpha[k], self.beta[k] = self._prior(sum(bs) / len(bs))
        self.initialised = True

    def update(self, keys: Sequence[str], outcomes: Sequence[float], kl: float | None = None) -> float:
        """Fold one step in: append ``kl`` (when known) to the window, then update every sample
        in order with the resulting rho; returns that rho."""
        if kl is not None:
            self.kl_window.append(float(kl))
        rho = self.rho()
        for k, b in zip(keys, outcomes):
            if k not in self.alpha:
                self.alpha[k], self.beta[k] = self._prior(self.cfg.v_init)
            self.alpha[k] = rho * self.alpha[k] + float(b)
            self.beta[k] = rho * self.beta[k] + (1.0 - float(b))
        return rho

    def state_dict(self) -> dict:
        return {"alpha": dict(self.alpha), "beta": dict(self.beta), "kl_window": list(self.kl_window),
                "initialised": self.initialised}

    def load_state_dict(self, state: dict) -> None:
        self.alpha = {str(k): float(v) for k, v in state["alpha"].items()}
        self.beta = {str(k): float(v) for k, v in state["beta"].items()}
        self.kl_window = deque((float(x) for x in state["kl_window"]), maxlen=self.cfg.kl_window)
        self.initialised = bool(state["initialised"])


# --- the advantage estimator ---------------------------------------------------------------------
def mssr_shaping(advantages: Tensor, entropy: Tensor, mask: Tensor, coef: float, kappa: float) -> Tensor:
    """MSSR's entropy bonus psi (B, T) = min(coef * H, |A| / kappa) on the mask, 0 elsewhere.

    advantages (B, T), entropy (B, T) (detached), mask (B, T). psi >= 0, psi <= |A| / kappa, and
    psi = 0 where A = 0.
    """
    psi = torch.minimum(coef * entropy.detach().double(), advantages.double().abs() / kappa)  # (B, T)
    return torch.where(mask.bool(), psi, 0.0)


@register_advantage("mssr")
def mssr(
    rewards: Tensor,
    mask: Tensor,
    group_ids: Tensor,
    cfg: AdvantageConfig | None = None,
    *,
    baseline: Tensor | None = None,
    entropy: Tensor | None = None,
    **batch,
) -> Tensor:
    """MSSR (spec §4.3-4.4): single-rollout advantage with a tracked baseline and entropy shaping.

    rewards (B,) sequence scores; baseline (B,) v(x) of each sample's prompt *before* this step's
    update (from ``rl.mssr.BetaTracker``); entropy (B, T) H_t or None (no shaping). group_ids are
    not used: normalisation is over the whole batch.

        a = r - v;  A = (a - mean(a)) / sqrt(max(var(a), var_floor))   (population variance)
        A_hat_t = A + min(entropy_coef * H_t, |A| / entropy_kappa)      on the mask

    Example: r = [1, 0], v = [0.5, 0.5] gives a = [0.5, -0.5], A = [1, -1]; with H = 0.1 the
    bonus is min(0.04, 0.5) = 0.04, so A_hat = [1.04, -0.96].
    """
    cfg = cfg or AdvantageConfig()
    if baseline is None:
        raise ValueError("mssr needs baseline= (B,), the tracked value of each prompt (rl.mssr.BetaTracker)")
    B = mask.shape[0]
    if rewards.shape != (B,) or baseline.shape != (B,):
        raise ValueError(f"mssr needs rewards and baseline of shape ({B},), got {tuple(rewards.shape)} "
                         f"and {tuple(baseline.shape)}")
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards must be finite; clean them with rl.reward_check.validate_rewards")
    raw = rewards.double() - baseline.to(rewards.device).double()  # (B,)
    var = raw.var(unbiased=False) if B > 1 else raw.new_zeros(())
    adv = ((raw - raw.mean()) * torch.rsqrt(var.clamp_min(cfg.var_floor)))[:, None].expand(mask.shape)  # (B, T)
    if entropy is not None and cfg.entropy_coef > 0:
        adv = adv + mssr_shaping(adv, entropy, mask, cfg.entropy_coef, cfg.entropy_kappa)  # (B, T)
    return finish_advantages(adv, mask, rewards)  # (B, T)


# --- the plug-in ----------------------------------------------------------------------------------
@register_method
class MSSR(Method):
    """MSSR in the RL step: the tracker's baselines and the token entropies go to the ``mssr``
    estimator; after the advantages, this step's outcomes and KL(pi_old || pi_ref) are folded into
    the tracker. Before the first step, an initialisation pass sets the priors."""

    name = "mssr"

    @classmethod
    def active(cls, cfg) -> bool:
        return cfg.train.advantage == "mssr"

    def __init__(self, trainer) -> None:
        super().__init__(trainer)
        self.tracker = BetaTracker(self.cfg.train.mssr)
        self.wants_hidden = self.cfg.train.mssr.entropy_mode == "full_distribution"

    def keys(self, instances) -> list[str]:
        """The tracker's key of each row: its prompt (environment/seed) or its environment."""
        if self.cfg.train.mssr.key == "environment":
            return [inst.env for inst in instances]
        return [f"{inst.env}/{inst.seed}" for inst in instances]

    def before_fit(self) -> dict:
        m = self.cfg.train.mssr
        if m.init_pass and self.trainer.step_index == 0 and not self.tracker.initialised:
            return self.initialise()
        return {}

    def initialise(self) -> dict:
        """Roll out the current policy ``n_init`` times on the prompts of the next ``init_steps``
        steps (every training prompt by default, read from a copy of the pool so the pool itself
        does not move) and set each key's prior from its mean outcome."""
        trainer, t, m = self.trainer, self.cfg.train, self.cfg.train.mssr
        started = time.perf_counter()
        preview = trainer.pool_preview()
        steps = range(trainer.step_index, trainer.step_index + (m.init_steps or t.steps))
        instances = [inst for s in steps for inst in preview.sample_batch(t.prompts_per_step, s, t.seed)]
        acc = trainer.acc
        mine = [inst for inst in instances[acc.process_index :: acc.num_processes] for _ in range(m.n_init)]
        params = replace(trainer.sampling_params(trainer.step_index),
                         seed=stable_hash("mssr_init", t.seed, acc.process_index) % 2**62)
        rollouts = trainer.generate_for(mine, params)
        _, rewards, _ = trainer.grade(mine, rollouts.texts)
        pairs = trainer.gather(list(zip(self.keys(mine), (rewards > m.outcome_threshold).float().tolist())))
        self.tracker.initialise([k for k, _ in pairs], [b for _, b in pairs])
        return {
            "mssr/init_rollouts": len(pairs),
            "mssr/init_outcome_mean": sum(b for _, b in pairs) / max(len(pairs), 1),
            "mssr/init_seconds": time.perf_counter() - started,
        }

    def hidden_statistics(self, hidden: Tensor, head: LMHead, tokens: Tensor, mask: Tensor,
                          temperature: float) -> Tensor:
        _, entropy = head_statistics(hidden, head.weight, tokens, mask, bias=head.bias, temperature=temperature,
                                     features=False, entropy=True)
        return entropy  # (b, T)

    def advantage_inputs(self, ctx: StepContext) -> dict:
        entropy = ctx.hidden.get(self.name)
        if entropy is None:
            entropy = sampled_token_entropy(ctx.old_logp, ctx.mask)  # (B, T)
        keys = self.keys(ctx.instances)
        return {"prompt_keys": keys, "baseline": self.tracker.values(keys).to(ctx.mask.device), "entropy": entropy}

    def after_advantages(self, ctx: StepContext) -> dict:
        """Diagnostics of the shaping, then fold this step's outcomes and KL into the tracker."""
        a, m = self.cfg.train.advantage_cfg, self.cfg.train.mssr
        inputs, mask = ctx.advantage_inputs, ctx.mask
        baseline, entropy, keys = inputs["baseline"], inputs["entropy"], inputs["prompt_keys"]
        unshaped = mssr(ctx.shaped, mask, ctx.group_ids, a, baseline=baseline)  # (B, T)
        psi = mssr_shaping(unshaped, entropy, mask, a.entropy_coef, a.entropy_kappa)  # (B, T)
        capped = mask & (unshaped.abs() / a.entropy_kappa < a.entropy_coef * entropy)  # (B, T)
        n = mask.sum().clamp_min(1)
        seen = self.tracker.seen(keys)
        pairs = list(zip(keys, (ctx.rewards > m.outcome_threshold).float().tolist()))
        kls: list[float] = []
        if ctx.ref_logp is not None:  # per-sample mean token k3 estimate of KL(pi_old || pi_ref)
            per_token = kl_estimate(ctx.old_logp, ctx.ref_logp, "k3") * mask
            kls = (per_token.sum(1) / mask.sum(1).clamp_min(1)).tolist()
        pairs, kls = self.trainer.gather(pairs), self.trainer.gather(kls)  # every process keeps the same tracker
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

    def state_dict(self) -> dict:
        return self.tracker.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.tracker.load_state_dict(state)
