"""The base policy: its recipe, tokenizer, model, cache and command."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil

import pytest
import yaml

from worldsmith import base, cli, envs
from worldsmith.base import BaseConfig, build_base, build_tokenizer, config_hash, load_config
from worldsmith.configuration import ConfigError
from worldsmith.policy.backend import SamplingParams
from worldsmith.policy.hf_backend import HFBackend
from worldsmith.policy.model import load_policy
from worldsmith.policy.sft import sft_completion

TINY = {
    "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 256},
    "mixture": [{"env": "arithmetic_chain", "difficulty": {"low": 0.0, "high": 0.2, "levels": 2}, "weight": 2.0},
                {"env": "gcd_euclid", "difficulty": 0.0}],
    "sft": {"examples": 48, "epochs": 1, "batch_size": 16},
    "eval": {"instances": 4},
}


def tiny(**changes) -> BaseConfig:
    return BaseConfig.model_validate(base._merge(TINY, changes))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLDSMITH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def built(cache):
    return build_base(tiny(), progress=False)


def run_cli(*args):
    """(exit code, stdout, stderr) of `worldsmith ARGS` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


# --- the recipe --------------------------------------------------------------------------------------
def test_presets_and_levels():
    assert base.preset("cpu") == BaseConfig()
    gpu = base.preset("gpu")
    assert gpu.model.hidden_size > BaseConfig().model.hidden_size and gpu.sft.examples > BaseConfig().sft.examples
    entry = base.MixtureEntry(env="gcd_euclid", difficulty={"low": 0.0, "high": 0.3, "levels": 4})
    assert entry.levels() == [0.0, 0.1, 0.2, 0.3]
    assert entry.eval_levels() == [0.0, 0.2, 0.3]
    assert base.MixtureEntry(env="gcd_euclid", difficulty=[0.5, 0.1, 0.5]).levels() == [0.1, 0.5]
    # an entry's weight is shared out over its difficulties
    specs = base.env_specs(tiny())
    assert specs == [("arithmetic_chain", 0.0, 1.0), ("arithmetic_chain", 0.2, 1.0), ("gcd_euclid", 0.0, 1.0)]


@pytest.mark.parametrize("override, message", [
    ("sft.epochs=0", "sft.epochs:"),
    ("sft.examples=lots", "sft.examples:"),
    ("model.colour=red", "model.colour: unknown key"),
    ("mixture=[{env: no_such_env}]", "mixture.0.env: unknown environment 'no_such_env'"),
    ("mixture=[{env: gcd_euclid, difficulty: 1.5}]", "mixture.0.difficulty"),
    ("mixture=[{env: gcd_euclid, difficulty: {low: 0.5, high: 0.1}}]", "high 0.1 is below low 0.5"),
    ("mixture=[]", "mixture: the mixture needs at least one environment"),
    ("mixture=[{env: gcd_euclid, difficulty: []}]", "mixture.0.difficulty: the list of difficulties is empty"),
    ("mixture=[{env: gcd_euclid, difficulty: hard}]", "mixture.0.difficulty: a difficulty is a number"),
    ("mixture=[{env: gcd_euclid, difficulty: {low: 0.1, high: 2}}]", "mixture.0.difficulty: high: Input should"),
    ("mixture=[{env: gcd_euclid}, {env: gcd_euclid}]", "'gcd_euclid' appears more than once"),
])
def test_bad_configs_are_one_line_errors(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("cpu", None, [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'tpu'; valid: cpu, gpu"):
        load_config("tpu")


def test_yaml_is_laid_over_the_preset(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump({"sft": {"epochs": 5}}))
    cfg = load_config("gpu", path, ["seed=3"])
    assert cfg.sft.epochs == 5 and cfg.sft.examples == base.preset("gpu").sft.examples and cfg.seed == 3


def test_cpu_preset_has_a_few_million_parameters():
    from worldsmith.policy.model import build_tiny_model

    texts = [f"{p}\n{c}" for p, c in base.sft_examples_for(BaseConfig(), 300)]
    tokenizer = build_tokenizer(texts, BaseConfig().tokenizer.vocab_size)
    params = sum(p.numel() for p in build_tiny_model(tokenizer, BaseConfig().model).parameters())
    assert 1_000_000 < params < 5_000_000


def test_hash_follows_every_setting():
    assert config_hash(tiny()) == config_hash(tiny())
    changed = [tiny(seed=1), tiny(sft={"lr": 5e-4}), tiny(tokenizer={"vocab_size": 400}),
               tiny(mixture=[{"env": "arithmetic_chain", "difficulty": 0.0}])]
    hashes = {config_hash(c) for c in changed} | {config_hash(tiny())}
    assert len(hashes) == len(changed) + 1


def test_cache_folder_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("WORLDSMITH_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert base.cache_dir() == tmp_path / "home" / ".cache" / "worldsmith"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert base.cache_dir() == tmp_path / "xdg" / "worldsmith"
    monkeypatch.setenv("WORLDSMITH_CACHE", str(tmp_path / "ws"))
    assert base.bases_dir() == tmp_path / "ws" / "base"


# --- the tokenizer -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    cfg = BaseConfig.model_validate(TINY)
    return build_tokenizer([f"{p}\n{c}" for p, c in base.sft_examples_for(cfg, 200)], vocab_size=400)


def test_every_digit_is_its_own_token(tokenizer):
    for number in ("7", "1905", "31415926535", "-42", "300/220"):
        tokens = tokenizer.convert_ids_to_tokens(tokenizer(number, add_special_tokens=False)["input_ids"])
        digits = [t for t in tokens if any(ch.isdigit() for ch in t)]
        assert digits == [ch for ch in number if ch.isdigit()], (number, tokens)
    # also inside text the tokenizer has seen many times
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("Start at 19 and apply in order: +88.")["input_ids"])
    assert [t for t in tokens if any(ch.isdigit() for ch in t)] == ["1", "9", "8", "8"]


@pytest.mark.parametrize("name", envs.names())
def test_environment_text_round_trips(tokenizer, name):
    env = envs.get(name)
    for difficulty in (0.0, 0.5, 1.0):
        inst = env.sample(envs.split_seed("eval", 1), difficulty)
        for text in (inst.prompt, sft_completion(env, inst), inst.prompt + "\n" + sft_completion(env, inst)):
            ids = tokenizer(text)["input_ids"]
            assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_conventions_match_the_char_tokenizer(tokenizer):
    from worldsmith.policy.tokenizer import build_char_tokenizer

    char = build_char_tokenizer()
    for attr in ("pad_token", "bos_token", "eos_token", "unk_token", "padding_side"):
        assert getattr(tokenizer, attr) == getattr(char, attr)
    assert [tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id] == [0, 1, 2]
    assert not getattr(tokenizer, "chat_template", None)
    ids = tokenizer("<answer>12</answer>")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.convert_ids_to_tokens(ids[1:]) == ["<answer>", "1", "2", "</answer>"]
    assert tokenizer.decode(ids + [tokenizer.eos_token_id], skip_special_tokens=True) == "<answer>12</answer>"


# --- build and cache ---------------------------------------------------------------------------------
def test_build_writes_the_base_under_its_hash(cache, built):
    cfg = tiny()
    assert built.path == cache / "base" / config_hash(cfg) and not built.reused
    info = json.loads((built.path / "base.json").read_text())
    assert info == built.info
    assert info["hash"] == config_hash(cfg) and info["config"] == cfg.model_dump(mode="json")
    assert info["params"] == sum(p.numel() for p in built.model.parameters())
    assert type(built.model).__name__ == "LlamaForCausalLM"
    assert info["sft"]["steps"] == 3 and len(info["sft"]["loss_curve"]) == 3
    tasks = {(t["env"], t["difficulty"]) for t in info["eval"]["tasks"]}
    assert tasks == {("arithmetic_chain", 0.0), ("arithmetic_chain", 0.2), ("gcd_euclid", 0.0)}
    for t in info["eval"]["tasks"]:
        assert 0.0 <= t["train_greedy"] <= 1.0 and 0.0 <= t["eval_greedy"] <= 1.0
    assert [p.name for p in (cache / "base").iterdir()] == [info["hash"]]  # no temporary folder left
    # an ordinary policy folder
    model, tokenizer = load_policy(built.path, progress=False)
    assert tokenizer("19")["input_ids"] == built.tokenizer("19")["input_ids"]


def test_the_loss_curve_is_the_training_loss(built):
    sft = built.info["sft"]
    curve = sft["loss_curve"]  # one point per step at this size
    assert [s for s, _ in curve] == [1, 2, 3]
    assert curve[0][1] == pytest.approx(sft["first_loss"], abs=1e-4)
    assert curve[-1][1] == pytest.approx(sft["final_loss"], abs=1e-4)


def test_a_second_build_reuses_the_first(cache, built, monkeypatch):
    import worldsmith.policy.sft as sft

    stamp = os.stat(built.path / "base.json").st_mtime_ns
    monkeypatch.setattr(sft, "train_sft", lambda *a, **k: pytest.fail("trained again"))
    again = build_base(tiny(), progress=False)
    assert again.reused and again.path == built.path and again.info == built.info
    assert os.stat(built.path / "base.json").st_mtime_ns == stamp
    prompt = envs.get("arithmetic_chain").sample(5, 0.0).prompt
    params = SamplingParams(12, temperature=0.0)
    first = HFBackend(built.model, built.tokenizer).generate([prompt], params).texts
    assert HFBackend(again.model, again.tokenizer).generate([prompt], params).texts == first


def test_another_config_is_another_base(cache, built):
    other = build_base(tiny(seed=1), progress=False)
    assert not other.reused and other.path != built.path
    assert sorted(p.name for p in (cache / "base").iterdir()) == sorted([built.path.name, other.path.name])


def test_an_interrupted_build_leaves_nothing_to_reuse(cache, monkeypatch):
    import worldsmith.policy.model as model_module

    real_save = model_module.save_policy

    def save_then_crash(model, tokenizer, path, **kwargs):
        real_save(model, tokenizer, path, **kwargs)  # the weights are written, base.json is not
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(model_module, "save_policy", save_then_crash)
        with pytest.raises(RuntimeError, match="disk full"):
            build_base(tiny(), progress=False)
    assert list((cache / "base").iterdir()) == []
    assert not build_base(tiny(), progress=False).reused


def test_a_broken_folder_is_rebuilt(cache, built):
    (built.path / "base.json").unlink()
    assert base.list_bases() == []
    again = build_base(tiny(), progress=False)
    assert not again.reused and (again.path / "base.json").is_file()


def test_a_context_too_short_for_the_examples(cache):
    with pytest.raises(ConfigError, match="model.max_position_embeddings: 16 is shorter than the longest"):
        build_base(tiny(model={"max_position_embeddings": 16}), progress=False)
    assert list((cache / "base").iterdir()) == []


def test_the_base_generates_through_hf_backend(built):
    inst = [envs.get("arithmetic_chain").sample(envs.split_seed("eval", i), 0.0) for i in range(3)]
    out = HFBackend(built.model, built.tokenizer).generate([i.prompt for i in inst],
                                                           SamplingParams(10, temperature=1.0, seed=0))
    assert len(out.texts) == 3 and out.completion_ids.shape[0] == 3
    assert out.completion_mask.sum(-1).min() >= 1


def test_base_policy_takes_a_preset_name_or_a_config(cache, built, monkeypatch):
    model, tokenizer, path = base.base_policy(tiny(), progress=False)
    assert path == built.path
    monkeypatch.setitem(base.PRESETS, "tiny", TINY)
    assert base.base_policy("tiny", progress=False)[2] == built.path


# --- the command ----------------------------------------------------------------------------------
def test_cli_build_list_show(cache, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    code, out, err = run_cli("base", "build", config, "seed=2")
    assert code == 0, err
    digest = config_hash(load_config("cpu", config, ["seed=2"]))
    assert f"base {digest} built" in out and str(cache / "base" / digest) in out
    code, out, err = run_cli("base", "build", config, "seed=2")
    assert code == 0 and f"base {digest} reused" in out and "reusing" in err

    code, out, _ = run_cli("base", "list")
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["hash", "preset", "params"] and row.split()[:2] == [digest, "cpu+file"]
    code, out, _ = run_cli("base", "show", digest[:5])
    assert code == 0 and f"base         {digest}" in out and "arithmetic_chain" in out and "gcd_euclid" in out
    code, out, _ = run_cli("base", "show", digest, "--json")
    assert json.loads(out)["hash"] == digest


def test_cli_list_of_an_empty_cache(cache):
    code, out, _ = run_cli("base", "list")
    assert code == 0 and "no bases in" in out


@pytest.mark.parametrize("args, message", [
    (("show", "0123abcd"), "no base in"),
    (("build", "--preset", "tpu"), "config: unknown preset 'tpu'; valid: cpu, gpu"),
    (("build", "sft.epochs=0"), "config: sft.epochs:"),
    (("build", "missing.yaml"), "config: config file not found: missing.yaml"),
])
def test_cli_mistakes_are_one_line(cache, built, args, message):
    code, out, err = run_cli("base", *args)
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cli_ambiguous_prefix(cache, built):
    for digest in ("abc1000000000000", "abc2000000000000"):  # two bases whose hashes share "abc"
        shutil.copytree(built.path, cache / "base" / digest)
        info = json.loads((cache / "base" / digest / "base.json").read_text())
        (cache / "base" / digest / "base.json").write_text(json.dumps({**info, "hash": digest}))
    code, _, err = run_cli("base", "show", "abc")
    assert code == 2 and "'abc' matches 2 bases" in err and err.count("\n") == 1
    code, out, _ = run_cli("base", "show", "abc2")
    assert code == 0 and "abc2000000000000" in out
