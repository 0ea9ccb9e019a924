"""Config loading: YAML, dotted overrides, one-line errors naming the key."""

import subprocess
import sys

import pytest
import yaml

from worldsmith import configuration as C
from worldsmith.rl.config import RunConfig


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train: {steps: 7}\npool: [{name: gcd_euclid, difficulty: 0.5}]\n")
    cfg = C.load(RunConfig, path, ["optim.lr=3e-4", "train.loss_cfg.clip_high=0.28", "sampling.top_k=5"])
    assert cfg.train.steps == 7 and cfg.optim.lr == 3e-4
    assert cfg.train.loss_cfg.clip_high == 0.28 and cfg.sampling.top_k == 5
    assert cfg.pool[0].name == "gcd_euclid" and cfg.pool[0].difficulty == 0.5
    C.dump(cfg, tmp_path / "resolved.yaml")
    again = C.load(RunConfig, tmp_path / "resolved.yaml")
    assert again == cfg
    assert "advantage_cfg" in yaml.safe_load((tmp_path / "resolved.yaml").read_text())["train"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "train.lrr: unknown key"),
        ("train.advantage=grpox", "train.advantage: unknown advantage 'grpox'; valid: dr_grpo, grpo, mssr, rloo"),
        ("pool=[{name: arith}]", "pool: unknown environment 'arith'"),
        ("optim.lr=-1", "optim.lr: Input should be greater than 0"),
        ("train.steps=x", "train.steps: Input should be a valid integer"),
        ("train.loss_cfg.aggregation=mean", "train.loss_cfg.aggregation"),
        ("nokey", "not key=value"),
        # values that used to pass validation and fail mid-run
        ("optim.lr=.inf", "optim.lr: must be a finite number, got inf"),
        ("optim.lr=1e308", "optim.lr: Input should be less than or equal to 1"),
        ("sampling.temperature=.inf", "sampling.temperature: must be a finite number, got inf"),
        ("train.failure_reward=.nan", "train.failure_reward: must be a finite number, got nan"),
        ("pool=[{name: gcd_euclid, difficulty: .nan}]", "pool.0.difficulty: must be a finite number"),
        ("pool=[{name: gcd_euclid, weight: 0}]", "pool: every entry has weight 0"),
        ("pool=[{name: gcd_euclid}, {name: gcd_euclid, difficulty: 0.5}]",
         "pool: environment 'gcd_euclid' appears more than once"),
        ("model.tiny.num_heads=3", "model.tiny: hidden_size 64 must split into num_heads 3 heads"),
        ("model.tiny.num_heads=64", "of an even size"),
        ("train.seed=99999999999999999999999", "train.seed: Input should be less than 9223372036854775808"),
        ("train.seed=-1", "train.seed: Input should be greater than or equal to 0"),
        ("sampling.max_new_tokens=600", "sampling.max_new_tokens = 600 leaves no room for the prompt"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(C.ConfigError) as info:
        C.load(RunConfig, None, [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_shipped_configs_validate():
    import pathlib

    from worldsmith.agents.cso_config import CSOConfig
    from worldsmith.synth.config import SynthConfig

    paths = sorted((pathlib.Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert len(paths) >= 2
    kinds = {"synth": SynthConfig, "cso": CSOConfig}  # `worldsmith synth` / `worldsmith cso`; else `train`
    for path in paths:
        C.load(kinds.get(path.name.split("_")[0], RunConfig), path)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "missing.yaml", "--out", "x"], "config file not found"),
        (["train", "configs/grpo_arithmetic.yaml", "train.stepz=3", "--out", "x"], "train.stepz: unknown key"),
        (["train", "configs/grpo_arithmetic.yaml", "--out", "x", "train.stepz=3"], "train.stepz: unknown key"),
        (["train", "configs/grpo_arithmetic.yaml", "--out", "x", "--bogus"], "unrecognized arguments: --bogus"),
        (["eval", "--model", "/nonexistent", "--env", "gcd_euclid"], "--model"),
        (["eval", "--model", "/nonexistent", "--env", "gcd_euclid@2"], "difficulty"),
        (["quickstart", "train.steps=0"], "train.steps"),
        (["eval", "--model", "/nonexistent", "--env", "gcd_euclid", "--temperature", "-1"], "--temperature"),
        (["eval", "--model", "/nonexistent", "--env", "gcd_euclid", "--temperature", "inf"], "--temperature"),
        (["train", "configs/grpo_arithmetic.yaml", "--out", "x", "optim.lr=inf"], "optim.lr: Input should be"),
        (["train", "configs/grpo_arithmetic.yaml", "--out", "x", "train.failure_reward=nan"],
         "train.failure_reward: Input should be a finite number"),
    ],
)
def test_cli_config_errors_are_one_line(args, fragment):
    import pathlib

    root = pathlib.Path(__file__).parents[1]
    out = subprocess.run([sys.executable, "-m", "worldsmith.cli", *args], capture_output=True, text=True,
                         timeout=120, cwd=root)
    assert out.returncode == 2, out.stderr
    assert fragment in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_a_generation_budget_past_a_local_models_context_is_one_line(tmp_path):
    import pathlib

    from worldsmith.policy.model import TinyModelConfig, build_tiny_model, save_policy
    from worldsmith.policy.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer()
    save_policy(build_tiny_model(tok, TinyModelConfig(max_position_embeddings=64)), tok, tmp_path / "m")
    root = pathlib.Path(__file__).parents[1]
    out = subprocess.run([sys.executable, "-m", "worldsmith.cli", "train", "configs/grpo_arithmetic.yaml",
                          "--out", str(tmp_path / "run"), f"model.path={tmp_path / 'm'}",
                          "sampling.max_new_tokens=100"], capture_output=True, text=True, timeout=120, cwd=root)
    assert out.returncode == 2, out.stderr
    assert "sampling.max_new_tokens = 100 leaves no room" in out.stderr and "(64 tokens)" in out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
