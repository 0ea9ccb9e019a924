"""The EvoEnv loop (worldsmith.synth.loop): generator rewards and advantages, the evolving pool,
the seed floor, retirement, quarantine, resume and the `worldsmith synth` command.

Two test doubles stand in for abilities the tiny policy lacks:
- ``RecordedProgramsPolicyDouble`` is the tiny HF policy whose *sampling* is replaced by recorded
  completions (a model able to write programs): the completions are teacher-forced through the real
  policy, so their log-probs, the generator's advantages and the update are the real ones.
- ``ScriptedSolverDouble`` answers calibration prompts from the references (a solver able to solve
  about half of them), so programs can land inside the admission band.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from local_server import LocalServerDouble, QuietHandler

from worldsmith.configuration import build
from worldsmith.envs.contract import split_seed
from worldsmith.policy.backend import Rollouts, SamplingParams
from worldsmith.policy.hf_backend import HFBackend, sequence_logprobs
from worldsmith.policy.model import TinyModelConfig, build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl.pool import EnvPool, PoolEntry
from worldsmith.rl.trainer import PhaseTimer
from worldsmith.runs import RunDir
from worldsmith.synth import corpus
from worldsmith.synth.archive import Archive
from worldsmith.synth.calibrate import difficulty_reward
from worldsmith.synth.config import SynthConfig
from worldsmith.synth.generator import AdmittedEnvironment, truncate_jsonl
from worldsmith.synth.loop import evaluate_programs, synth_trainer
from worldsmith.synth.sandboxed_env import SandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
CORPUS = {item.name: item.source for item in corpus.load()}
GOOD, L3_BUG, L5_BUG = "letter_count", "bug_global_random", "bug_substring_scorer"
GARBAGE = "I would write an environment about primes, but here is no code block."


class RecordedProgramsPolicyDouble(HFBackend):
    """The tiny policy, sampling replaced by recorded completions (cycled over the rows). Each
    completion is teacher-forced through the model: behaviour log-probs are the policy's own."""

    def __init__(self, model, tokenizer, completions: list[str], **kw) -> None:
        super().__init__(model, tokenizer, **kw)
        self.completions = completions
        self.calls = 0

    def _generate_batch(self, prompt_ids, params, generator, processor, uniforms=None):
        out = []
        for ids in prompt_ids:
            text = self.completions[self.calls % len(self.completions)]
            self.calls += 1
            toks = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.eos_ids[0]]
            dev = self.device
            with torch.no_grad():
                logp = sequence_logprobs(self.model, torch.tensor([ids], device=dev),
                                         torch.ones(1, len(ids), dtype=torch.bool, device=dev),
                                         torch.tensor([toks], device=dev),
                                         torch.ones(1, len(toks), dtype=torch.bool, device=dev))
            out.append((toks, logp[0].tolist(), True))
        return out


class ScriptedSolverDouble:
    """Answers the first half of each batch with the reference of its prompt, the rest wrongly."""

    def __init__(self, references: dict[str, str]) -> None:
        self.references = references

    def generate(self, prompts: list[str], params: SamplingParams) -> Rollouts:
        right = len(prompts) // 2
        texts = [f"<answer>{self.references.get(p, 'x')}</answer>" if i < right else "<answer>wrong</answer>"
                 for i, p in enumerate(prompts)]
        b = len(prompts)
        empty = torch.zeros((b, 1), dtype=torch.long)
        return Rollouts(empty, empty.bool(), empty, empty.bool(), torch.zeros((b, 1)), texts)


def references(names: list[str], m: int, difficulty: float) -> dict[str, str]:
    from worldsmith.synth.calibrate import calibration_seeds

    out = {}
    for name in names:
        env = SandboxedEnvironment(CORPUS[name], name)
        for inst in env.sample_many(calibration_seeds(m, 0), difficulty):
            out[inst.prompt] = inst.reference
    return out


def config(**synth) -> SynthConfig:
    base = {
        "threads": 1,
        "pool": [{"name": "arithmetic_chain"}, {"name": "gcd_euclid"}],
        "sampling": {"max_new_tokens": 8},
        "optim": {"lr": 1e-3},
        "train": {"steps": 2, "prompts_per_step": 4, "group_size": 2, "checkpoint_every": 1, "seed": 0},
        "synth": {"proposer": "corpus", "prompts_per_step": 1, "group_size": 4, "seed_floor": 0.5,
                  "funnel": {"review": {"enabled": False},
                             "calibration": {"m": 8, "difficulty": 0.0, "max_new_tokens": 8}},
                  **synth},
    }
    return build(SynthConfig, base)


def tiny(positions: int = 512):
    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer, TinyModelConfig(max_position_embeddings=positions), seed=0)
    return model, tokenizer


# --- the generator role ---------------------------------------------------------------------------------
def test_rejected_programs_of_the_policy_get_penalty_rewards_in_the_generator_advantages(tmp_path):
    completions = [f"```python\n{CORPUS[GOOD]}```", f"```python\n{CORPUS[L3_BUG]}```",
                   f"Here it is:\n```python\n{CORPUS[L5_BUG]}```", GARBAGE]
    model, tokenizer = tiny(positions=8192)
    cfg = config(proposer="policy", exemplars=0, max_new_tokens=2048, generator_scale=0.3)
    run = RunDir(tmp_path / "run")
    with Archive(tmp_path / "run" / "archive.sqlite") as archive:
        trainer = synth_trainer(cfg, model, tokenizer, archive, run)
        role = trainer.method("generator")
        policy = RecordedProgramsPolicyDouble(trainer.backend.model, tokenizer, completions)
        role.proposer.backend = policy
        role.funnel.backend = ScriptedSolverDouble(references([GOOD], 8, 0.0))
        gen_batch, lines = role.generator_role(0, PhaseTimer())

        outcomes = [(line.outcome, line.stage) for line in lines]
        assert outcomes == [("admitted", "admitted"), ("rejected", "L3_determinism"), ("rejected", "L5_scorer"),
                            ("rejected", "L1_parse")]
        rewards = [line.reward for line in lines]
        q = difficulty_reward(0.5, 0.3, 0.2)
        assert rewards[0] == pytest.approx(q) and rewards[1:] == [-1.0, -0.5, -1.0]
        assert gen_batch is not None and gen_batch.rewards.tolist() == pytest.approx(rewards)
        # GRPO within the generator prompt's group: (r - mean) / std, the same on every token
        r = torch.tensor(rewards, dtype=torch.float64)
        expected = (r - r.mean()) / (r.std(unbiased=False) + 1e-6)  # population std, as in GRPO
        mask = gen_batch.rollouts.completion_mask
        per_row = (gen_batch.advantages * mask).sum(1) / mask.sum(1)
        assert per_row.tolist() == pytest.approx(expected.tolist(), abs=1e-4)
        assert per_row[1] < 0 and per_row[3] < 0 and per_row[0] > 0 and per_row[0] > per_row[2] > per_row[1]
        # the admitted program joined the pool and its instances are routed to it
        assert list(role.admitted) == [f"synth-{lines[0].id}"]
        assert archive.get(lines[0].id).status == "admitted"

        # one update with both roles moves the policy toward the admitted program, away from garbage
        rows = gen_batch.rollouts
        def margin() -> float:
            with torch.no_grad():
                logp = sequence_logprobs(trainer.model, rows.prompt_ids, rows.prompt_mask, rows.completion_ids,
                                         rows.completion_mask)
            mean = (logp * rows.completion_mask).sum(1) / rows.completion_mask.sum(1)
            return float(mean[0] - mean[3])

        before = margin()
        batch, _ = trainer.collect(0, PhaseTimer())
        metrics = trainer.update(batch, 0, PhaseTimer(), [("generator", gen_batch, 0.3, 2)])
        assert any(k.startswith("generator/loss/") for k in metrics) and "loss/pg_loss" in metrics
        assert margin() > before


def test_a_corpus_proposer_earns_no_generator_loss_but_its_rewards_are_logged(tmp_path):
    cfg = config()
    model, tokenizer = tiny()
    with Archive(tmp_path / "a.sqlite") as archive:
        trainer = synth_trainer(cfg, model, tokenizer, archive, RunDir(tmp_path / "run"))
        role = trainer.method("generator")
        role.proposer.files = [p for p in role.proposer.files if p.stem in (GOOD, L5_BUG, "matrix_trace",
                                                                                  "bug_constant_instance")]
        row = trainer.step(0)
    assert not any(k.startswith("generator/") for k in row)
    assert row["synth/proposals"] == 4 and row["synth/rate/passed_L1"] == 1.0
    assert row["synth/rate/passed_L4"] == 0.75 and row["synth/rate/passed_L5"] == 0.5
    assert row["synth/admitted"] == 0 and row["synth/ahat_hist"][0] == 2  # the untrained solver: â = 0
    assert row["synth/gen_reward/mean"] == pytest.approx((0 + 0 - 0.5 - 1.0) / 4)
    lines = [json.loads(t) for t in (tmp_path / "run" / "funnel.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [0] * 4 and all("reward" in line for line in lines)


# --- the pool ---------------------------------------------------------------------------------------------
def admitted_envs(n: int, name: str = "matrix_trace") -> list[AdmittedEnvironment]:
    inner = SandboxedEnvironment(CORPUS[name], name)
    return [AdmittedEnvironment(inner, cid) for cid in range(1, n + 1)]


def test_the_seed_floor_holds_and_admitted_instances_carry_their_pool_name():
    pool = EnvPool([PoolEntry(name="arithmetic_chain"), PoolEntry(name="gcd_euclid")], floor=0.5)
    assert {i.env for i in pool.sample_batch(8, 0, 0)} <= {"arithmetic_chain", "gcd_euclid"}
    assert pool.last_configured_fraction == 1.0
    for env in admitted_envs(6):
        pool.add(PoolEntry(name=env.name), env)
    batch = pool.sample_batch(20, 1, 0)
    seeds = [i for i in batch if i.env in ("arithmetic_chain", "gcd_euclid")]
    assert len(seeds) == 10 and pool.last_configured_fraction == 0.5  # 2/8 natural share, floor 0.5
    others = [i for i in batch if i.env.startswith("synth-")]
    assert len(others) == 10 and {i.env for i in others} <= {f"synth-{k}" for k in range(1, 7)}
    env = pool.env_named(others[0].env)
    assert env.grade(others[0], f"<answer>{others[0].reference}</answer>").passed
    pool.floor = 0.0
    pool.sample_batch(16, 2, 0)
    assert pool.last_configured_fraction == pytest.approx(4 / 16)  # the weighted share when above the floor
    with pytest.raises(ValueError, match="configured environment"):
        pool.remove("gcd_euclid")


def test_an_admitted_program_that_stops_sampling_is_dropped_from_the_batch():
    pool = EnvPool([PoolEntry(name="arithmetic_chain")], floor=0.2)
    bad = AdmittedEnvironment(SandboxedEnvironment(CORPUS["bug_huge_instance"], "huge"), 7)
    pool.add(PoolEntry(name=bad.name, difficulty=1.0), bad)
    batch = pool.sample_batch(10, 0, 0)
    assert len(batch) == 10 and all(i.env == "arithmetic_chain" for i in batch)
    assert "synth-7" in pool.broken and pool.broken["synth-7"]


def test_pool_state_round_trips_with_admitted_members():
    pool = EnvPool([PoolEntry(name="arithmetic_chain")], floor=0.2)
    envs = admitted_envs(2)
    for env in envs:
        pool.add(PoolEntry(name=env.name, adaptive=True), env)
    pool.update(pool.sample_batch(12, 0, 0), [1.0] * 12)
    state = json.loads(json.dumps(pool.state_dict()))
    again = EnvPool([PoolEntry(name="arithmetic_chain")], floor=0.2,
                    factory=lambda entry: envs[int(entry.name.removeprefix("synth-")) - 1])
    again.load_state_dict(state)
    assert again.joined() == pool.joined() and again.difficulties() == pool.difficulties()
    assert again.pass_rates() == pool.pass_rates()
    assert again.sample_batch(6, 5, 0) == pool.sample_batch(6, 5, 0)
    # a member the factory cannot rebuild (e.g. quarantined) is left out
    partial = EnvPool([PoolEntry(name="arithmetic_chain")], floor=0.2,
                      factory=lambda entry: envs[0] if entry.name == "synth-1" else None)
    partial.load_state_dict(state)
    assert [e.name for e in partial.joined()] == ["synth-1"]
    assert partial.difficulties() == {k: v for k, v in pool.difficulties().items() if k != "synth-2"}


# --- retirement, resume -----------------------------------------------------------------------------------
def test_saturated_environments_retire_and_the_run_resumes_where_it_stopped(tmp_path):
    cfg = config(retire={"saturation": 0.5, "min_batches": 1})
    model, tokenizer = tiny()
    run = RunDir(tmp_path / "run")
    names = [GOOD, "matrix_trace", L5_BUG, "bug_constant_instance"]
    refs = references([GOOD, "matrix_trace"], 8, 0.0)
    with Archive(tmp_path / "run" / "archive.sqlite") as archive:
        trainer = synth_trainer(cfg, model, tokenizer, archive, run)
        role = trainer.method("generator")
        role.proposer.files = sorted((p for p in role.proposer.files if p.stem in names), key=lambda p: p.name)
        role.funnel.backend = ScriptedSolverDouble(refs)
        row = trainer.step(0)
        trainer.step_index = 1
        admitted = dict(role.admitted)
        assert row["synth/admitted"] == 2 and len(admitted) == 2 and row["synth/pool_admitted"] == 2
        assert row["synth/ahat_hist"][4] == 2
        trainer.save_checkpoint(run)
        # the solver masters one admitted environment: its moving pass rate crosses the saturation
        name = sorted(admitted)[0]
        inst = trainer.pool.envs[name].sample(split_seed("train", 10_000), 0.0)
        for _ in range(10):
            trainer.pool.update([inst], [1.0])
        assert trainer.pool.pass_rates()[name] >= 0.5
        metrics = role.upkeep(1)
        assert metrics["synth/retired"] == 1 and name not in role.admitted
        assert archive.get(admitted[name]["id"]).status == "retired"

    # a fresh trainer on the same folder resumes the checkpointed pool and corpus position
    model2, _ = tiny()
    with Archive(tmp_path / "run" / "archive.sqlite") as archive:
        again = synth_trainer(cfg, model2, tokenizer, archive, run)
        again_role = again.method("generator")
        again_role.proposer.files = sorted((p for p in again_role.proposer.files if p.stem in names), key=lambda p: p.name)
        assert again.resume(run) and again.step_index == 1
        assert set(again_role.admitted) == set(admitted)
        assert again_role.proposer.position == 4 and again_role.funnel.counts["admitted"] == 2
        batch = again.pool.sample_batch(16, 1, 0)
        assert any(i.env in admitted for i in batch)


def test_truncate_jsonl_keeps_earlier_steps_and_drops_a_torn_tail(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}\n{"step": 2}\n{"step": 3, "tor')
    truncate_jsonl(path, 1)
    assert [json.loads(t)["step"] for t in path.read_text().splitlines()] == [0, 1]


def test_config_rejects_reserved_names_and_bad_values():
    from worldsmith.configuration import ConfigError

    with pytest.raises(ConfigError, match="reserved"):
        build(SynthConfig, {"pool": [{"name": "synth-3"}]})
    with pytest.raises(ConfigError, match="seed_floor"):
        build(SynthConfig, {"synth": {"seed_floor": 1.5}})
    assert len(build(SynthConfig, {}).pool) == 10 and math.isclose(build(SynthConfig, {}).synth.generator_scale, 0.3)


# --- the command --------------------------------------------------------------------------------------------
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldsmith.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_synth_command_runs_the_shipped_config_end_to_end(tmp_path):
    out = tmp_path / "run"
    res = _cli("synth", str(ROOT / "configs" / "synth_corpus.yaml"), "--out", str(out), "--no-progress",
               "train.steps=2", "sft.examples=64", "eval.instances=4", "eval.samples=1", "train.prompts_per_step=8",
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "admission funnel" in res.stdout and "candidates" in res.stdout
    for name in ("metrics.jsonl", "funnel.jsonl", "funnel.png", "training.png", "summary.json", "archive.sqlite",
                 "config.yaml"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["funnel"]["candidates"] == 8 and summary["steps"] == 2 and "eval_admitted" in summary
    rows = [json.loads(t) for t in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1] and all("synth/seed_fraction" in r for r in rows)
    again = _cli("synth", str(ROOT / "configs" / "synth_corpus.yaml"), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize("args, message", [
    (("synth", "missing.yaml", "--out", "x"), "config file not found"),
    (("synth", "CONFIG", "--out", "x", "synth.seed_floor=2"), "seed_floor"),
    (("synth", "CONFIG", "--out", "x", "synth.proposer=policy", "synth.exemplars=3"), "context"),
    (("synth", "CONFIG", "--out", "x", "--bogus"), "unrecognized"),
])
def test_synth_command_reports_user_mistakes_in_one_line(tmp_path, args, message):
    args = tuple(str(ROOT / "configs" / "synth_corpus.yaml") if a == "CONFIG" else a for a in args)
    res = _cli(*args, "sft.examples=0", cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-1500:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in res.stderr


# --- a remote proposer and reviewer -----------------------------------------------------------------------
class _ProgramsHandler(QuietHandler):
    server: RemoteModelServerDouble

    def do_POST(self):  # noqa: N802
        body = self.read_json()
        srv = self.server
        with srv.lock:
            srv.bodies.append(body)
            generator = [b for b in srv.bodies if "VERDICT" not in b["prompt"]]
            text = (srv.review if "VERDICT" in body["prompt"]
                    else srv.programs[(len(generator) - 1) % len(srv.programs)])
        self.send(200, {"choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})


class RemoteModelServerDouble(LocalServerDouble):
    """A real local OpenAI-compatible HTTP server (a test double of a vLLM/Ollama server): it
    answers generator prompts with the recorded ``programs`` in turn and review prompts with
    ``review``; it records every request body."""

    def __init__(self, programs: list[str], review: str) -> None:
        super().__init__(_ProgramsHandler)
        self.programs, self.review, self.bodies = programs, review, []


def test_a_remote_model_proposes_and_reviews_and_the_solver_alone_is_trained(tmp_path):
    with RemoteModelServerDouble([f"```python\n{CORPUS[GOOD]}```", f"```python\n{CORPUS[L5_BUG]}```", GARBAGE],
                                 "DATA_FLOW: OK\nINSTANCE_TRACE: OK\nALGORITHM: OK\nSCORER: OK\nVERDICT: ACCEPT") as server:
        remote = {"base_url": server.url, "model": "recorded", "max_workers": 1, "logprobs": False}
        cfg = config(proposer="remote", reviewer="remote", remote=remote, prompts_per_step=1, group_size=3,
                     funnel={"review": {"enabled": True},
                             "calibration": {"m": 8, "difficulty": 0.0, "max_new_tokens": 8}})
        model, tokenizer = tiny()
        with Archive(tmp_path / "a.sqlite") as archive:
            trainer = synth_trainer(cfg, model, tokenizer, archive, RunDir(tmp_path / "run"))
            role = trainer.method("generator")
            role.funnel.backend = ScriptedSolverDouble(references([GOOD], 8, 0.0))
            row = trainer.step(0)
            lines = [json.loads(t) for t in (tmp_path / "run" / "funnel.jsonl").read_text().splitlines()]
        assert [(line["outcome"], line["stage"]) for line in lines] == [
            ("admitted", "admitted"), ("rejected", "L5_scorer"), ("rejected", "L1_parse")]
        assert lines[0]["review"]["passed"] and lines[0]["proposer"] == "remote"
        assert row["synth/admitted"] == 1 and not any(k.startswith("generator/") for k in row)
        generator = [b for b in server.bodies if "VERDICT" not in b["prompt"]]
        reviews = [b for b in server.bodies if "VERDICT" in b["prompt"]]
        assert len(generator) == 3 and all(b["model"] == "recorded" for b in server.bodies)
        assert "Write one NEW environment" in generator[0]["prompt"]
        assert len(reviews) == 3 and all(b["temperature"] == 0.6 for b in reviews)  # only the program past L5


def test_a_remote_role_without_a_server_is_a_config_error():
    from worldsmith.configuration import ConfigError

    with pytest.raises(ConfigError, match="needs synth.remote"):
        build(SynthConfig, {"synth": {"proposer": "remote"}})
    with pytest.raises(ConfigError, match="needs synth.remote"):
        build(SynthConfig, {"synth": {"reviewer": "remote"}})
    build(SynthConfig, {"synth": {"reviewer": "remote", "funnel": {"review": {"enabled": False}}}})


def test_admitted_programs_can_start_at_the_difficulty_nearest_the_band(tmp_path):
    cfg = config(admitted_difficulty="search",
                 funnel={"review": {"enabled": False},
                         "calibration": {"m": 8, "difficulty": 0.5, "max_new_tokens": 8,
                                         "search_grid": [0.0, 0.5, 1.0], "search_band": [0.125, 0.5]}})
    model, tokenizer = tiny()
    with Archive(tmp_path / "a.sqlite") as archive:
        trainer = synth_trainer(cfg, model, tokenizer, archive, RunDir(tmp_path / "run"))
        role = trainer.method("generator")
        role.proposer.files = [p for p in role.proposer.files if p.stem == GOOD]
        role.funnel.backend = role.backend = ScriptedSolverDouble(references([GOOD], 8, 0.5))
        _, lines = role.generator_role(0, PhaseTimer())
    start = lines[0].start_difficulty
    assert lines[0].outcome == "admitted"
    assert start["pass_rates"] == {"0.0": 0.0, "0.5": 0.5, "1.0": 0.0} and start["difficulty"] == 0.5
    assert trainer.pool.difficulties()[f"synth-{lines[0].id}"] == 0.5


def test_a_generator_group_with_one_reward_adds_no_generator_loss(tmp_path):
    model, tokenizer = tiny(positions=8192)
    cfg = config(proposer="policy", exemplars=0, max_new_tokens=64)
    with Archive(tmp_path / "a.sqlite") as archive:
        trainer = synth_trainer(cfg, model, tokenizer, archive, RunDir(tmp_path / "run"))
        role = trainer.method("generator")
        role.proposer.backend = RecordedProgramsPolicyDouble(trainer.backend.model, tokenizer, [GARBAGE])
        row = trainer.step(0)
    assert row["synth/gen_reward/mean"] == -1.0 and row["generator/skipped"] == 1
    assert not any(k.startswith("generator/loss/") for k in row)


def test_held_out_evaluation_on_archived_programs_runs_in_the_sandbox(tmp_path):
    broken = CORPUS[GOOD].replace("def generate(self, rng", "def generate(self, rng, *, must_fail")
    with Archive(tmp_path / "a.sqlite") as archive:
        good, bad = archive.add(CORPUS[GOOD], "test", name=GOOD), archive.add(broken, "test", name="broken")
    model, tokenizer = tiny()
    cfg = build(SynthConfig, {"eval": {"instances": 6, "samples": 2}, "sampling": {"max_new_tokens": 8},
                              "synth": {"funnel": {"calibration": {"difficulty": 0.0}}}})
    result = evaluate_programs(cfg, model, tokenizer, tmp_path / "a.sqlite", [good, bad])
    assert set(result["per_program"]) == {f"synth-{good}"} and set(result["failed"]) == {f"synth-{bad}"}
    assert result["per_program"][f"synth-{good}"]["name"] == GOOD
    assert result["accuracy_sampled"] == 0.0 and result["instances_each"] == 6  # an untrained policy
    # a solver that answers right is measured as right: the eval instances are the program's own
    env = AdmittedEnvironment(SandboxedEnvironment(CORPUS[GOOD], GOOD), good)
    seeds = [split_seed("eval", i) for i in range(6)]
    refs = {i.prompt: i.reference for i in env.sample_many(seeds, 0.0)}

    class AlwaysRight(ScriptedSolverDouble):
        def generate(self, prompts, params):
            out = super().generate(prompts, params)
            out.texts = [f"<answer>{self.references[p]}</answer>" for p in prompts]
            return out

    from worldsmith.eval.runner import evaluate

    summary = evaluate(AlwaysRight(refs), [(env.name, 0.0)], instances=6, samples=2, environments={env.name: env},
                       progress=False)
    assert summary["accuracy_greedy"] == 1.0 and summary["accuracy_sampled"] == 1.0
    assert evaluate_programs(cfg, model, tokenizer, tmp_path / "a.sqlite", []) is None
