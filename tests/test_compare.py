"""`worldsmith compare`: methods x seeds from one start policy, statistics, resume, refusals."""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from worldsmith import cli
from worldsmith.compare import METHODS, CompareError, method_config, parse_seeds, report
from worldsmith.configuration import build, load
from worldsmith.eval.stats import mean_interval
from worldsmith.rl.config import RunConfig

TINY = {
    "threads": 1,
    "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
    "pool": [{"name": "arithmetic_chain", "difficulty": 0.0}],
    "sampling": {"max_new_tokens": 8, "temperature": 1.0},
    "sft": {"examples": 64, "epochs": 1, "batch_size": 16},
    "train": {"steps": 2, "prompts_per_step": 2, "group_size": 4, "minibatch_size": 8, "microbatch_size": 8,
              "checkpoint_every": 1},
    "eval": {"instances": 8, "samples": 2},
}
METHOD_ARGS = ["--methods", "grpo,mssr", "--seeds", "0-1"]


def run_cli(*args):
    """(exit code, stdout, stderr) of `worldsmith ARGS` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def compared(config_path, tmp_path_factory):
    """One finished comparison: grpo and mssr over seeds 0 and 1."""
    out = tmp_path_factory.mktemp("compare") / "cmp"
    code, stdout, stderr = run_cli("compare", config_path, *METHOD_ARGS, "--out", out)
    assert code == 0, stderr
    return out, stdout, stderr


def test_writes_table_plot_runs_and_one_json_line(compared):
    out, stdout, stderr = compared
    lines = stdout.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result == json.loads((out / "compare.json").read_text()) | {"done": 4, "skipped": 0,
                                                                        "seconds": result["seconds"]}
    assert result["methods"] == ["grpo", "mssr"] and result["seeds"] == [0, 1]
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [(r["method"], r["seed"]) for r in runs] == [("grpo", 0), ("grpo", 1), ("mssr", 0), ("mssr", 1)]
    metrics = ["accuracy_greedy", "accuracy_sampled", "pass@2", "maj@2", "step_validity"]
    for r in runs:
        assert list(r["after"]) == metrics and list(r["before"]) == metrics
        assert set(r["mechanism"]) == set(METHODS[r["method"]].mechanism)
        assert all(isinstance(v, float) for v in r["mechanism"].values())
        assert r["steps"] == 2 and r["problems"] == 8 and r["train_seconds"] > 0

    # one row per method (and the start) in the first table, each cell a mean with its interval
    table = (out / "compare.md").read_text().split("## ")[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split("|")[1].strip() for row in rows] == ["start", "grpo", "mssr"]
    cell = r"-?\d+\.\d{3} \[-?\d+\.\d{3}, -?\d+\.\d{3}\]"
    for row in rows:
        assert len(re.findall(cell, row)) == len(metrics)
    # the mean and interval in the table are those of the runs
    greedy = [r["after"]["accuracy_greedy"] for r in runs if r["method"] == "mssr"]
    iv = mean_interval(greedy)
    assert rows[2].split("|")[2].strip() == f"{iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}]"

    # the first method against itself: a difference of exactly 0
    for key in metrics:
        assert result["paired"]["grpo"][key] == {"mean": 0.0, "low": 0.0, "high": 0.0, "sd": 0.0, "n": 2,
                                                 "confidence": 0.95}
    assert "[1/4] grpo seed 0: training" in stderr and "[4/4] mssr seed 1: done" in stderr
    assert "train 2/2" in stderr  # the training progress, as plain lines off a terminal


def test_methods_of_a_seed_start_from_one_policy_with_equal_completions(compared):
    out, _, stderr = compared
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    by = {(r["method"], r["seed"]): r for r in runs}
    for seed in (0, 1):
        assert by["grpo", seed]["before"] == by["mssr", seed]["before"]
        assert stderr.count(f"seed {seed}: building the start policy") == 1
    start = json.loads((out / "starts" / "s0" / "eval.json").read_text())
    assert by["grpo", 0]["before"]["accuracy_sampled"] == start["accuracy_sampled"]
    # 2 steps x 2 prompts x 4 completions; MSSR adds its initialisation pass over its 16 prompts
    assert by["grpo", 0]["completions"] == 16
    rows = [json.loads(line) for line in (out / "runs" / "mssr-s0" / "metrics.jsonl").read_text().splitlines()]
    assert by["mssr", 0]["completions"] == 16 + rows[0]["mssr/init_rollouts"] == 32
    mssr = load(RunConfig, out / "runs" / "mssr-s0" / "config.yaml")
    assert (mssr.train.group_size, mssr.train.prompts_per_step, mssr.train.advantage) == (1, 8, "mssr")
    assert mssr.train.seed == 0 and mssr.model.init_seed == 0
    assert load(RunConfig, out / "runs" / "grpo-s1" / "config.yaml").train.seed == 1


def test_method_table_keeps_the_completions_per_step():
    cfg = build(RunConfig, {**TINY, "train": {**TINY["train"], "group_size": 5, "minibatch_size": 10,
                                              "microbatch_size": 10}})
    per_step = {}
    for name in METHODS:
        m = method_config(cfg, name, seed=3)
        per_step[name] = m.train.prompts_per_step * m.train.group_size
        assert m.train.seed == 3 and m.model.init_seed == 3
    single = per_step.pop("mssr_single")  # the one method meant for --equal-time: the same prompts, one rollout
    assert set(per_step.values()) == {10} and single == 2
    cuts = method_config(cfg, "mixed_cuts", 0).sampling
    assert cuts.cuts.enabled and (cuts.mixed_plan.standard, cuts.mixed_plan.cuts) == (3, 2)
    assert method_config(cfg, "mssr", 0).train.loss_cfg.kl_coef == 0.01
    with_kl = build(RunConfig, {**TINY, "train": {**TINY["train"], "loss_cfg": {"kl_coef": 0.05}}})
    assert method_config(with_kl, "mssr", 0).train.loss_cfg.kl_coef == 0.05
    assert method_config(cfg, "g2rl", 0).train.shaping.g2rl.enabled
    assert method_config(cfg, "grpo", 0).model_dump(exclude={"train": {"seed"}, "model": {"init_seed"}}) == \
        cfg.model_dump(exclude={"train": {"seed"}, "model": {"init_seed"}})
    with pytest.raises(CompareError, match="group_size >= 2"):
        method_config(build(RunConfig, {**TINY, "train": {**TINY["train"], "group_size": 1}}), "mixed_cuts", 0)


def test_every_seed_starts_from_its_own_base():
    """With ``model.base`` the seed also sets the base recipe's seed; without one it stays unset."""
    on_base = build(RunConfig, {**TINY, "model": {"base": "cpu"}, "sft": {"examples": 0}})
    assert [method_config(on_base, "grpo", s).model.base_seed for s in (0, 4)] == [0, 4]
    assert method_config(build(RunConfig, TINY), "grpo", 4).model.base_seed is None


def test_rerun_skips_finished_runs_and_redoes_the_others(compared, config_path, tmp_path):
    original, _, _ = compared
    out = tmp_path / "cmp"
    shutil.copytree(original, out)
    (out / "runs" / "grpo-s0" / "summary.json").unlink()  # died after its last checkpoint
    shutil.rmtree(out / "runs" / "mssr-s1")  # died before its first
    kept = {name: (out / "runs" / name / "summary.json").stat().st_mtime_ns for name in ("grpo-s1", "mssr-s0")}

    code, stdout, stderr = run_cli("compare", config_path, *METHOD_ARGS, "--out", out)
    assert code == 0, stderr
    assert json.loads(stdout)["done"] == 2 and json.loads(stdout)["skipped"] == 2
    assert "grpo seed 1: finished earlier, skipped" in stderr and "mssr seed 0: finished earlier, skipped" in stderr
    assert "grpo seed 0: resuming at step 2" in stderr and "mssr seed 1: training" in stderr
    assert "building the start policy" not in stderr  # both start policies are reused
    for name, mtime in kept.items():
        assert (out / "runs" / name / "summary.json").stat().st_mtime_ns == mtime
    # the redone runs reach what the first pass reached: same start, same seeds
    for name in ("grpo-s0", "mssr-s1"):
        old = json.loads((original / "runs" / name / "summary.json").read_text())
        new = json.loads((out / "runs" / name / "summary.json").read_text())
        assert new["after"] == old["after"] and new["mechanism"] == pytest.approx(old["mechanism"])

    # a third pass has nothing left to do
    code, stdout, _ = run_cli("compare", config_path, *METHOD_ARGS, "--out", out)
    assert code == 0 and json.loads(stdout)["done"] == 0


@pytest.mark.parametrize("args, fragment", [
    (["train.steps=3", *METHOD_ARGS], "another config (train.steps = 2, not 3)"),
    (["--methods", "grpo,g2rl", "--seeds", "0-1"], "holds a comparison of grpo,mssr, not grpo,g2rl"),
])
def test_a_folder_of_another_comparison_is_refused(compared, config_path, args, fragment):
    out = compared[0]
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    code, stdout, stderr = run_cli("compare", config_path, *args, "--out", out)
    assert code == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1 and fragment in stderr
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_a_folder_made_before_a_setting_existed_is_the_same_comparison(compared, config_path):
    out = compared[0]
    spec_path = out / "spec.json"
    original = spec_path.read_text()
    spec = json.loads(original)
    del spec["config"]["train"]["deltarubric"]  # as written before train.deltarubric existed
    spec_path.write_text(json.dumps(spec))
    try:
        code, stdout, stderr = run_cli("compare", config_path, *METHOD_ARGS, "--out", out)
        assert code == 0 and json.loads(stdout)["done"] == 0, stderr  # its default: the runs stand
        code, _, stderr = run_cli("compare", config_path, "train.deltarubric.pairs_per_step=3", *METHOD_ARGS,
                                  "--out", out)
        assert code == 2 and "train.deltarubric.pairs_per_step = None, not 3" in stderr
    finally:
        spec_path.write_text(original)


def test_equal_time_gives_later_methods_the_first_methods_seconds(config_path, tmp_path):
    out = tmp_path / "cmp"
    args = ["--methods", "grpo,mssr_single", "--seeds", "0", "--out", out]
    code, stdout, stderr = run_cli("compare", config_path, *args, "--equal-time")
    assert code == 0, stderr
    first = json.loads((out / "runs" / "grpo-s0" / "summary.json").read_text())
    single = json.loads((out / "runs" / "mssr_single-s0" / "summary.json").read_text())
    assert first["time_budget_s"] is None and first["steps"] == TINY["train"]["steps"]
    budget = single["time_budget_s"]
    assert budget == first["train_seconds"] and f"training for {budget:.1f} s, as grpo did" in stderr
    # it stops at the first step boundary past the budget, or at the cap on steps
    rows = [json.loads(line) for line in (out / "runs" / "mssr_single-s0" / "metrics.jsonl").open()]
    times = [r["time/step"] for r in rows]
    assert len(times) == single["steps"] <= TINY["train"]["steps"] * 16
    assert sum(times) >= budget or single["steps"] == TINY["train"]["steps"] * 16
    assert sum(times[:-1]) < budget
    # one rollout per prompt with the same prompts: a quarter of grpo's completions per step
    init = sum(r.get("mssr/init_rollouts") or 0 for r in rows)  # the value tracker's first estimates
    assert single["completions"] - init == single["steps"] * TINY["train"]["prompts_per_step"]
    result = json.loads(stdout)
    assert result["equal_time"] is True and "Equal training time" in (out / "compare.md").read_text()
    # the folder remembers: without --equal-time it is another comparison
    code, _, stderr = run_cli("compare", config_path, *args)
    assert code == 2 and "at equal training time; add --equal-time" in stderr


def test_equal_time_refuses_a_decaying_schedule(config_path, tmp_path):
    code, _, stderr = run_cli("compare", config_path, "optim.schedule=cosine", "--methods", "grpo,mssr",
                              "--seeds", "0", "--out", tmp_path / "cmp", "--equal-time")
    assert code == 2 and "--equal-time needs optim.schedule constant" in stderr
    assert not (tmp_path / "cmp").exists()


def test_a_folder_holding_something_else_is_refused(config_path, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, stderr = run_cli("compare", config_path, *METHOD_ARGS, "--out", tmp_path)
    assert code == 2 and "holds no comparison" in stderr
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


@pytest.mark.parametrize("args, fragment", [
    (["--methods", "grpo,ppo"], "unknown method 'ppo'; valid methods: grpo, mixed_cuts, mssr, mssr_single, g2rl"),
    (["--methods", "grpo,grpo"], "grpo is named twice"),
    (["--methods", ""], "--methods"),
    (["--seeds", "4-1"], "the range 4-1 is empty"),
    (["--seeds", "a"], "'a' is not a seed"),
    (["--seeds", "-1"], "is not a seed"),
    (["--seeds", "0,1,1"], "seed 1 is named twice"),
    (["train.seed=3"], "train.seed is set by --seeds"),
    (["train.group_size=1", "--methods", "grpo,mixed_cuts"], "needs train.group_size >= 2"),
    (["train.steps=0"], "config: train.steps"),
])
def test_bad_input_is_one_line_with_exit_2(config_path, tmp_path, args, fragment):
    code, stdout, stderr = run_cli("compare", config_path, *args, "--out", tmp_path / "cmp")
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and len(stderr.splitlines()) == 1 and fragment in stderr
    assert not (tmp_path / "cmp").exists()  # refused before any work


def test_the_command_refuses_an_unknown_method_without_a_traceback(config_path, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "worldsmith.cli", "compare", str(config_path), "--methods",
                           "grpo,nope", "--out", str(tmp_path / "cmp")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("error: unknown method 'nope'; valid methods: grpo, mixed_cuts, mssr, mssr_single, "
                                   "g2rl, vppo, vppo_simple, prm_mix")


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,2,5") == [0, 2, 5]
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    assert parse_seeds("3") == [3]


def _summary(method, seed, before, after, entropy):
    keys = ("accuracy_greedy", "accuracy_sampled", "pass@4", "maj@4")
    return {"method": method, "seed": seed, "before": dict(zip(keys, before)), "after": dict(zip(keys, after)),
            "mechanism": {k: (entropy if k == "entropy" else 0.5) for k in METHODS[method].mechanism},
            "completions": 64, "train_seconds": 2.0 + seed, "steps": 4, "problems": 100, "k": 4}


def test_report_statistics_by_hand(tmp_path):
    """Three seeds of two methods with hand-picked figures: means, Student-t intervals (t_{0.975,2} =
    4.302653) and the paired differences, in compare.json and compare.md."""
    start = {0: (0.1, 0.2, 0.4, 0.3), 1: (0.2, 0.2, 0.4, 0.3), 2: (0.3, 0.2, 0.4, 0.3)}
    grpo = {0: (0.2, 0.3, 0.5, 0.4), 1: (0.4, 0.3, 0.5, 0.4), 2: (0.3, 0.3, 0.5, 0.4)}
    g2rl = {0: (0.3, 0.3, 0.5, 0.4), 1: (0.6, 0.3, 0.5, 0.4), 2: (0.3, 0.3, 0.5, 0.4)}
    for method, figures in (("grpo", grpo), ("g2rl", g2rl)):
        for seed in range(3):
            folder = tmp_path / "runs" / f"{method}-s{seed}"
            folder.mkdir(parents=True)
            summary = _summary(method, seed, start[seed], figures[seed], entropy=1.0 + seed)
            (folder / "summary.json").write_text(json.dumps(summary))
    result = report(tmp_path, ["grpo", "g2rl"], [0, 1, 2])

    half = 4.302653 * 0.1 / 3 ** 0.5  # sd of (0.2, 0.4, 0.3) is 0.1
    greedy = result["metrics"]["grpo"]["accuracy_greedy"]
    assert greedy["mean"] == pytest.approx(0.3, abs=1e-4)
    assert greedy["low"] == pytest.approx(0.3 - half, abs=1e-4) and greedy["high"] == pytest.approx(0.3 + half, abs=1e-4)
    # g2rl - grpo, by seed: (0.1, 0.2, 0.0): mean 0.1, sd 0.1
    diff = result["paired"]["g2rl"]["accuracy_greedy"]
    assert diff["mean"] == pytest.approx(0.1, abs=1e-4)
    assert diff["low"] == pytest.approx(0.1 - half, abs=1e-4) and diff["high"] == pytest.approx(0.1 + half, abs=1e-4)
    assert result["paired"]["g2rl"]["accuracy_sampled"]["mean"] == pytest.approx(0.0, abs=1e-12)
    # after - before, by seed: grpo (0.1, 0.2, 0.0)
    assert result["gain"]["grpo"]["accuracy_greedy"]["mean"] == pytest.approx(0.1, abs=1e-4)
    assert result["gain"]["grpo"]["pass@4"]["mean"] == pytest.approx(0.1, abs=1e-4)
    assert result["metrics"]["start"]["accuracy_greedy"]["mean"] == pytest.approx(0.2, abs=1e-4)
    assert result["mechanism"]["g2rl"]["entropy"]["mean"] == pytest.approx(2.0)
    assert result["metrics"]["grpo"]["train_seconds"]["mean"] == pytest.approx(3.0)

    md = (tmp_path / "compare.md").read_text()
    assert f"| g2rl | +0.100 [{0.1 - half:+.3f}, {0.1 + half:+.3f}] | +0.000 [+0.000, +0.000] |" in md
    assert f"| grpo | 0.300 [{0.3 - half:.3f}, {0.3 + half:.3f}] |" in md
    assert "| g2rl | `g2rl/nu_std` | 0.500 [0.500, 0.500] |" in md
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 6


def test_a_start_policy_recipe_is_used_once_per_seed_and_recorded(tmp_path):
    """The extension point for other start policies (e.g. a cached base model)."""
    import torch

    from worldsmith.compare import compare
    from worldsmith.policy.model import build_tiny_model, load_policy
    from worldsmith.policy.tokenizer import build_char_tokenizer

    built = []

    def start(seed_cfg, folder, progress):
        built.append((seed_cfg.train.seed, folder.root.name))
        tokenizer = build_char_tokenizer()
        return build_tiny_model(tokenizer, seed_cfg.model.tiny, seed=100 + seed_cfg.train.seed), tokenizer

    cfg = build(RunConfig, TINY)
    out = tmp_path / "cmp"
    result = compare(cfg, ["grpo"], [1], out, start=start, start_name="plain-init", progress=False, log=None)
    assert built == [(1, "s1")] and result["done"] == 1
    assert json.loads((out / "spec.json").read_text())["start"] == "plain-init"
    saved, _ = load_policy(out / "starts" / "s1" / "policy_init", progress=False)
    expected = build_tiny_model(build_char_tokenizer(), cfg.model.tiny, seed=101)
    for a, b in zip(saved.state_dict().values(), expected.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CompareError, match="from the start policy 'plain-init', not 'config'"):
        compare(cfg, ["grpo"], [1], out, progress=False, log=None)
