"""The hybrid-verification plug-in: image rows get the three-level reward, other rows keep theirs."""

import pytest
import torch

from worldsmith import envs
from worldsmith.envs.contract import split_seed
from worldsmith.rl.hybrid_verification import HybridVerification
from worldsmith.rl.methods import StepContext

pytestmark = pytest.mark.filterwarnings("ignore:sandbox fallback mode")


class RolloutTextsDouble:
    """Only the texts of a rollout batch, which is all ``shape_rewards`` reads."""

    def __init__(self, texts):
        self.texts = texts


def test_plugin_gates_a_misread_right_answer_and_leaves_text_rows_alone():
    chart, gcd = envs.get("vis_chart"), envs.get("gcd_euclid")
    image_inst = chart.sample(split_seed("train", 3), 0.5)
    text_inst = gcd.sample(split_seed("train", 3), 0.5)
    steps = chart.steps(image_inst.data)
    misread = [steps[0].rsplit("=", 1)[0] + "= 1000", *steps[1:]]
    texts = [chart.reference_response(image_inst.data),
             "\n".join(misread) + "\n" + chart.wrap(image_inst.reference),
             gcd.wrap(text_inst.reference)]
    ctx = StepContext(step=0, instances=[image_inst, image_inst, text_inst], params=None,
                      rollouts=RolloutTextsDouble(texts))
    plugin = HybridVerification(trainer=None)
    shaped, metrics = plugin.shape_rewards(ctx, torch.tensor([1.0, 1.0, 0.25]))
    assert shaped.tolist() == [1.0, 0.0, 0.25]
    assert metrics["hybrid_verification/gated_right_answers"] == 1.0
    assert metrics["hybrid_verification/stage_perception"] == 1.0
    assert plugin.state_dict() == {"gated_total": 1}
