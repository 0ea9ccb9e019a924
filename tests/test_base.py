"""The base policy: its tokenizer, the build, the cache by config hash, and `worldsmith base`."""

import json
import os
import subprocess
import sys

import pytest

from worldsmith import envs
from worldsmith.base import BaseConfig, BaseError, base_policy, build_base_tokenizer, find_base, list_bases
from worldsmith.envs.contract import split_seed
from worldsmith.policy.backend import SamplingParams
from worldsmith.policy.hf_backend import HFBackend

SMALL = {"tasks": [{"env": "arithmetic_chain", "difficulties": [0.0, 0.1]}], "vocab_size": 300,
         "tokenizer_examples": 32, "examples": 64, "batch_size": 16, "eval_instances": 4, "max_new_tokens": 8,
         "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
                   "max_position_embeddings": 256}}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLDSMITH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def texts():
    out = []
    for name in envs.names():
        if name.startswith(("rg:", "game:")):
            continue
        env = envs.get(name)
        inst = env.sample(split_seed("train", 1), 0.5)
        steps = env.steps(inst.data) if env.has_steps() else []
        out.append(inst.prompt + "\n" + "\n".join(steps or []) + env.wrap(inst.reference))
    return out


def test_the_tokenizer_round_trips_environment_text_and_splits_every_digit():
    sample = texts()
    tok = build_base_tokenizer(sample[:4], 300)
    for text in sample:  # also environments it was not trained on
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text
    pieces = tok.convert_ids_to_tokens(tok("Start at 1234 and apply: +567")["input_ids"])
    assert [p for p in pieces if any(ch.isdigit() for ch in p)] == list("1234567")
    assert tok.convert_tokens_to_ids("<answer>") != tok.unk_token_id
    assert tok("x")["input_ids"][0] == tok.bos_token_id


def test_a_build_is_cached_by_its_config_hash_and_reused(cache):
    cfg = BaseConfig.model_validate(SMALL)
    lines = []
    model, tok, folder = base_policy(cfg, progress=False, log=lines.append)
    record = json.loads((folder / "base.json").read_text())
    assert folder.parent == cache / "base" and folder.name == cfg.digest() == record["hash"]
    assert record["parameters"] == sum(p.numel() for p in model.parameters())
    assert set(record["eval"]) == {"arithmetic_chain@0", "arithmetic_chain@0.1"}
    assert "building" in lines[0]
    stamp = (folder / "base.json").stat().st_mtime_ns
    _, _, again = base_policy(cfg, progress=False, log=lines.append)
    assert again == folder and "cached" in lines[1] and (folder / "base.json").stat().st_mtime_ns == stamp
    other = BaseConfig.model_validate({**SMALL, "seed": 1})
    assert other.digest() != cfg.digest()
    assert [r["hash"] for r in list_bases()] == [cfg.digest()] and find_base(cfg.digest()[:6])["hash"] == cfg.digest()
    # the base generates through the backend the trainer uses
    prompt = envs.get("arithmetic_chain").sample(split_seed("eval", 0), 0.0).prompt
    out = HFBackend(model, tok).generate([prompt], SamplingParams(max_new_tokens=6, temperature=1.0, seed=0))
    assert len(out.texts) == 1 and out.completion_mask.shape[0] == 1


def test_unknown_tasks_and_hashes_are_one_line_errors(cache):
    with pytest.raises(BaseError, match="no cached base"):
        find_base("abc")
    cfg = BaseConfig.model_validate({**SMALL, "tasks": [{"env": "no_such_env", "difficulties": [0.0]}]})
    with pytest.raises(BaseError, match="no_such_env"):
        base_policy(cfg, progress=False, log=lambda line: None)


def cli(*args, cache):
    env = {**os.environ, "WORLDSMITH_CACHE": str(cache), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "worldsmith.cli", "base", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["show", "deadbeef"], "no cached base matches 'deadbeef'"),
    (["build", "--preset", "huge"], "unknown base preset 'huge'"),
    (["build", "examples=-3"], "examples"),
])
def test_the_command_reports_mistakes_in_one_line(tmp_path, args, message):
    out = cli(*args, cache=tmp_path)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_the_command_builds_lists_and_shows(tmp_path):
    overrides = [f"{k}={json.dumps(v)}" for k, v in SMALL.items()]
    built = cli("build", *overrides, "--no-progress", cache=tmp_path)
    assert built.returncode == 0, built.stderr
    record = json.loads(built.stdout.strip().splitlines()[-1])
    listed = cli("list", cache=tmp_path)
    assert record["hash"] in listed.stdout
    shown = cli("show", record["hash"][:8], cache=tmp_path)
    assert json.loads(shown.stdout)["parameters"] == record["parameters"]
