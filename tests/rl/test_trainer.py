"""The RL spine end to end on the tiny model: learning, parameter updates, resume, bad rewards."""

import copy
import json
import math

import pytest
import torch

from worldsmith import Environment, envs
from worldsmith.configuration import build
from worldsmith.envs.contract import Score
from worldsmith.policy.hf_backend import sequence_logprobs
from worldsmith.policy.model import build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl import trainer as trainer_module
from worldsmith.rl.config import RunConfig
from worldsmith.rl.trainer import PhaseTimer, Trainer
from worldsmith.runs import RunDir


class LetterA(Environment):
    """Trivially learnable: the reward is the fraction of the response's characters that are 'a'.

    It overrides ``grade`` (no answer tags needed), so an untrained model already gets a spread of
    rewards and the learning signal is dense.
    """

    name = "test_letter_a"
    description = "Write the letter a."

    def generate(self, rng, difficulty):
        return {"n": rng.randint(0, 9)}

    def solve(self, instance):
        return "a"

    def render(self, instance):
        return f"Write a {instance['n']}"

    def score(self, instance, answer):
        return float(answer == "a")

    def grade(self, instance, response):
        if not response:
            return Score(0.0, False, "empty")
        value = response.count("a") / len(response)
        return Score(value, value == 1.0, "fraction of a")


class FlakyReward(LetterA):
    """A grader that misbehaves on purpose: NaN, None, a string, 2.0, or a raise."""

    name = "test_flaky_reward"

    def grade(self, instance, response):
        bad = len(response) % 5
        if bad == 0:
            raise RuntimeError("grader crashed")
        return [None, float("nan"), "yes", 2.0][bad - 1]


@pytest.fixture(autouse=True, scope="module")
def test_environments():
    """Register the test environments for this module only, so registry-wide tests never see them."""
    for cls in (LetterA, FlakyReward):
        envs.register(cls)
    yield
    for cls in (LetterA, FlakyReward):
        envs.registry.unregister(cls.name)


def make(tmp_path, env="test_letter_a", sampling=None, **train):
    cfg = build(RunConfig, {
        "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
        "pool": [{"name": env}],
        "sampling": {"max_new_tokens": 8, "temperature": 1.0, **(sampling or {})},
        "optim": {"lr": 3e-3},
        "train": {"steps": 4, "prompts_per_step": 4, "group_size": 4, "minibatch_size": 8,
                  "microbatch_size": 4, "checkpoint_every": 2, "seed": 3, **train},
    })
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, cfg.model.tiny, seed=0)
    return cfg, model, tok


def params_of(model):
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def test_reward_rises_and_parameters_change(tmp_path):
    torch.manual_seed(0)
    cfg, model, tok = make(tmp_path, steps=30, prompts_per_step=8, group_size=8, minibatch_size=64,
                           microbatch_size=64, checkpoint_every=0)
    cfg.optim.lr = 1e-2
    start = params_of(model)
    rows = Trainer(cfg, model, tok).fit(RunDir(tmp_path), progress=False)
    first = sum(r["reward/mean"] for r in rows[:5]) / 5
    last = sum(r["reward/mean"] for r in rows[-5:]) / 5
    assert last > first + 0.2, (first, last)
    changed = [k for k, v in params_of(model).items() if not torch.equal(v, start[k])]
    assert len(changed) == len(start)
    for phase in ("generate", "grade", "backward", "optimizer"):
        assert rows[-1][f"time/{phase}"] > 0


def test_resume_continues_the_same_trajectory(tmp_path):
    cfg, model, tok = make(tmp_path)
    straight = RunDir(tmp_path / "straight")
    Trainer(cfg, model, tok).fit(straight, progress=False)

    cfg2 = cfg.model_copy(deep=True)
    cfg2.train.steps = 2
    _, model2, _ = make(tmp_path)
    split = RunDir(tmp_path / "split")
    Trainer(cfg2, model2, tok).fit(split, progress=False)
    # a fresh process would rebuild everything from the config and the checkpoint
    _, model3, _ = make(tmp_path)
    resumed = Trainer(cfg, model3, tok)
    assert resumed.resume(split) and resumed.step_index == 2
    resumed.fit(split, progress=False)

    a, b = params_of(model), params_of(resumed.acc.unwrap_model(resumed.model))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    keys = ("step", "reward/mean", "loss/loss", "entropy")
    assert [r[k] for r in straight.read_metrics() for k in keys] == pytest.approx(
        [r[k] for r in split.read_metrics() for k in keys], abs=1e-6)
    assert len(split.read_metrics()) == 4


def test_a_time_budget_stops_at_a_step_boundary_and_survives_a_resume(tmp_path, monkeypatch):
    clock = iter(range(0, 10_000, 5))  # every perf_counter call advances 5 "seconds"
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: float(next(clock)))
    cfg, model, tok = make(tmp_path, steps=50, checkpoint_every=0, time_budget_s=1e-6)
    run = RunDir(tmp_path)
    trainer = Trainer(cfg, model, tok)
    rows = trainer.fit(run, progress=False)
    assert len(rows) == 1 and trainer.out_of_time()  # one step spends any positive budget
    assert [p.name for p in run.checkpoint_dir.iterdir()] == ["step_1.pt"]  # saved where it stopped
    spent = trainer.train_seconds
    assert spent == rows[0]["time/step"] > 0

    again = Trainer(cfg, make(tmp_path)[1], tok)
    assert again.resume(run) and again.train_seconds == spent
    assert again.fit(run, progress=False) == []  # the budget is still spent after a resume

    more = cfg.model_copy(deep=True)
    more.train.time_budget_s = spent * 2.5  # room for the step that crosses it, then stop
    longer = Trainer(more, make(tmp_path)[1], tok)
    assert longer.resume(run)
    taken = longer.fit(run, progress=False)
    times = [r["time/step"] for r in run.read_metrics()]
    assert len(taken) >= 1 and longer.step_index == len(times) < 50
    assert sum(times) >= more.train.time_budget_s > sum(times[:-1])
    assert longer.train_seconds == pytest.approx(sum(times))


def test_invalid_rewards_are_counted_and_never_reach_advantages(tmp_path):
    cfg, model, tok = make(tmp_path, env="test_flaky_reward", steps=2)
    rows = Trainer(cfg, model, tok).fit(RunDir(tmp_path), progress=False)
    for row in rows:
        assert row["reward/invalid"] == 16  # every reward of the batch was invalid
        assert row["reward/mean"] == 0.0
        assert all(v is None or v == v for v in row.values() if isinstance(v, float))  # no NaN
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("reward/invalid_exception", 0) for r in logged) > 0


def test_checkpoints_are_written_atomically_and_pruned(tmp_path):
    cfg, model, tok = make(tmp_path, steps=6, checkpoint_every=2)
    run = RunDir(tmp_path)
    Trainer(cfg, model, tok).fit(run, progress=False)
    names = sorted(p.name for p in run.checkpoint_dir.iterdir())
    assert names == ["step_4.pt", "step_6.pt"]  # keep_checkpoints=2; no temp files left
    assert (tmp_path / "config.yaml").exists()


# --- exploration methods: Mixed-CUTS, G2RL, MSSR -----------------------------------------------
MIXED = {"cuts": {"enabled": True, "warmup": 2}, "mixed_plan": {"standard": 2, "cuts": 2}}


def test_mixed_cuts_rows_follow_the_plan_and_old_logprobs_are_recomputed(tmp_path):
    cfg, model, tok = make(tmp_path, sampling=MIXED)
    batch, metrics = Trainer(cfg, model, tok).collect(0, PhaseTimer())
    assert batch.off_policy.tolist() == [False, False, True, True] * 4
    r, m = batch.rollouts, batch.rollouts.completion_mask
    for g in range(4):  # the merged batch keeps each group's prompt on all its rows
        rows = [r.prompt_ids[i][r.prompt_mask[i]].tolist() for i in range(4 * g, 4 * g + 4)]
        assert all(row == rows[0] for row in rows)
    with torch.no_grad():
        policy = sequence_logprobs(model, r.prompt_ids, r.prompt_mask, r.completion_ids, m)
    torch.testing.assert_close(batch.old_logp[m], policy[m], rtol=0, atol=1e-5)  # PPO's ratio uses these
    standard = m & ~batch.off_policy[:, None]
    torch.testing.assert_close(r.behaviour_logp[standard], policy[standard], rtol=0, atol=1e-5)
    uniform = m & batch.off_policy[:, None] & (torch.arange(m.shape[1], device=m.device) >= 2)
    sizes = torch.exp(-r.behaviour_logp[uniform])  # behaviour = log(1 / |S_t|)
    torch.testing.assert_close(sizes, sizes.round(), rtol=0, atol=1e-4)
    assert (batch.old_logp[uniform] - r.behaviour_logp[uniform]).abs().max() > 0.1
    for key in ("cuts/reward_mean_standard", "cuts/reward_mean_cuts", "cuts/var_mixed", "cuts/var_within",
                "cuts/var_between", "cuts/set_size_mean", "cuts/behaviour_logp_mean", "cuts/policy_logp_mean"):
        assert key in metrics
    assert metrics["cuts/old_logp_uniform_fraction"] < 0.5


def test_old_logprob_pass_runs_once_and_only_when_needed(tmp_path, monkeypatch):
    calls = []

    def counting(*args, **kwargs):
        calls.append(kwargs.get("return_hidden", False))
        return sequence_logprobs(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "sequence_logprobs", counting)
    cfg, model, tok = make(tmp_path)
    Trainer(cfg, model, tok).collect(0, PhaseTimer())
    assert calls == []  # plain temperature-1 sampling: behaviour log-probs are the old ones
    cfg, model, tok = make(tmp_path, shaping={"g2rl": {"enabled": True}})
    batch, metrics = Trainer(cfg, model, tok).collect(0, PhaseTimer())
    assert calls == [True] * 4  # one forward (4 microbatches of 4) gives log-probs and Phi together
    # the diagnostics describe this batch (the values of nu itself: tests/rl/test_g2rl_wiring.py)
    groups = batch.rewards.view(-1, cfg.train.group_size)  # (prompts, G)
    equal = float((groups == groups[:, :1]).all(1).double().mean())
    assert metrics["g2rl/equal_reward_group_fraction"] == pytest.approx(equal, abs=1e-12)
    assert 0.0 <= metrics["g2rl/nu_min"] <= metrics["g2rl/nu_mean"] <= metrics["g2rl/nu_max"] <= 1.0


def test_mixed_cuts_with_g2rl_trains_and_shapes_by_the_formula(tmp_path):
    def logged(lam, folder):
        cfg, model, tok = make(tmp_path, sampling=MIXED, steps=2, checkpoint_every=0, advantage="rloo",
                               shaping={"g2rl": {"enabled": True, "lam": lam}})
        start = params_of(model)
        Trainer(cfg, model, tok).fit(RunDir(tmp_path / folder), progress=False)
        rows = [json.loads(line) for line in (tmp_path / folder / "metrics.jsonl").read_text().splitlines()]
        assert any(not torch.equal(v, start[k]) for k, v in params_of(model).items())
        return rows

    plain = logged(0.0, "lam0")
    assert len(plain) == 2
    for row in plain:
        assert row["cuts/fraction"] == 0.5
        # lam = 0: r~ = r (1 + 0) = 2 * score - 1, member by member, so also on average
        assert row["g2rl/shaped_reward_mean"] == pytest.approx(2 * row["reward/mean"] - 1, abs=1e-6)
        assert all(v == v for v in row.values() if isinstance(v, float))  # no NaN
    shaped = logged(2.0, "lam2")
    # lam = 2: every |r~| = |r| (1 + 2 nu~) >= |r|, strictly where nu~ > 0 (each group's most novel member)
    assert any(abs(row["g2rl/shaped_reward_mean"] - (2 * row["reward/mean"] - 1)) > 1e-3 for row in shaped)


def test_mssr_tracker_is_checkpointed_and_resume_continues_the_same_trajectory(tmp_path):
    def trainer(steps):
        cfg, model, tok = make(tmp_path, steps=steps, advantage="mssr", group_size=1, prompts_per_step=8,
                               minibatch_size=8, microbatch_size=8, loss_cfg={"kl_coef": 0.01},
                               mssr={"init_steps": 4})
        return Trainer(cfg, model, tok, ref_model=copy.deepcopy(model))

    straight, straight_run = trainer(4), RunDir(tmp_path / "straight")
    rows = straight.fit(straight_run, progress=False)
    assert rows[0]["mssr/init_rollouts"] == 32 and rows[0]["mssr/seen_fraction"] == 1.0
    assert len(straight.method("mssr").tracker.kl_window) == 4 and rows[-1]["mssr/kl"] > 0
    split = RunDir(tmp_path / "split")
    trainer(2).fit(split, progress=False)
    resumed = trainer(4)
    assert resumed.resume(split) and resumed.method("mssr").tracker.initialised and len(resumed.method("mssr").tracker.kl_window) == 2
    resumed.fit(split, progress=False)
    want, got = straight.method("mssr").tracker.state_dict(), resumed.method("mssr").tracker.state_dict()
    assert got["alpha"] == pytest.approx(want["alpha"], abs=1e-9) and got["beta"] == pytest.approx(want["beta"], abs=1e-9)
    assert got["kl_window"] == pytest.approx(want["kl_window"], abs=1e-9)
    a, b = params_of(straight.model), params_of(resumed.model)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    keys = ("mssr/rho", "mssr/value_mean", "mssr/psi_mean", "loss/loss")
    assert [r[k] for r in straight_run.read_metrics() for k in keys] == pytest.approx(
        [r[k] for r in split.read_metrics() for k in keys], abs=1e-6)


def test_mssr_per_environment_baseline_and_full_distribution_entropy(tmp_path):
    cfg, model, tok = make(tmp_path, steps=2, checkpoint_every=0, advantage="mssr", group_size=1,
                           prompts_per_step=8, minibatch_size=8, microbatch_size=8,
                           mssr={"key": "environment", "init_pass": False, "entropy_mode": "full_distribution"})
    tr = Trainer(cfg, model, tok)
    rows = tr.fit(RunDir(tmp_path), progress=False)
    assert rows[0]["mssr/seen_fraction"] == 0.0 and rows[1]["mssr/seen_fraction"] == 1.0
    assert rows[0]["mssr/value_mean"] == 0.5 and rows[0]["mssr/rho"] == pytest.approx((0.875 + 0.96) / 2)
    assert rows[0]["mssr/kl"] is None  # no reference model: the KL window stays empty
    assert list(tr.method("mssr").tracker.alpha) == ["test_letter_a"]
    # the full distribution of an untrained model is near uniform: far above the 1/e sampled-token bound
    assert rows[0]["mssr/entropy"] > 1 / math.e
