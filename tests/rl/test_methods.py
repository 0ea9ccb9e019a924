"""The method plug-in interface: hooks run in the documented order, and what they return is used."""

import pytest
import torch

from worldsmith.configuration import build
from worldsmith.policy.model import build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl.advantages import get_advantage
from worldsmith.rl.config import RunConfig
from worldsmith.rl.methods import Method
from worldsmith.rl.trainer import Trainer
from worldsmith.runs import RunDir

STEP_HOOKS = ["before_collect", "generate", "hidden_statistics", "shape_rewards", "advantage_inputs",
              "after_advantages", "extra_roles", "after_update", "postfix"]


class RecorderDouble(Method):
    """A plug-in that records its hook calls, flips every reward, and counts steps in its state."""

    name = "recorder"
    wants_hidden = True

    def __init__(self, trainer):
        super().__init__(trainer)
        self.calls: list[str] = []
        self.steps = 0
        self.used_shaped: list[bool] = []

    def before_fit(self):
        self.calls.append("before_fit")
        return {"recorder/fit": 1.0}

    def before_collect(self, step, timer):
        self.calls.append("before_collect")

    def generate(self, instances, params):
        self.calls.append("generate")
        return None

    def hidden_statistics(self, hidden, head, tokens, mask, temperature):
        if not self.calls or self.calls[-1] != "hidden_statistics":
            self.calls.append("hidden_statistics")
        return hidden[:, 0, :1]  # (b, 1)

    def shape_rewards(self, ctx, rewards):
        self.calls.append("shape_rewards")
        assert ctx.hidden[self.name].shape == (len(rewards), 1)
        return 1.0 - rewards, {"recorder/shaped": float((1.0 - rewards).mean())}

    def advantage_inputs(self, ctx):
        self.calls.append("advantage_inputs")
        return {}

    def after_advantages(self, ctx):
        self.calls.append("after_advantages")
        grpo = get_advantage("grpo")
        self.used_shaped.append(torch.equal(ctx.shaped, 1.0 - ctx.rewards) and torch.allclose(
            ctx.advantages, grpo(1.0 - ctx.rewards, ctx.mask, ctx.group_ids, self.cfg.train.advantage_cfg)))
        self.steps += 1
        return {"recorder/steps": self.steps}

    def extra_roles(self, step, metrics):
        self.calls.append("extra_roles")
        return []

    def after_update(self, step):
        self.calls.append("after_update")
        return {}

    def postfix(self, row):
        self.calls.append("postfix")
        return {"rec": self.steps}

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def make(steps=2):
    cfg = build(RunConfig, {
        "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
        "pool": [{"name": "arithmetic_chain"}],
        "sampling": {"max_new_tokens": 6},
        "train": {"steps": steps, "prompts_per_step": 2, "group_size": 4, "minibatch_size": 8,
                  "microbatch_size": 4, "checkpoint_every": 1, "seed": 1},
    })
    tok = build_char_tokenizer()
    return Trainer(cfg, build_tiny_model(tok, cfg.model.tiny, seed=0), tok, methods=[RecorderDouble])


def test_hooks_run_in_the_documented_order_and_their_results_are_used(tmp_path):
    trainer = make()
    rec = trainer.method("recorder")
    rows = trainer.fit(RunDir(tmp_path), progress=False)
    assert rec.calls == ["before_fit"] + STEP_HOOKS * 2
    assert rows[0]["recorder/fit"] == 1.0 and "recorder/fit" not in rows[1]
    assert [r["recorder/steps"] for r in rows] == [1, 2]
    # the advantages are GRPO's of the shaped rewards 1 - r, not of r
    assert rec.used_shaped == [True, True]
    assert rows[-1]["recorder/shaped"] == pytest.approx(1.0 - rows[-1]["reward/mean"], abs=1e-6)


def test_a_plugins_state_is_checkpointed_under_its_name(tmp_path):
    run = RunDir(tmp_path)
    make(steps=2).fit(run, progress=False)
    state = torch.load(run.latest_checkpoint(), weights_only=False)
    assert state["methods"]["recorder"] == {"steps": 2}
    again = make(steps=3)
    assert again.resume(run) and again.method("recorder").steps == 2 and again.step_index == 2


def test_asking_for_a_method_the_run_does_not_use_names_the_active_ones():
    with pytest.raises(KeyError, match="active: recorder"):
        make().method("mssr")
