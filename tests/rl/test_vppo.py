"""VPPO: the spec's four unit tests, hand-computed advantages, and the plug-in's reward prefixes
on real tokenised completions."""

import pytest
import torch

from worldsmith import envs
from worldsmith.configuration import build
from worldsmith.envs.contract import split_seed
from worldsmith.policy.backend import Rollouts, SamplingParams
from worldsmith.policy.model import build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl.config import RunConfig
from worldsmith.rl.methods import StepContext
from worldsmith.rl.trainer import Trainer
from worldsmith.rl.vppo import VPPOConfig, reward_prefix_length, vppo


def run(lengths, correct, prefix, alpha=0.5, relu=False, groups=None):
    T = max(lengths)
    mask = torch.tensor([[t < n for t in range(T)] for n in lengths])
    groups = torch.tensor(groups or [0] * len(lengths))
    return vppo(torch.tensor([float(c) for c in correct]), mask, groups, vppo_correct=torch.tensor(correct),
                vppo_prefix=torch.tensor(prefix), vppo_alpha=alpha, vppo_relu=relu)


# --- the spec's four unit tests (§3.8) ------------------------------------------------------------------
def test_all_correct_group_has_zero_advantage_everywhere():
    adv = run([3, 5, 4], [True, True, True], [0, 0, 0])
    assert torch.equal(adv, torch.zeros(3, 5))


def test_error_in_the_first_step_gives_an_empty_prefix_and_minus_the_mean_everywhere():
    assert reward_prefix_length(0, 12, 0, VPPOConfig(shorten="none")) == 0
    adv = run([4, 6], [True, False], [0, reward_prefix_length(0, 6, 0, VPPOConfig(shorten="none"))])
    mean = (1.0 + 0.0) / 2
    assert torch.allclose(adv[1], torch.full((6,), -mean))
    assert torch.allclose(adv[0, :4], torch.full((4,), 1 - mean)) and torch.equal(adv[0, 4:], torch.zeros(2))


def test_a_buffer_at_least_the_error_position_empties_the_prefix():
    cfg = VPPOConfig()  # c = prompt length
    assert reward_prefix_length(7, 30, 7, cfg) == 0
    assert reward_prefix_length(7, 30, 50, cfg) == 0
    assert reward_prefix_length(7, 30, 6, cfg) == 1
    assert reward_prefix_length(10, 30, 0, VPPOConfig(shorten="fixed", fixed_tokens=10)) == 0
    assert reward_prefix_length(10, 30, 0, VPPOConfig(shorten="partial", partial_share=0.5)) == 0
    assert reward_prefix_length(20, 30, 0, VPPOConfig(shorten="partial", partial_share=0.5)) == 5
    assert reward_prefix_length(None, 30, 0, VPPOConfig(shorten="none")) == 0


def test_group_mean_uses_response_level_averages_not_token_means():
    # correct response of 2 tokens, incorrect of 10 tokens all in the prefix
    adv = run([2, 10], [True, False], [0, 10])
    mean = (1.0 + 0.5 * 10 / 10) / 2  # 0.75; the token mean would be (2 * 1 + 10 * 0.5) / 12
    assert torch.allclose(adv[0, :2], torch.full((2,), 1 - mean), atol=1e-6)
    assert torch.allclose(adv[1], torch.full((10,), 0.5 - mean), atol=1e-6)


# --- hand-computed cases -----------------------------------------------------------------------------------
def test_hand_computed_group_of_four():
    adv = run([10, 8, 10, 5], [True, False, False, False], [0, 4, 0, 2])
    mean = (1 + 0.5 * 4 / 8 + 0 + 0.5 * 2 / 5) / 4  # 0.3625
    expected = torch.zeros(4, 10)
    expected[0, :10] = 1 - mean
    expected[1, :4], expected[1, 4:8] = 0.5 - mean, -mean
    expected[2, :10] = -mean
    expected[3, :2], expected[3, 2:5] = 0.5 - mean, -mean
    assert torch.allclose(adv, expected, atol=1e-6)


def test_relu_clips_only_prefix_tokens_of_incorrect_responses():
    adv = run([4, 4, 4, 4], [True, True, False, False], [0, 0, 2, 0], relu=True)
    mean = (1 + 1 + 0.5 * 2 / 4 + 0) / 4  # 0.5625 > alpha
    assert torch.allclose(adv[2], torch.tensor([0.0, 0.0, -mean, -mean]))
    assert torch.allclose(adv[3], torch.full((4,), -mean))
    assert torch.allclose(adv[0], torch.full((4,), 1 - mean))
    off = run([4, 4, 4, 4], [True, True, False, False], [0, 0, 2, 0], relu=False)
    assert torch.allclose(off[2, :2], torch.full((2,), 0.5 - mean))


def test_groups_are_centred_separately_and_alpha_scales_the_prefix():
    adv = run([4, 4, 4, 4], [True, False, False, False], [0, 4, 2, 0], alpha=0.3, groups=[0, 0, 1, 1])
    assert torch.allclose(adv[0], torch.full((4,), 1 - (1 + 0.3) / 2))
    assert torch.allclose(adv[1], torch.full((4,), 0.3 - (1 + 0.3) / 2))
    mean = (0.3 * 2 / 4) / 2
    assert torch.allclose(adv[2], torch.tensor([0.3 - mean, 0.3 - mean, -mean, -mean]))


# --- the plug-in on real tokenised completions -------------------------------------------------------------
def make_trainer(**vppo_cfg):
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, build(RunConfig, {}).model.tiny.model_copy(
        update={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}))
    cfg = build(RunConfig, {
        "pool": [{"name": "arithmetic_chain", "difficulty": 0.3}],
        "sampling": {"max_new_tokens": 24},
        "train": {"steps": 1, "prompts_per_step": 2, "group_size": 4, "minibatch_size": 8, "microbatch_size": 8,
                  "advantage": "vppo", "vppo": vppo_cfg},
    })
    return Trainer(cfg, model, tok)


def rollouts_of(trainer, prompt, texts):
    tok = trainer.tokenizer
    rows = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    T = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), True
    return Rollouts(torch.tensor([p] * len(rows)), torch.ones(len(rows), len(p), dtype=torch.bool), ids, mask,
                    torch.zeros(len(rows), T), [trainer.backend.decode(r) for r in rows])


def test_the_plugin_finds_the_first_wrong_step_and_shortens_the_prefix():
    trainer = make_trainer(shorten="fixed", fixed_tokens=2)
    env = envs.get("arithmetic_chain")
    inst = next(i for i in (env.sample(split_seed("train", k), 0.3) for k in range(50)) if len(env.steps(i.data)) >= 3)
    s = env.steps(inst.data)
    wrong = str(int(s[2]) + 1)
    texts = [
        f"{s[0]}\n{s[1]}\n{wrong}\n<answer>{wrong}</answer>",  # first error at step 3, char len(s0)+len(s1)+2
        f"Step 1: {s[0]}\nStep 2: {int(s[1]) + 5}\n<answer>0</answer>",  # marker layout, error at step 2
        "\n".join(s) + f"\n<answer>{inst.reference}</answer>",  # correct: no PRM call
        "<answer>3</answer>",  # no steps
    ]
    r = rollouts_of(trainer, inst.prompt, texts)
    passed = [env.grade(inst, t).passed for t in r.texts]
    assert passed == [False, False, True, False]
    ctx = StepContext(0, [inst] * 4, SamplingParams(), rollouts=r, passed=passed)
    method = trainer.method("vppo")
    prefix, metrics = method.prefixes(ctx)
    error_char = len(s[0]) + len(s[1]) + 2  # the char tokenizer: one token per character
    assert prefix[0] == error_char - 2
    assert prefix[1] == len(f"Step 1: {s[0]}\n") - 2
    assert prefix[2] == 0 and prefix[3] == 0
    assert metrics["vppo/prm_calls"] == 2.0
    assert metrics["vppo/m_err_3"] == pytest.approx(1 / 3) and metrics["vppo/m_err_2"] == pytest.approx(1 / 3)
    assert metrics["vppo/no_steps"] == pytest.approx(1 / 3)
    assert metrics["vppo/steps_per_response"] == pytest.approx((3 + 2 + len(s) + 0) / 4)
    assert metrics["vppo/rp_fraction"] == pytest.approx(
        (prefix[0] / r.completion_mask[0].sum().item() + prefix[1] / r.completion_mask[1].sum().item()) / 3)


def test_the_default_buffer_is_the_prompt_length():
    trainer = make_trainer()
    env = envs.get("arithmetic_chain")
    inst = env.sample(split_seed("train", 1), 0.3)
    s = env.steps(inst.data)
    r = rollouts_of(trainer, inst.prompt, [f"{s[0]}\nxx\n<answer>1</answer>"])
    ctx = StepContext(0, [inst], SamplingParams(), rollouts=r, passed=[False])
    prefix, _ = trainer.method("vppo").prefixes(ctx)
    assert len(inst.prompt) > len(s[0]) + 1 and prefix == [0]


def test_a_training_step_logs_the_vppo_metrics():
    trainer = make_trainer(shorten="none")
    row = trainer.step(0)
    for key in ("vppo/rp_fraction", "vppo/steps_per_response", "vppo/prm_calls", "vppo/prm_seconds", "vppo/m_err_none"):
        assert key in row and row[key] == row[key], key
    assert row["vppo/prm_calls"] <= 8


def test_compare_knows_vppo_its_simple_prefix_and_the_prm_mix_baseline():
    from worldsmith.compare import method_config

    cfg = build(RunConfig, {"train": {"vppo": {"shorten": "partial"}}})
    assert method_config(cfg, "grpo", 0).train.advantage == "grpo"
    vppo_cfg = method_config(cfg, "vppo", 0).train
    assert vppo_cfg.advantage == "vppo" and vppo_cfg.vppo.shorten == "partial"
    simple = method_config(cfg, "vppo_simple", 0).train
    assert simple.advantage == "vppo" and simple.vppo.shorten == "none"
    mix = method_config(cfg, "prm_mix", 0).train
    assert mix.advantage == "grpo" and mix.shaping.prm_mix.enabled


def test_prm_mix_adds_the_mean_step_score_to_every_reward():
    from worldsmith.rl.prm_mix import mixed_rewards

    out = mixed_rewards(torch.tensor([1.0, 0.0, 0.0]), [[1.0, 1.0], [1.0, 0.0, 0.0, 0.0], []], weight=0.5)
    assert torch.allclose(out, torch.tensor([1.5, 0.125, 0.0]))


def test_prm_mix_in_a_training_step_scores_every_response_and_shapes_its_reward():
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, build(RunConfig, {}).model.tiny.model_copy(
        update={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}))
    cfg = build(RunConfig, {
        "pool": [{"name": "arithmetic_chain", "difficulty": 0.3}], "sampling": {"max_new_tokens": 16},
        "train": {"steps": 1, "prompts_per_step": 2, "group_size": 4, "minibatch_size": 8, "microbatch_size": 8,
                  "shaping": {"prm_mix": {"enabled": True}}}})
    trainer = Trainer(cfg, model, tok)
    seen = {}
    method = trainer.method("prm_mix")
    real = method.shape_rewards

    def spy(ctx, rewards):
        shaped, metrics = real(ctx, rewards)
        seen.update(rewards=rewards.clone(), shaped=shaped.clone(), texts=list(ctx.rollouts.texts), ctx=ctx)
        return shaped, metrics

    method.shape_rewards = spy
    row = trainer.step(0)
    assert row["prm_mix/prm_calls"] == 8.0
    from worldsmith.prm import OraclePRM
    from worldsmith.steps import step_texts

    oracle = OraclePRM(trainer.env_of)
    for i, text in enumerate(seen["texts"]):
        scores = oracle.score_steps(seen["ctx"].instances[i], step_texts(text))
        bonus = sum(scores) / len(scores) if scores else 0.0
        assert float(seen["shaped"][i]) == pytest.approx(float(seen["rewards"][i]) + bonus)
