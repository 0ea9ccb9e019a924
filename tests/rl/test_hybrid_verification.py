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


@pytest.mark.slow
def test_plugin_runs_inside_the_trainer_on_an_image_environment(tmp_path):
    from worldsmith.configuration import build
    from worldsmith.policy.model import build_tiny_model
    from worldsmith.policy.tokenizer import build_char_tokenizer
    from worldsmith.rl.config import RunConfig
    from worldsmith.rl.trainer import Trainer
    from worldsmith.runs import RunDir

    cfg = build(RunConfig, {
        "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
        "pool": [{"name": "vis_chart"}],
        "sampling": {"max_new_tokens": 6},
        "train": {"steps": 1, "prompts_per_step": 2, "group_size": 2, "minibatch_size": 4,
                  "microbatch_size": 4, "checkpoint_every": 1, "seed": 1},
    })
    tok = build_char_tokenizer()
    trainer = Trainer(cfg, build_tiny_model(tok, cfg.model.tiny, seed=0), tok,
                      methods=[lambda t: HybridVerification(t)])
    rows = trainer.fit(RunDir(tmp_path), progress=False)
    assert rows[0]["hybrid_verification/reward"] == 0.0  # an untrained policy states no right answer
    assert rows[0]["hybrid_verification/answer_accuracy"] == 0.0
