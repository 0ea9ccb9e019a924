"""The hybrid three-level reward as a method plug-in: GRPO rewards on image environments that never pay
a right answer reached through a misread picture or a contradicted computation.

For each completion of an image-environment instance (``worldsmith.vision.envs``) the reward becomes
``worldsmith.vision.verify.verify(...).reward``: the answer, every claimed step checked against the
scene, and the response's ``<program>`` run in the sandbox against its own claims. Rows of other
environments keep their reward. Metrics: the mean hybrid reward, how many right answers the gates
refused, and the stage shares of the step's failures (perception / alignment / reasoning).

Handed to the trainer as a factory (``Trainer(methods=[lambda t: HybridVerification(t)])``), with
its own ``VerifyConfig``.
"""

from __future__ import annotations

import torch

from worldsmith.rl.methods import Method, StepContext


class HybridVerification(Method):
    """Replace the rewards of image-environment rows by the three-level hybrid reward."""

    name = "hybrid_verification"

    def __init__(self, trainer, cfg=None) -> None:
        from worldsmith.vision.verify import VerifyConfig

        super().__init__(trainer)
        self.verify_cfg = cfg or VerifyConfig()
        self.gated_total = 0

    def shape_rewards(self, ctx: StepContext, rewards: torch.Tensor) -> tuple[torch.Tensor, dict]:
        from worldsmith import envs
        from worldsmith.vision.envs import ImageEnvironment
        from worldsmith.vision.verify import attribution_report, verify

        out = rewards.clone()
        verdicts = []
        cache: dict[str, object] = {}
        for i, (inst, text) in enumerate(zip(ctx.instances, ctx.rollouts.texts, strict=True)):
            env = cache.setdefault(inst.env, envs.get(inst.env))
            if not isinstance(env, ImageEnvironment):
                continue
            verdict = verify(env, inst, text, self.verify_cfg)
            verdicts.append(verdict)
            out[i] = verdict.reward
        if not verdicts:
            return rewards, {}
        report = attribution_report(verdicts)
        self.gated_total += report["gated_right_answers"]
        metrics = {f"{self.name}/reward": report["mean_reward"],
                   f"{self.name}/gated_right_answers": float(report["gated_right_answers"]),
                   f"{self.name}/answer_accuracy": report["answer_accuracy"]}
        metrics.update({f"{self.name}/stage_{k}": v for k, v in report["shares"].items()})
        return out, metrics

    def state_dict(self) -> dict:
        return {"gated_total": self.gated_total}

    def load_state_dict(self, state: dict) -> None:
        self.gated_total = int(state.get("gated_total", 0))
