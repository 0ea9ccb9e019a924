"""The trainer's update over whole GRPO groups: group-level shuffling, microbatches of whole groups,
and the shared-prompt forward giving the same update as the plain one."""

import random

import torch

from worldsmith.configuration import build
from worldsmith.policy.model import build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl.config import RunConfig
from worldsmith.rl.trainer import PhaseTimer, Trainer, contiguous_groups


def make_trainer(arch="llama", **train):
    cfg = build(RunConfig, {
        "model": {"tiny": {"arch": arch, "hidden_size": 32, "num_layers": 2, "num_heads": 2,
                           "intermediate_size": 64}},
        "pool": [{"name": "arithmetic_chain"}],
        "sampling": {"max_new_tokens": 8, "temperature": 1.0},
        "optim": {"lr": 1e-2, "grad_clip": None},
        "train": {"steps": 2, "prompts_per_step": 4, "group_size": 4, "checkpoint_every": 0, "seed": 5, **train},
    })
    tok = build_char_tokenizer()
    return Trainer(cfg, build_tiny_model(tok, cfg.model.tiny, seed=0), tok)


def params_of(trainer):
    return {k: v.detach().clone() for k, v in trainer.acc.unwrap_model(trainer.model).state_dict().items()}


def test_contiguous_groups():
    assert contiguous_groups(torch.tensor([0, 0, 1, 1, 2, 2]), 2)
    assert not contiguous_groups(torch.tensor([0, 1, 0, 1]), 2)
    assert not contiguous_groups(torch.tensor([0, 0, 1]), 2)
    assert contiguous_groups(torch.arange(5), 1)


def test_minibatches_are_whole_shuffled_groups():
    trainer = make_trainer(prompts_per_step=6, minibatch_size=8, microbatch_size=4)
    batch, _ = trainer.collect(0, PhaseTimer())
    minis = trainer._minibatches(batch, random.Random(0))
    assert len(minis) == 3
    seen = []
    for rows, micro, shared in minis:
        assert shared == 4 and len(rows) == 8 and [i for m in micro for i in m] == rows
        for m in micro:
            assert len(m) == 4 and m == list(range(m[0], m[0] + 4)) and m[0] % 4 == 0  # one whole group
        seen += rows
    assert sorted(seen) == list(range(24))
    assert [rows[0] // 4 for rows, _, _ in minis] != [0, 2, 4]  # groups were shuffled
    # the same rng gives the same plan
    assert trainer._minibatches(batch, random.Random(0)) == minis


def test_microbatches_that_split_groups_use_the_plain_path():
    trainer = make_trainer(minibatch_size=8, microbatch_size=3)
    batch, _ = trainer.collect(0, PhaseTimer())
    lengths = batch.rollouts.completion_mask.sum(1).tolist()
    for rows, micro, shared in trainer._minibatches(batch, random.Random(1)):
        assert shared == 1 and sorted(rows) == sorted(i for m in micro for i in m)
        assert {r // 4 for r in rows} == {r // 4 for r in rows[::4]}  # still whole groups per minibatch
        flat = [i for m in micro for i in m]
        assert [lengths[i] for i in flat] == sorted(lengths[i] for i in flat)
    trainer = make_trainer(minibatch_size=6, microbatch_size=6)  # not a multiple of the group: rows
    batch, _ = trainer.collect(0, PhaseTimer())
    minis = trainer._minibatches(batch, random.Random(1))
    assert all(shared == 1 for _, _, shared in minis) and [len(r) for r, _, _ in minis] == [6, 6, 4]


def test_grouped_update_matches_the_plain_update():
    for arch in ("llama", "qwen2"):
        results = []
        for grouped in (True, False):
            trainer = make_trainer(arch, minibatch_size=16, microbatch_size=16)
            if not grouped:
                trainer._shared_group_size = lambda r, group_ids=None: 1
            torch.manual_seed(0)
            batch, _ = trainer.collect(0, PhaseTimer())
            metrics = trainer.update(batch, 0, PhaseTimer())
            results.append((params_of(trainer), metrics))
        (a, ma), (b, mb) = results
        assert ma["loss/loss"] == mb["loss/loss"] or abs(ma["loss/loss"] - mb["loss/loss"]) < 1e-6
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
