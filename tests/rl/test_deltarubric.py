"""DeltaRubric's reward rules, role advantages, A/B swap, judging in both orders, the generated
preference benchmark and the reward-model plug-in.

``ScriptedJudgeDouble`` stands in for a trained judge model (the unreachable edge: a model that
follows the format): it answers each prompt by a fixed rule, so the orchestration is tested
exactly. One test runs the real tiny VLM through the same judge."""

import pytest
import torch

from worldsmith.rl.deltarubric import (
    DeltaRubricConfig,
    DeltaRubricReward,
    PreferencePair,
    benchmark_accuracy,
    checklist_problems,
    judge,
    parse_checklist,
    parse_verdict,
    planner_reward,
    position_flips,
    role_advantages,
    role_batches,
    swap,
    verifier_reward,
)
from worldsmith.rl.methods import StepContext

PAIR = PreferencePair("How many red objects?", "red objects = 3", "red objects = 4", "A", b"png", "general")
GOOD = "<checklist>\n1. How many red objects are in the image?\n2. Is there a blue square?\n</checklist>"


@pytest.mark.parametrize("checklist, problem", [
    (GOOD, None),
    ("<checklist>\n</checklist>", "empty"),
    ("no checklist here", "no <checklist>"),
    ("<checklist>\n1. Response A is correct.\n</checklist>", "names a winner"),
    ("<checklist>\n1. How many red objects?\n2. B is wrong about the count\n</checklist>", "names a winner"),
    ("<checklist>\n1. The verdict: A\n</checklist>", "names a winner"),
    ("<checklist>\n1. I would pick [B]\n</checklist>", "names a winner"),
    ("<checklist>\n1. count? <answer>A</answer>\n</checklist>", "names a winner"),
    ("<checklist>\n" + "".join(f"{i}. Is item {i} there?\n" for i in range(1, 10)) + "</checklist>", "more than 8"),
    ("<checklist>\n1. Is a red circle left of a square?\n</checklist>", None),  # the article "a" is no verdict
])
def test_checklist_rules(checklist, problem):
    found = checklist_problems(checklist)
    assert (found is None) if problem is None else (problem in found)


def test_planner_reward_is_the_verifiers_success_and_zero_for_a_broken_checklist():
    assert planner_reward(GOOD, [1.0, 0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert planner_reward("<checklist>\n1. A is better\n</checklist>", [1.0, 1.0]) == 0.0
    assert planner_reward("<checklist>\n</checklist>", [1.0]) == 0.0
    shaped = DeltaRubricConfig(shaping="empty_baseline")
    assert planner_reward(GOOD, [1.0, 1.0], shaped, empty_baseline=0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="empty-checklist"):
        planner_reward(GOOD, [1.0], shaped)
    # a format-penalised verdict counts as a failure, not as negative utility
    assert planner_reward(GOOD, [-0.5, 1.0], DeltaRubricConfig(format_penalty=-0.5)) == pytest.approx(0.5)


def test_verifier_reward_needs_exactly_one_clean_verdict():
    assert verifier_reward("checked <answer>A</answer>", "A") == 1.0
    assert verifier_reward("<answer> b </answer>", "A") == 0.0
    for forged in ("<answer>A</answer><answer>B</answer>", "<answer>A or B</answer>", "A", "</answer>A<answer>"):
        assert parse_verdict(forged) is None
        assert verifier_reward(forged, "A", DeltaRubricConfig(format_penalty=-0.5)) == -0.5


def test_role_advantages_are_normalised_within_each_role():
    r_p = torch.tensor([1.0, 0.0, 0.5, 0.5])
    r_v = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    a_p, a_v = role_advantages(r_p, r_v)
    assert a_p.mean().abs() < 1e-6 and a_p[0] > a_p[2] > a_p[1]
    assert torch.allclose(a_v[0], torch.zeros(2)) and torch.allclose(a_v[2], torch.zeros(2))  # no spread, no signal
    assert a_v[1, 1] > 0 > a_v[1, 0]
    _, a_all = role_advantages(r_p, r_v, DeltaRubricConfig(verifier_norm="example"))
    assert a_all[0, 0] > 0 and a_all[2, 0] < 0
    with pytest.raises(ValueError):
        role_advantages(r_p, r_v[:3])


class ScriptedJudgeDouble:
    """A judge that writes ``checklist`` when planning and, when verifying, prefers the response
    with the smaller number (or always the first slot with ``slot_bias``)."""

    def __init__(self, checklist=GOOD, slot_bias=False):
        self.checklist, self.slot_bias, self.prompts = checklist, slot_bias, []

    def __call__(self, prompts, images):
        self.prompts.extend(prompts)
        out = []
        for p in prompts:
            if p.startswith("Role: planner"):
                out.append(self.checklist)
                continue
            a = p.split("[A] ")[1].split("\n")[0]
            b = p.split("[B] ")[1].split("\n")[0]
            pick = "A" if self.slot_bias or a < b else "B"
            out.append(f"<verification>1. counted -> {pick}</verification><answer>{pick}</answer>")
        return out


def test_swap_and_judging_in_both_orders():
    swapped = swap(PAIR)
    assert (swapped.response_a, swapped.response_b, swapped.label) == (PAIR.response_b, PAIR.response_a, "B")
    fair = judge(ScriptedJudgeDouble(), PAIR)
    assert fair["p_a"] == 1.0 and fair["verdict"] == "A" and fair["verdicts"] == ["A", "B"]
    biased = judge(ScriptedJudgeDouble(slot_bias=True), PAIR)
    assert biased["p_a"] == 0.5 and biased["verdict"] is None  # position bias cancels out
    assert position_flips([fair, biased]) == 0.5
    smuggled = judge(ScriptedJudgeDouble(checklist="<checklist>\n1. A is correct\n</checklist>"), PAIR)
    assert smuggled["rejected_checklists"] == 2
    direct, static = ScriptedJudgeDouble(), ScriptedJudgeDouble()
    assert judge(direct, PAIR, mode="direct")["verdict"] == "A" and not any("planner" in p for p in direct.prompts)
    judge(static, PAIR, mode="static")
    assert all("Are the objects each response mentions present" in p for p in static.prompts)


def test_role_batches_score_both_roles():
    cfg = DeltaRubricConfig(checklists=2, verdicts=3)
    batch = role_batches(ScriptedJudgeDouble(), PAIR, cfg)
    assert batch.verifier_rewards.shape == (2, 3) and torch.all(batch.verifier_rewards == 1.0)
    assert torch.all(batch.planner_rewards == 1.0) and torch.allclose(batch.planner_advantages, torch.zeros(2))
    bad = role_batches(ScriptedJudgeDouble(checklist="<checklist>\n1. choose A\n</checklist>"), PAIR, cfg)
    assert torch.all(bad.planner_rewards == 0.0) and torch.all(bad.verifier_rewards == 1.0)


def test_generated_benchmark_has_one_verifiable_difference_and_balanced_labels():
    from worldsmith.vision.preference import CATEGORIES, generate_benchmark

    pairs = generate_benchmark(4)
    assert [p.category for p in pairs] == [c for c in CATEGORIES for _ in range(4)]
    assert sum(p.label == "A" for p in pairs) == len(pairs) // 2
    for p in pairs:
        assert p.image.startswith(b"\x89PNG") and p.response_a != p.response_b
        good, bad = (p.response_a, p.response_b) if p.label == "A" else (p.response_b, p.response_a)
        if p.category == "hallucination":
            assert bad.endswith(good) and bad.startswith("I also see")
    always_a = [{"verdict": "A"} for _ in pairs]
    scores = benchmark_accuracy(pairs, always_a)
    assert scores["overall"] == 0.5 and scores["macro"] == 0.5 and set(scores["categories"]) == set(CATEGORIES)


def test_reward_plugin_pays_the_preferred_completion():
    class _Instance:
        def __init__(self, prompt, reference):
            self.prompt, self.reference, self.data = prompt, reference, {}

    class _Rollouts:
        texts = ["red objects = 1", "red objects = 9"]

    ctx = StepContext(step=0, instances=[_Instance("q", "red objects = 5")] * 2, params=None, rollouts=_Rollouts())
    plugin = DeltaRubricReward(trainer=None, judge_policy=ScriptedJudgeDouble())
    shaped, metrics = plugin.shape_rewards(ctx, torch.zeros(2))
    assert shaped.tolist() == [1.0, 0.0] and metrics["deltarubric/position_bias"] == 0.0
    assert plugin.state_dict() == {"judged": 2}


@pytest.mark.slow
def test_tiny_vlm_as_judge_always_answers():
    from worldsmith.vision.vlm import VisionPolicy, build_tiny_vlm

    model, processor = build_tiny_vlm(seed=1)
    policy = VisionPolicy(model, processor)
    from worldsmith.vision.preference import generate_benchmark

    pair = generate_benchmark(1)[0]
    res = judge(lambda prompts, images: policy.generate(prompts, images, max_new_tokens=8, temperature=0.0), pair)
    assert res["rejected_checklists"] == 2 and res["p_a"] in (0.0, 0.5, 1.0) and len(res["verdicts"]) == 2
    assert parse_checklist("<checklist>\n1. a\n- b\nnot an item\n</checklist>") == ["a", "b"]


def test_role_training_adds_a_planner_and_a_verifier_batch_to_the_update():
    from worldsmith.policy.model import TinyModelConfig, build_tiny_model
    from worldsmith.policy.tokenizer import build_char_tokenizer
    from worldsmith.rl.config import RunConfig
    from worldsmith.rl.trainer import PhaseTimer, Trainer

    tok = build_char_tokenizer()
    model = build_tiny_model(tok, TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                                  max_position_embeddings=1024), seed=0)
    cfg = RunConfig.model_validate({
        "pool": [{"name": "gcd_euclid", "difficulty": 0.0}], "sampling": {"max_new_tokens": 4},
        "train": {"steps": 1, "prompts_per_step": 2, "group_size": 2, "minibatch_size": 4, "microbatch_size": 4,
                  "deltarubric": {"enabled": True, "pairs_per_step": 3, "planner_tokens": 6, "verifier_tokens": 5,
                                  "judge": {"checklists": 2, "verdicts": 2}}}})
    trainer = Trainer(cfg, model, tok)
    roles = trainer.method("deltarubric_roles")
    pairs = [roles.pair(s, i) for s in range(4) for i in range(3)]
    assert {p.category for p in pairs} == {"general", "hallucination", "reasoning"}
    assert {p.label for p in pairs} == {"A", "B"} and all(p.image for p in pairs)
    metrics: dict = {}
    (name_p, planner, w_p, _), (name_v, verifier, w_v, _) = roles.extra_roles(0, metrics)
    assert (name_p, name_v, w_p, w_v) == ("planner", "verifier", 1.0, 1.0)
    assert len(planner.rollouts) == 3 * 2 and len(verifier.rollouts) == 3 * 2 * 2
    # an untrained policy writes no checklist and no verdict: nothing to reward, nothing to learn
    assert metrics["deltarubric_roles/checklist_rejected"] == 1.0 and metrics["deltarubric_roles/verdict_missing"] == 1.0
    assert torch.all(planner.advantages == 0) and torch.all(verifier.advantages == 0)
    # with advantages, a role batch moves the policy in the same update as the main batch
    main, _ = trainer.collect(0, PhaseTimer())
    main.advantages = torch.zeros_like(main.advantages)
    signs = torch.tensor([1.0, -1.0] * 3)
    forced = roles._batch(planner.rollouts, signs)
    assert torch.equal(forced.advantages, signs[:, None] * planner.rollouts.completion_mask)
    before = [p.detach().clone() for p in model.parameters()]
    out = trainer.update(main, 0, PhaseTimer(), roles=[("planner", forced, 1.0, 4)])
    assert out["planner/loss/n_tokens"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    row = trainer.step(1)
    assert "deltarubric_roles/planner_reward" in row and "verifier/loss/loss" in row
    with pytest.raises(ValueError, match="unknown 'nope'"):
        RunConfig.model_validate({"train": {"deltarubric": {"enabled": True, "categories": ["nope"]}}})
