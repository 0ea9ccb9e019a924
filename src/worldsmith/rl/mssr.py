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

The advantage itself (baseline subtraction, batch normalisation, entropy shaping) is the ``mssr``
estimator in ``worldsmith.rl.advantages``; this module holds only the state it needs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor


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
