"""Episodes as token data (observation masking), episode GRPO, CSO pair mining and DPO, on a real
tiny transformers policy built from config."""

import math

import pytest
import torch

from worldsmith.agents import Session, get_agent_env
from worldsmith.agents.cso import (
    DIVERSITY_PROMPTS,
    BackendProposer,
    CSOConfig,
    DPOConfig,
    PlannerProposer,
    dpo,
    mine_pairs,
    pair_rollouts,
    run_cso,
    word_jaccard,
)
from worldsmith.agents.policy import ModelAgent
from worldsmith.agents.train import EpisodeGRPO, EpisodeGRPOConfig
from worldsmith.envs.contract import Instance
from worldsmith.policy.model import TinyModelConfig, build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl.losses import get_loss


@pytest.fixture(scope="module")
def policy():
    tok = build_char_tokenizer()
    return build_tiny_model(tok, TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                                  max_position_embeddings=512), seed=1), tok


def _grid():
    data = {"size": 4, "start": [0, 0], "goal": [0, 3], "walls": [[1, 0]], "word": "KEY"}
    env = get_agent_env("agent_gridworld")
    return env, Instance(env.name, 0, 0.0, env.render(data), "KEY", data)


def test_observation_tokens_are_masked_out(policy):
    model, tok = policy
    env, inst = _grid()
    session = Session.replay(env, inst, ["move(E)", "jump", "move(E)"])
    coder = ModelAgent(model, tok).coder
    ids, mask = coder.completion(session.episode.turns)
    assert len(ids) == len(mask)
    acted = tok.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=True)
    observed = tok.decode([i for i, m in zip(ids, mask) if not m], skip_special_tokens=True)
    assert acted == "move(E)jumpmove(E)"
    assert observed == "".join(f"\n{t.observation}\n" for t in session.episode.turns)
    assert sum(1 for i, m in zip(ids, mask) if m and i == tok.eos_token_id) == 3  # each action ends with EOS
    # the acting context is the prompt followed by exactly those ids
    assert coder.context(env, session) == coder.prompt_ids(env, session) + ids


def test_dpo_loss_by_hand():
    logp = torch.tensor([[-1.0, -1.0], [-2.0, 0.0], [-0.5, 0.0], [-0.5, 0.0]])  # rows: c0, r0, c1, r1
    ref = torch.tensor([[-1.5, -1.5], [-1.0, 0.0], [-0.5, 0.0], [-0.5, 0.0]])
    mask = torch.tensor([[1, 1], [1, 0], [1, 0], [1, 0]], dtype=torch.bool)
    loss, m = get_loss("dpo")(logp, None, None, mask, None, ref_logp=ref)
    # pair 0: margin = (-2 + 3) - (-2 + 1) = 2; pair 1: margin 0; beta 0.5
    expected = -(math.log(1 / (1 + math.exp(-1.0))) + math.log(0.5)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert m["margin"] == pytest.approx(1.0) and m["accuracy"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        dpo(logp, None, None, mask)
    # the chosen-NLL term: chosen rows 0 and 2 have mean NLL 1.0 (2 tokens) and 0.5 (1 token)
    mixed, m2 = dpo(logp, None, None, mask, DPOConfig(sft_weight=0.5), ref_logp=ref)
    assert mixed.item() == pytest.approx(expected + 0.5 * (1.0 + 0.5) / 2, abs=1e-6)
    assert m2["chosen_nll"] == pytest.approx(0.75)


def test_backend_proposer_asks_for_diversity_and_rejects_near_copies():
    prompts = []
    replies = iter(["move(E)", "move(E)", "move(E) now", "move(S)", "open(door)"])

    def generator_double(prompt):  # stands in for an LLM served elsewhere
        prompts.append(prompt)
        return next(replies)

    env, inst = _grid()
    out = BackendProposer(generator_double, threshold=0.6).propose(Session(env, inst), 3)
    assert out == ["move(E)", "move(S)", "open(door)"]
    assert DIVERSITY_PROMPTS[0] not in prompts[0]
    assert prompts[1].endswith(DIVERSITY_PROMPTS[0]) and prompts[2].endswith(DIVERSITY_PROMPTS[1])
    assert prompts[0].startswith("[user] Grid 4x4")
    assert word_jaccard("move(E)", "move(E) now") == pytest.approx(2 / 3)


def test_planner_proposer_puts_the_expert_first():
    env, inst = _grid()
    out = PlannerProposer().propose(Session(env, inst), 5)
    assert out[0] == "move(E)" and len(out) == len(set(out)) == 4  # four moves; no answer before the goal


def test_only_verified_critical_steps_become_pairs(policy):
    model, tok = policy
    env, inst = _grid()
    failed = Session.replay(env, inst, ["move(S)", "move(E)", "move(E)", "move(E)", "answer(NOPE)"])
    # move(S) is a wall bump (idle 0.25 < gamma_low): flagged, but its branch must be finished by the
    # (random, untrained) policy and fails; answer(NOPE) scores 0, answer(KEY) ends the branch correct
    cfg = CSOConfig(max_additional_steps=2, max_action_tokens=6)
    pairs, stats = mine_pairs(model, tok, env, [failed.episode], cfg)
    assert stats["steps"] == 5 and stats["candidates"] == 2 and stats["pairs"] == 1
    assert (pairs[0].chosen, pairs[0].rejected, pairs[0].prefix) == ("answer(KEY)", "answer(NOPE)",
                                                                    ["move(S)", "move(E)", "move(E)", "move(E)"])
    assert stats["supervised_share"] == pytest.approx(0.2)
    unverified, s2 = mine_pairs(model, tok, env, [failed.episode], cfg.model_copy(update={"verify": False}))
    assert s2["pairs"] == 2 and {p.chosen for p in unverified} == {"move(E)", "answer(KEY)"}
    everything, s3 = mine_pairs(model, tok, env, [failed.episode], cfg.model_copy(update={"verify": False,
                                                                                             "prm_filter": False}))
    assert s3["pairs"] > 2
    # a pair's prompt is the exact context the policy saw at that step
    r = pair_rollouts(ModelAgent(model, tok).coder, env, pairs)
    assert r.completion_ids.shape[0] == 2 and r.completion_mask.sum().item() == len("answer(KEY)") + len("answer(NOPE)") + 2


def test_episode_grpo_batch_masks_observations(policy):
    model, tok = policy
    env = get_agent_env("agent_gridworld")
    before = [p.detach().clone() for p in model.parameters()]
    trainer = EpisodeGRPO(model, tok, env, EpisodeGRPOConfig(prompts_per_step=2, group_size=2, max_action_tokens=4,
                                                             difficulty=0.0, max_turns=3))
    batch, metrics = trainer.collect(0)
    r = batch.rollouts
    assert len(batch.instances) == 4 and batch.group_ids.tolist() == [0, 0, 1, 1]
    assert torch.all(batch.advantages[~r.completion_mask] == 0)
    assert torch.all(batch.old_logp[~r.completion_mask] == 0) and torch.all(batch.old_logp[r.completion_mask] < 0)
    assert (~r.completion_mask[:, : int(r.completion_mask.sum(1).min())]).any()  # observations inside
    assert metrics["train/episodes"] == 4 and metrics["train/turns/mean"] <= 3
    batch.advantages = torch.where(r.completion_mask, 1.0, 0.0)  # force a gradient
    trainer.update(batch)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.slow
def test_cso_run_resumes_after_a_finished_round(policy, tmp_path):
    model, tok = policy
    env = get_agent_env("agent_gridworld")
    cfg = CSOConfig(tasks_per_round=2, rounds=1, max_action_tokens=6, max_additional_steps=2, k=2)
    rows = run_cso(model, tok, env, cfg, tmp_path)
    assert (tmp_path / "round_0" / "stats.json").exists() and rows[0]["failures"] <= 2
    state = {k: v.clone() for k, v in model.state_dict().items()}
    again = run_cso(model, tok, env, cfg, tmp_path)  # nothing left to do: loads round 0
    assert again == rows
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_actions_see_the_observations_before_them(policy):
    """Observations are out of the loss but inside the context: changing one changes the
    log-probability of the next action (and nothing before it)."""
    from worldsmith.agents.train import attention_mask, episode_logprobs

    model, tok = policy
    env, inst = _grid()
    coder = ModelAgent(model, tok).coder
    a = Session.replay(env, inst, ["move(E)", "move(E)"]).episode
    b = Session.replay(env, inst, ["move(S)", "move(E)"]).episode  # different first observation
    b.turns[0].action = a.turns[0].action  # same actions, only the observation differs
    r = coder.rollouts({env.name: env}, [a, b])
    assert torch.equal(attention_mask(torch.tensor([[1, 0, 1, 0, 0]], dtype=torch.bool)),
                       torch.tensor([[True, True, True, False, False]]))
    logp = episode_logprobs(model, r)
    first = len(coder.action_ids("move(E)"))
    assert torch.allclose(logp[0, :first], logp[1, :first])
    second = r.completion_mask[0].nonzero().flatten()[first:]
    assert not torch.allclose(logp[0, second], logp[1, second])
    assert torch.all(logp[~r.completion_mask] == 0)


def test_rejection_sampling_fine_tunes_on_successful_episodes_only(policy):
    from worldsmith.agents.experiment import RFT_SAMPLES, fine_tune_on_successes, rft
    from worldsmith.agents.train import episode_logprobs

    model, tok = policy
    env, inst = _grid()
    won = Session.replay(env, inst, ["move(E)", "move(E)", "move(E)", "answer(KEY)"]).episode
    lost = Session.replay(env, inst, ["move(S)", "answer(NOPE)"]).episode
    coder = ModelAgent(model, tok).coder
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        before = [episode_logprobs(model, coder.rollouts({env.name: env}, [ep])).sum().item() for ep in (won, lost)]
        stats = fine_tune_on_successes(model, tok, env, [won, lost, lost])
        after = [episode_logprobs(model, coder.rollouts({env.name: env}, [ep])).sum().item() for ep in (won, lost)]
        assert stats["kept"] == 1 and stats["collect/episodes"] == 3
        assert after[0] > before[0] + 1.0  # the success is learned
        model.load_state_dict(state)
        assert fine_tune_on_successes(model, tok, env, [lost]) == {"collect/episodes": 1, "kept": 0}
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # nothing to learn from
        rows = rft(model, tok, env, 0.0, problems=2, seed=0)
        assert rows[0]["collect/episodes"] == 2 * RFT_SAMPLES
    finally:
        model.load_state_dict(state)
