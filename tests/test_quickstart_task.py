"""The quickstart's task and start: unseen problems of a difficulty with a large eval split, from a
base policy whose recipe the run's seed sets."""

from __future__ import annotations

import json

import pytest

from worldsmith import base, envs
from worldsmith.configuration import ConfigError, build
from worldsmith.envs.contract import split_seed
from worldsmith.recipes import build_policy, quickstart_config
from worldsmith.rl.config import RunConfig
from worldsmith.runs import RunDir


def test_quickstart_eval_split_holds_a_thousand_distinct_unseen_problems():
    from worldsmith.envs.decision_chain import depth_of
    from worldsmith.recipes import eval_tasks
    from worldsmith.rl.pool import EnvPool

    cfg = quickstart_config(0)
    assert cfg.model.base == "cpu" and cfg.sft.examples == 0
    # training covers the evaluated depths
    trained = {depth_of(i.difficulty) for i in EnvPool(cfg.pool).sample_batch(200, 0, rng_seed=0)}
    assert trained == {depth_of(d) for _, d in eval_tasks(cfg)} == {6, 7, 8}
    for name, difficulty in eval_tasks(cfg):
        env = envs.get(name)
        eval_ids = {env.sample(split_seed("eval", i), difficulty).problem_id for i in range(1200)}
        train_ids = {env.sample(split_seed("train", i), difficulty).problem_id for i in range(1200)}
        assert len(eval_ids) >= 1000
        assert not eval_ids & train_ids


def test_quickstart_seed_sets_the_base_recipe_seed():
    assert [quickstart_config(s).model.base_seed for s in (0, 3)] == [0, 3]
    assert quickstart_config(3).train.seed == 3


def test_base_seed_needs_a_base():
    with pytest.raises(ConfigError, match="model.base_seed: needs model.base"):
        build(RunConfig, {"model": {"base_seed": 1}, "pool": [{"name": "arithmetic_chain"}]})


TINY_PRESET = {
    "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 256},
    "mixture": [{"env": "decision_chain", "difficulty": [0.0, 0.1]}],
    "sft": {"examples": 32, "batch_size": 16},
    "eval": {"instances": 2},
}


def test_a_run_on_a_base_builds_the_seeded_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLDSMITH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(base.PRESETS, "tiny_test", TINY_PRESET)
    cfg = build(RunConfig, {"threads": 1, "model": {"base": "tiny_test", "base_seed": 5},
                            "pool": [{"name": "decision_chain", "difficulty": 0.1}],
                            "sampling": {"max_new_tokens": 16}})
    build_policy(cfg, RunDir(tmp_path / "run"), progress=False)
    (folder,) = (tmp_path / "cache" / "base").iterdir()
    info = json.loads((folder / base.BASE_FILE).read_text())
    assert info["config"]["seed"] == 5
    assert folder.name == base.config_hash(base.preset("tiny_test").model_copy(update={"seed": 5}))
    assert (tmp_path / "run" / "policy_init" / "config.json").is_file()


def test_eval_tasks_replace_the_pool_in_the_evaluation():
    from worldsmith.recipes import eval_tasks

    pool = [{"name": "decision_chain", "difficulty": 0.2}]
    cfg = build(RunConfig, {"pool": pool})
    assert eval_tasks(cfg) == [("decision_chain", 0.2)]
    harder = build(RunConfig, {"pool": pool, "eval": {"tasks": [{"env": "decision_chain", "difficulty": 0.4},
                                                                  {"env": "arithmetic_chain"}]}})
    assert eval_tasks(harder) == [("decision_chain", 0.4), ("arithmetic_chain", 0.0)]
    with pytest.raises(ConfigError, match="no_such_env"):
        build(RunConfig, {"pool": pool, "eval": {"tasks": [{"env": "no_such_env"}]}})
    with pytest.raises(ConfigError, match="eval.tasks"):
        build(RunConfig, {"pool": pool, "eval": {"tasks": []}})
