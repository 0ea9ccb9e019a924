"""VPPO: reward the verified prefix of a wrong response, penalise only what follows its first error
(spec §3, "Save the Good Prefix", arXiv 2601.18984).

Per response o of a group (index i), with correctness from the grader:

- correct: every token gets A = 1;
- incorrect: a process reward model scores its steps (``worldsmith.steps``), M_err is the first step
  scored below ``threshold`` (0.8). With t the index of the first token of that step, the reward
  prefix RP is the first max(0, t - c) tokens: c is the shortening buffer (``shorten``: ``prompt``,
  the prompt's length in tokens, the default; ``fixed``, ``fixed_tokens``; ``partial``,
  ``partial_share`` x |o|; ``none``, the unshortened "simple prefix"). Prefix tokens get A = alpha,
  the others 0. No error found: no prefix (``unlocalised: none``, the default) or the whole body
  (``all_steps``). The PRM runs only on incorrect responses.

The response-level value is A_i = 1 (correct) or alpha |RP| / |o| (incorrect), and the token
advantage is A_{i,t} - mean_j A_j over the group, without a std (Eq. 7); with ``relu`` the
prefix tokens of incorrect responses get max(alpha - mean, 0) (Eq. 8).

The plug-in ``VPPO`` (active when ``train.advantage: vppo``) finds the prefixes and logs
``vppo/rp_fraction`` (|RP|/|o| over incorrect responses), the M_err histogram
(``vppo/m_err_1`` .. ``vppo/m_err_4plus``, ``vppo/m_err_none``, shares of incorrect responses),
``vppo/steps_per_response`` (the step-inflation detector), ``vppo/prm_calls`` and
``vppo/prm_seconds``; the ``vppo`` estimator registered here turns them into advantages.
"""

from __future__ import annotations

import time
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from worldsmith.prm import DEFAULT_THRESHOLD, PRMConfig, build_prm
from worldsmith.rl.advantages import AdvantageConfig, finish_advantages, register_advantage
from worldsmith.rl.methods import Method, StepContext, register_method
from worldsmith.steps import split_steps, token_at


class VPPOConfig(BaseModel):
    """VPPO's settings; defaults from spec §3 with their tags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(0.5, ge=0.0, le=1.0, description="Reward of the last token of the reward prefix of an "
                         "incorrect response. READ (sweep 0.3-0.9, best 0.5-0.7).")
    threshold: float = Field(DEFAULT_THRESHOLD, gt=0.0, le=1.0, description="M_err = first step scored below "
                             "this. READ (chosen on ProcessBench for Qwen2.5-Math-PRM-7B).")
    shorten: Literal["prompt", "fixed", "partial", "none"] = Field(
        "prompt", description="The buffer c before the first error: the prompt's length in tokens (READ, the "
        "paper's default), fixed_tokens, partial_share x |o|, or none (the simple prefix).")
    fixed_tokens: int = Field(200, ge=0, description="c for shorten=fixed. READ (the paper's fixed variant).")
    partial_share: float = Field(0.1, ge=0.0, le=1.0, description="c / |o| for shorten=partial. READ.")
    relu: bool = Field(False, description="Clip prefix advantages of incorrect responses at 0 (Eq. 8). READ: off "
                       "for base models, on for instruct models.")
    unlocalised: Literal["none", "all_steps"] = Field(
        "none", description="An incorrect response in which the PRM finds no error: no prefix (INFERRED, "
        "conservative) or every step counts as the good prefix. Paper: not stated.")
    layout: Literal["auto", "markers", "lines"] = Field("auto", description="Step segmentation (worldsmith.steps).")
    prm: PRMConfig = Field(default_factory=PRMConfig, description="The process reward model.")


# --- the pure functions ----------------------------------------------------------------------------
def reward_prefix_length(error_token: int | None, length: int, prompt_tokens: int, cfg: VPPOConfig) -> int:
    """|RP| for an incorrect response of ``length`` tokens whose first wrong step starts at token
    ``error_token`` (None: no reward prefix)."""
    if error_token is None:
        return 0
    c = {"prompt": prompt_tokens, "fixed": cfg.fixed_tokens, "partial": int(cfg.partial_share * length),
         "none": 0}[cfg.shorten]
    return max(0, min(length, error_token - c))


@register_advantage("vppo")
def vppo(rewards: Tensor, mask: Tensor, group_ids: Tensor, cfg: AdvantageConfig | None = None, *,
         vppo_correct: Tensor | None = None, vppo_prefix: Tensor | None = None, vppo_alpha: float = 0.5,
         vppo_relu: bool = False, **batch) -> Tensor:
    """VPPO token advantages (B, T) from correctness (B,) bool and reward-prefix lengths (B,) long.

    Without ``vppo_correct`` a response is correct when its reward is at least 1; without
    ``vppo_prefix`` no incorrect response has a prefix (then this is outcome-only RL centred by
    the group mean without a std).
    """
    B, T = mask.shape
    mask = mask.bool()
    correct = (vppo_correct if vppo_correct is not None else rewards >= 1.0).bool().to(mask.device)
    prefix = (vppo_prefix if vppo_prefix is not None else torch.zeros(B, dtype=torch.long)).to(mask.device)
    positions = torch.arange(T, device=mask.device).unsqueeze(0)  # (1, T)
    in_prefix = (positions < prefix.unsqueeze(1)) & mask & ~correct.unsqueeze(1)  # (B, T)
    token_value = torch.where(correct.unsqueeze(1), 1.0, torch.where(in_prefix, vppo_alpha, 0.0)).double()
    lengths = mask.sum(1).double()  # (B,)
    response_value = torch.where(correct, 1.0, vppo_alpha * prefix.double().clamp_max(lengths) / lengths.clamp_min(1.0))
    _, group = torch.unique(group_ids, return_inverse=True)
    G = int(group.max()) + 1 if B else 0
    sums = torch.zeros(G, dtype=torch.float64, device=mask.device).index_add_(0, group, response_value)
    counts = torch.zeros(G, dtype=torch.float64, device=mask.device).index_add_(0, group, torch.ones_like(response_value))
    mean = (sums / counts)[group].unsqueeze(1)  # (B, 1)
    adv = token_value - mean
    if vppo_relu:
        adv = torch.where(in_prefix, adv.clamp_min(0.0), adv)
    return finish_advantages(adv, mask, rewards if rewards.is_floating_point() else rewards.float())


# --- the plug-in -------------------------------------------------------------------------------------
@register_method
class VPPO(Method):
    """VPPO in the RL step: the PRM's first error on each incorrect response becomes a reward-prefix
    length handed to the ``vppo`` estimator."""

    name = "vppo"

    @classmethod
    def active(cls, cfg) -> bool:
        return cfg.train.advantage == "vppo"

    def __init__(self, trainer) -> None:
        super().__init__(trainer)
        self.prm = build_prm(self.cfg.train.vppo.prm, trainer.env_of, policy_backend=trainer.backend)

    def prefixes(self, ctx: StepContext) -> tuple[list[int], dict]:
        """The reward-prefix length of every row (0 for correct rows) and the step's metrics."""
        v, r = self.cfg.train.vppo, ctx.rollouts
        lengths = r.completion_mask.sum(1).tolist()
        prompt_tokens = r.prompt_mask.sum(1).tolist()
        steps = [split_steps(text, v.layout) for text in r.texts]
        wrong = [i for i, ok in enumerate(ctx.passed) if not ok]
        started = time.perf_counter()
        calls_before = self.prm.calls
        asked = [i for i in wrong if steps[i]]
        errors = dict(zip(asked, self.prm.first_errors([(ctx.instances[i], [s.text for s in steps[i]]) for i in asked],
                                                       v.threshold)))
        seconds = time.perf_counter() - started
        decode = self.trainer.backend.decode
        prefix, m_err = [0] * len(lengths), []
        for i in wrong:
            k = errors.get(i)
            m_err.append(k)
            if i not in errors:  # no steps: nothing to credit
                continue
            n = int(lengths[i])
            ids = r.completion_ids[i, :n].tolist()
            if k is None:
                char = steps[i][-1].end if v.unlocalised == "all_steps" else None
            else:
                char = steps[i][k].start
            token = None if char is None else token_at(ids, decode, char)
            prefix[i] = reward_prefix_length(token, n, int(prompt_tokens[i]), v)
        n_wrong = max(1, len(wrong))
        metrics = {
            "vppo/rp_fraction": sum(prefix[i] / max(1, lengths[i]) for i in wrong) / n_wrong if wrong else 0.0,
            "vppo/steps_per_response": sum(len(s) for s in steps) / max(1, len(steps)),
            "vppo/incorrect_fraction": len(wrong) / max(1, len(lengths)),
            "vppo/prm_calls": float(self.prm.calls - calls_before),
            "vppo/prm_seconds": seconds,
            "vppo/m_err_none": sum(1 for i, k in zip(wrong, m_err) if k is None and i in errors) / n_wrong,
            "vppo/no_steps": sum(1 for i in wrong if i not in errors) / n_wrong,
        }
        for j in (1, 2, 3):
            metrics[f"vppo/m_err_{j}"] = sum(1 for k in m_err if k == j - 1) / n_wrong
        metrics["vppo/m_err_4plus"] = sum(1 for k in m_err if k is not None and k >= 3) / n_wrong
        return prefix, metrics

    def advantage_inputs(self, ctx: StepContext) -> dict:
        v = self.cfg.train.vppo
        prefix, self._metrics = self.prefixes(ctx)
        device = ctx.mask.device
        return {"vppo_correct": torch.tensor(ctx.passed, dtype=torch.bool, device=device),
                "vppo_prefix": torch.tensor(prefix, dtype=torch.long, device=device),
                "vppo_alpha": v.alpha, "vppo_relu": v.relu}

    def after_advantages(self, ctx: StepContext) -> dict:
        metrics, self._metrics = getattr(self, "_metrics", {}), {}
        return metrics

    def postfix(self, row: dict) -> dict:
        return {"rp": f"{row.get('vppo/rp_fraction', 0.0):.2f}"}
