"""PRM scores mixed into the outcome reward: the "Mixed" baseline of VPPO's paper (Zou et al.;
spec §3.7, "PRM-mean + correctness").

Every response's reward becomes r + weight x mean of its step scores (0 for a response without
steps), the process reward model scoring every response, correct or not; the advantage estimator
then runs as configured. Switched on by ``train.shaping.prm_mix.enabled``; metrics
``prm_mix/step_score_mean``, ``prm_mix/prm_calls``, ``prm_mix/prm_seconds``.
"""

from __future__ import annotations

import time

import torch
from pydantic import BaseModel, ConfigDict, Field

from worldsmith.prm import PRMConfig, build_prm
from worldsmith.rl.methods import Method, StepContext, register_method
from worldsmith.steps import step_texts


class PRMMixConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Add the mean step score to every reward.")
    weight: float = Field(1.0, ge=0.0, description="Weight of the mean step score. PROPOSED: 1 (the paper's "
                          "mix weight is not stated).")
    prm: PRMConfig = Field(default_factory=PRMConfig, description="The process reward model.")


def mixed_rewards(rewards: torch.Tensor, step_scores: list[list[float]], weight: float) -> torch.Tensor:
    """(B,) rewards plus ``weight`` x the mean of each row's step scores (0 for a row without steps)."""
    means = torch.tensor([sum(s) / len(s) if s else 0.0 for s in step_scores], dtype=rewards.dtype,
                         device=rewards.device)
    return rewards + weight * means


@register_method
class PRMMix(Method):
    name = "prm_mix"

    @classmethod
    def active(cls, cfg) -> bool:
        return cfg.train.shaping.prm_mix.enabled

    def __init__(self, trainer) -> None:
        super().__init__(trainer)
        self.prm = build_prm(self.cfg.train.shaping.prm_mix.prm, trainer.env_of, policy_backend=trainer.backend)

    def shape_rewards(self, ctx: StepContext, rewards: torch.Tensor) -> tuple[torch.Tensor, dict]:
        started, calls = time.perf_counter(), self.prm.calls
        steps = [step_texts(text) for text in ctx.rollouts.texts]
        scores = self.prm.score_batch(list(zip(ctx.instances, steps)))
        scored = [s for s in scores if s]
        metrics = {
            "prm_mix/step_score_mean": sum(sum(s) / len(s) for s in scored) / len(scored) if scored else 0.0,
            "prm_mix/prm_calls": float(self.prm.calls - calls),
            "prm_mix/prm_seconds": time.perf_counter() - started,
        }
        return mixed_rewards(rewards, scores, self.cfg.train.shaping.prm_mix.weight), metrics
