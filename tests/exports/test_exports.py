"""Exports for TRL, verl and reasoning-gym-style users: their rewards are worldsmith's grades.

Each test runs the consumer's own entry point where it installs here (TRL's ``GRPOTrainer``,
verl's way of loading a reward module by file path and function name) and checks the consumer's
rewards against grades computed independently with ``env.sample`` and ``env.grade``.
"""

from __future__ import annotations

import importlib.util
import json
import random

import pytest

from worldsmith import envs
from worldsmith.cli import main
from worldsmith.envs.checks import perturbations
from worldsmith.exports.common import EnvSpec, Grader, parse_env_specs, problems

MIX = [EnvSpec("gcd_euclid"), EnvSpec("arithmetic_chain", 0.5)]


def _grade(env: str, seed: int, difficulty: float, completion: str) -> float:
    """The grade of ``completion`` computed without the export code."""
    environment = envs.get(env)
    return environment.grade(environment.sample(seed, difficulty), completion).value


def _completions(rows, rng):
    """Per problem: the reference, a near miss, a spray of two answers and junk."""
    out = []
    for row in rows:
        env = envs.get(row.env)
        near = next(iter(perturbations(row.reference, rng).values()), row.reference + "0")
        for text in (env.wrap(row.reference), env.wrap(near), f"<answer>{row.reference} or {near}</answer>",
                     "no answer at all", "x" * 5000):
            out.append((row, text))
    return out


# --- the common core --------------------------------------------------------------------------------
def test_a_mixture_takes_equal_shares_of_its_splits_problems():
    rows = problems(MIX, 10, "eval")
    assert [r.env for r in rows] == ["gcd_euclid", "arithmetic_chain"] * 5
    assert all(envs.seed_split(r.seed) == "eval" for r in rows)
    for r in rows:
        inst = envs.get(r.env).sample(r.seed, r.difficulty)
        assert (inst.prompt, inst.reference, inst.split) == (r.prompt, r.reference, "eval")
    train = problems(MIX, 10, "train")
    assert not {r.problem_id for r in rows} & {r.problem_id for r in train}
    assert parse_env_specs("gcd_euclid, arithmetic_chain@0.5") == MIX
    with pytest.raises(envs.UnknownEnvironment):
        parse_env_specs("gcd_euclidd")
    with pytest.raises(ValueError):
        parse_env_specs("gcd_euclid@2")


def test_the_grader_regrades_from_coordinates_and_refuses_broken_rows():
    grader = Grader()
    rows = problems(MIX, 6, "train")
    for row, text in _completions(rows, random.Random(0)):
        assert grader.reward(row.env, row.seed, row.difficulty, text) == _grade(row.env, row.seed, row.difficulty, text)
    row = rows[0]
    assert grader.reward(row.env, row.seed, row.difficulty, [{"role": "assistant", "content": f"<answer>{row.reference}</answer>"}]) == 1.0
    assert grader.reward(row.env, row.seed, row.difficulty, None) == 0.0
    assert grader.reward(row.env, row.seed, row.difficulty, {"not": "text"}) == 0.0
    with pytest.raises(ValueError):
        grader.reward("no_such_env", row.seed, 0.0, "<answer>1</answer>")
    with pytest.raises(ValueError):
        grader.reward(row.env, "seven", 0.0, "<answer>1</answer>")


# --- TRL --------------------------------------------------------------------------------------------
def test_the_trl_reward_function_grades_trl_shaped_batches():
    pytest.importorskip("datasets")
    from worldsmith.exports.trl import reward_function, trl_dataset

    ds = trl_dataset(MIX, 6, chat=True)
    assert ds.column_names == ["prompt", "env", "seed", "difficulty", "reference"]
    assert ds[0]["prompt"] == [{"role": "user", "content": problems(MIX, 1)[0].prompt}]
    pairs = _completions(problems(MIX, 6), random.Random(1))
    batch = {key: [ds[i][key] for i in range(6) for _ in range(5)] for key in ("env", "seed", "difficulty", "reference")}
    completions = [[{"role": "assistant", "content": text}] for _, text in pairs]
    rewards = reward_function()(prompts=[None] * len(pairs), completions=completions, completion_ids=None, **batch)
    expected = [_grade(row.env, row.seed, row.difficulty, text) for row, text in pairs]
    assert rewards == expected
    assert sum(rewards) == 6  # exactly the references pass


def test_export_trl_writes_the_dataset_trl_loads(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    from worldsmith.exports.trl import trl_dataset

    assert main(["export", "trl", "--env", "gcd_euclid", "--env", "arithmetic_chain@0.5", "--n", "6",
                 "--out", str(tmp_path / "trl")]) == 0
    assert "wrote 6 rows (gcd_euclid 3, arithmetic_chain 3)" in capsys.readouterr().out
    loaded = datasets.load_from_disk(str(tmp_path / "trl"))
    assert loaded.to_list() == trl_dataset(MIX, 6).to_list()
    manifest = json.loads((tmp_path / "trl" / "manifest.json").read_text())
    assert manifest["envs"] == ["gcd_euclid@0", "arithmetic_chain@0.5"] and manifest["split"] == "train"
    assert main(["export", "trl", "--chat", "--env", "gcd_euclid", "--n", "2", "--out", str(tmp_path / "chat")]) == 0
    assert datasets.load_from_disk(str(tmp_path / "chat"))[0]["prompt"] == [{"role": "user", "content": loaded[0]["prompt"]}]
    assert main(["export", "rg", "--chat", "--env", "gcd_euclid", "--out", str(tmp_path / "rg")]) == 2


@pytest.mark.slow
def test_grpo_trainer_trains_on_an_export_with_worldsmith_rewards(tmp_path):
    """A few real GRPO steps of a tiny model, warm-started so that some completions are right."""
    pytest.importorskip("trl")
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from worldsmith.exports.trl import reward_function, trl_dataset
    from worldsmith.policy.model import TinyModelConfig, build_tiny_model
    from worldsmith.policy.sft import sft_examples, train_sft
    from worldsmith.policy.tokenizer import build_char_tokenizer

    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    # one chat template for SFT (format_prompt) and TRL (conversational prompts): the prompt, a newline
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    model = build_tiny_model(tok, TinyModelConfig(), seed=0)
    # the export's train problems are the SFT examples' problems: the policy has seen them
    train_sft(model, tok, sft_examples([("arithmetic_chain", 0.0, 1.0)], 2000, seed=0),
              epochs=4, lr=3e-3, batch_size=16, seed=0, progress=False)
    seen: list[tuple[str, int, float, str, float]] = []
    grade = reward_function()

    def recorded(prompts, completions, env, seed, difficulty, **kwargs):
        rewards = grade(prompts, completions, env, seed, difficulty, **kwargs)
        seen.extend(zip(env, seed, difficulty, completions, rewards))
        return rewards

    recorded.__name__ = "worldsmith_grade"
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=8, num_generations=4,
                      max_completion_length=48, max_steps=4, learning_rate=1e-4, logging_steps=1, report_to=[],
                      save_strategy="no", use_cpu=True, bf16=False, seed=0, temperature=0.7,
                      dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, reward_funcs=recorded, args=args, processing_class=tok,
                          train_dataset=trl_dataset([EnvSpec("arithmetic_chain")], 64, chat=True))
    trainer.train()
    logged = [h["rewards/worldsmith_grade/mean"] for h in trainer.state.log_history if "rewards/worldsmith_grade/mean" in h]
    print(f"GRPO on an export: per-step mean reward {logged}; e.g. {seen[0][3]!r}")
    assert len(logged) == 4 and len(seen) == 4 * 8
    # chat completions: the model's message is the last (and only) one
    assert all(len(c) == 1 and c[0]["role"] == "assistant" for *_, c, _ in seen)
    independent = [_grade(e, s, d, c[0]["content"]) for e, s, d, c, _ in seen]
    assert [r for *_, r in seen] == independent
    for step, mean in enumerate(logged):
        assert mean == pytest.approx(sum(independent[8 * step: 8 * step + 8]) / 8, abs=1e-6)
    assert 0 < sum(independent) < len(independent)  # some right, some wrong: the equality is informative


# --- verl ---------------------------------------------------------------------------------------------
def _load_like_verl(path, name: str):
    """What verl (0.9) does with custom_reward_function.path/.name (``utils.import_utils.load_module``):
    load the file as a module of its own, under a name derived from its path, then take the function."""
    spec = importlib.util.spec_from_file_location(f"custom_module_{hash(str(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def test_verl_export_has_verls_fields_and_its_compute_score_is_the_grade(tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    assert main(["export", "verl", "--env", "gcd_euclid,arithmetic_chain@0.5", "--n", "6", "--split", "eval",
                 "--out", str(tmp_path / "verl")]) == 0
    manifest = json.loads((tmp_path / "verl" / "manifest.json").read_text())
    assert manifest["rows"] == 6 and manifest["rows_per_env"] == {"gcd_euclid": 3, "arithmetic_chain": 3}
    table = pq.read_table(tmp_path / "verl" / "eval.parquet")
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    rows = table.to_pylist()
    expected = problems(MIX, 6, "eval")
    assert [r["prompt"] for r in rows] == [[{"role": "user", "content": p.prompt}] for p in expected]
    assert [r["reward_model"] for r in rows] == [{"style": "rule", "ground_truth": p.reference} for p in expected]
    assert rows[1]["data_source"] == "worldsmith/arithmetic_chain" and rows[1]["extra_info"]["index"] == 1

    compute_score = _load_like_verl(tmp_path / "verl" / "worldsmith_reward.py", "compute_score")
    pairs = _completions(expected, random.Random(2))
    by_index = {r["extra_info"]["index"]: r for r in rows}
    # verl's reward manager calls with keywords and adds its own keys to extra_info
    scores = [compute_score(data_source=by_index[p.index]["data_source"], solution_str=text,
                            ground_truth=by_index[p.index]["reward_model"]["ground_truth"],
                            extra_info={**by_index[p.index]["extra_info"], "num_turns": 2, "rollout_reward_scores": {}})
              for p, text in pairs]
    assert scores == [_grade(p.env, p.seed, p.difficulty, text) for p, text in pairs]
    assert sum(scores) == 6
    row = rows[0]
    with pytest.raises(ValueError, match="ground truth"):
        compute_score(row["data_source"], "<answer>1</answer>", row["reward_model"]["ground_truth"] + "9", row["extra_info"])
    with pytest.raises(ValueError, match="data_source"):
        compute_score("openai/gsm8k", "<answer>1</answer>", row["reward_model"]["ground_truth"], row["extra_info"])
    with pytest.raises(ValueError, match="extra_info"):
        compute_score(row["data_source"], "<answer>1</answer>", row["reward_model"]["ground_truth"], None)


# --- reasoning-gym style ---------------------------------------------------------------------------------
def test_rg_style_dataset_scores_extracted_answers_with_the_grade(tmp_path, capsys):
    from worldsmith.exports.rg import WorldsmithDataset

    ds = WorldsmithDataset(MIX, size=8, split="eval")
    assert len(ds) == 8 and len(list(ds)) == 8
    rng = random.Random(3)
    for entry, row in zip(ds, problems(MIX, 8, "eval")):
        assert set(entry) == {"question", "answer", "metadata"} and entry["question"] == row.prompt
        assert entry["metadata"]["source_dataset"] == f"worldsmith/{row.env}"
        assert ds.score_answer(entry["answer"], entry) == 1.0
        near = next(iter(perturbations(row.reference, rng).values()), row.reference + "0")
        assert ds.score_answer(near, entry) == _grade(row.env, row.seed, row.difficulty, f"<answer>{near}</answer>")
        assert ds.score_answer(None, entry) == 0.0
        # the entry's own answer field is not what grading trusts
        forged = {**entry, "answer": near}
        assert ds.score_answer(entry["answer"], forged) == 1.0
    assert main(["export", "rg", "--env", "gcd_euclid", "--n", "3", "--out", str(tmp_path / "rg")]) == 0
    lines = (tmp_path / "rg" / "train.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == list(WorldsmithDataset("gcd_euclid", 3))


def test_export_cli_mistakes_are_one_line(tmp_path, capsys):
    for argv, words in ((["export", "rg", "--env", "nope", "--out", str(tmp_path / "a")], "nope"),
                        (["export", "rg", "--env", "gcd_euclid@7", "--out", str(tmp_path / "a")], "difficulty"),
                        (["export", "pickle", "--env", "gcd_euclid", "--out", str(tmp_path / "a")], "invalid choice"),
                        (["export", "rg", "--env", "gcd_euclid", "--n", "0", "--out", str(tmp_path / "a")], "positive")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    assert main(["export", "rg", "--env", "gcd_euclid", "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
