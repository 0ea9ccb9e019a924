"""EnvPool: weighted mixing, difficulty steering, deterministic seeds, checkpoint round trip."""

import json
from collections import Counter

import pytest

from worldsmith.envs.contract import Environment, seed_split, split_seed
from worldsmith.rl.pool import EnvPool, PoolEntry


class ToyA(Environment):
    name = "toy_pool_a"

    def generate(self, rng, difficulty):
        return {"x": rng.randint(0, 10**9)}

    def solve(self, instance):
        return str(instance["x"])

    def render(self, instance):
        return f"Repeat {instance['x']}."

    def score(self, instance, answer):
        return float(answer == str(instance["x"]))


class ToyB(ToyA):
    name = "toy_pool_b"


TOYS = {"a": ToyA(), "b": ToyB()}


def make(*entries, ema_decay=0.5):
    return EnvPool([PoolEntry(**e) for e in entries], ema_decay=ema_decay, environments=TOYS)


def keys(batch):
    return [(i.env, i.seed, i.difficulty) for i in batch]


def run_batch(pool, passed, n=4, step=0):
    batch = pool.sample_batch(n, step, rng_seed=0)
    return pool.update(batch, [passed] * len(batch))


def test_steering_up_then_back_inside_the_band_then_down():
    pool = make(dict(name="a", difficulty=0.5, adaptive=True))
    trace = []
    for passed in (True, True, False, False, False):
        run_batch(pool, passed)
        trace.append((pool.pass_rates()["a"], pool.difficulties()["a"]))
    # ema: 1 (first batch), 1, 0.5, 0.25, 0.125 with decay 0.5; band [0.3, 0.7], step 0.05
    assert trace == [(1.0, 0.55), (1.0, 0.6), (0.5, 0.6), (0.25, 0.55), (0.125, 0.5)]


def test_steering_is_clamped_and_fixed_entries_never_move():
    pool = make(dict(name="a", difficulty=0.55, adaptive=True, max_difficulty=0.6),
                dict(name="b", difficulty=0.3))
    for _ in range(3):
        metrics = run_batch(pool, True)
    assert pool.difficulties() == {"a": 0.6, "b": 0.3}
    assert metrics["pool/a/difficulty"] == 0.6 and metrics["pool/b/pass_rate"] == 1.0
    low = make(dict(name="a", difficulty=0.05, adaptive=True, step=0.1))
    run_batch(low, False)
    assert low.difficulties() == {"a": 0.0}


def test_instances_are_sampled_at_the_current_difficulty():
    pool = make(dict(name="a", difficulty=0.2, adaptive=True, step=0.25))
    run_batch(pool, True)
    assert {i.difficulty for i in pool.sample_batch(3, 1, rng_seed=0)} == {0.45}


def test_scores_count_as_fractional_passes():
    pool = make(dict(name="a"))
    batch = pool.sample_batch(4, 0, rng_seed=0)
    assert pool.update(batch, [1.0, 0.5, 0.0, 0.5])["pool/a/batch_pass_rate"] == 0.5


def test_sampling_is_deterministic_and_seeds_are_fresh_train_seeds():
    entries = (dict(name="a", weight=1.0), dict(name="b", weight=1.0))
    p, q = make(*entries), make(*entries)
    batches = [p.sample_batch(6, step, rng_seed=7) for step in range(3)]
    assert [keys(b) for b in batches] == [keys(q.sample_batch(6, step, rng_seed=7)) for step in range(3)]
    seeds = [i.seed for b in batches for i in b]
    assert seeds == [split_seed("train", k) for k in range(18)]  # a running counter, never reused
    assert all(seed_split(s) == "train" for s in seeds)
    assert not set(seeds) & {split_seed("eval", k) for k in range(1000)}
    orders = {tuple(i.env for i in make(*entries).sample_batch(6, 0, rng_seed=r)) for r in range(20)}
    assert len(orders) > 1  # the env order depends on rng_seed


def test_weights_are_met_exactly_by_systematic_sampling():
    pool = make(dict(name="a", weight=3.0), dict(name="b", weight=1.0))
    for step in range(10):
        assert Counter(i.env for i in pool.sample_batch(8, step, rng_seed=step)) == {"toy_pool_a": 6, "toy_pool_b": 2}
    off = make(dict(name="a", weight=0.0), dict(name="b", weight=1.0))
    assert {i.env for i in off.sample_batch(16, 0, rng_seed=0)} == {"toy_pool_b"}


def test_state_round_trip_continues_identically():
    entries = (dict(name="a", difficulty=0.5, adaptive=True), dict(name="b", weight=2.0))
    p = make(*entries)
    for step in range(3):
        batch = p.sample_batch(5, step, rng_seed=1)
        p.update(batch, [i.env == "toy_pool_a" for i in batch])
    state = json.loads(json.dumps(p.state_dict()))
    assert state["counter"] == 15 and state["entries"]["a"]["difficulty"] == 0.65
    q = make(*entries)
    q.load_state_dict(state)
    assert q.difficulties() == p.difficulties() and q.pass_rates() == p.pass_rates()
    assert keys(q.sample_batch(5, 3, rng_seed=1)) == keys(p.sample_batch(5, 3, rng_seed=1))
    with pytest.raises(ValueError, match="entries"):
        make(dict(name="a")).load_state_dict(state)


def test_registered_environments_are_looked_up_by_name():
    pool = EnvPool([PoolEntry(name="arithmetic_chain", difficulty=0.4)])
    batch = pool.sample_batch(2, 0, rng_seed=0)
    assert [i.env for i in batch] == ["arithmetic_chain"] * 2 and batch[0].difficulty == 0.4


def test_invalid_configurations_are_rejected():
    with pytest.raises(ValueError):
        PoolEntry(name="a", band=(0.7, 0.3))
    with pytest.raises(ValueError):
        PoolEntry(name="a", difficulty=0.9, max_difficulty=0.5)
    with pytest.raises(ValueError):
        PoolEntry(name="a", step=0.0)
    with pytest.raises(ValueError, match="distinct"):
        make(dict(name="a"), dict(name="a"))
    with pytest.raises(ValueError, match="positive weight"):
        make(dict(name="a", weight=0.0))
    pool = make(dict(name="a"))
    with pytest.raises(ValueError, match="not from this pool"):
        pool.update(make(dict(name="b")).sample_batch(1, 0, 0), [True])


def test_spread_draws_each_problem_difficulty_from_its_seed():
    from worldsmith.rl.pool import spread_difficulty

    pool = make(dict(name="a", difficulty=0.5, spread=0.1))
    batch = pool.sample_batch(64, 0, rng_seed=0)
    levels = [i.difficulty for i in batch]
    assert all(0.4 <= d <= 0.6 for d in levels) and len(set(levels)) > 20
    assert min(levels) < 0.45 and max(levels) > 0.55  # both sides of the centre
    assert levels == [spread_difficulty(0.5, 0.1, i.seed) for i in batch]  # the seed alone decides
    assert [i.difficulty for i in make(dict(name="a", difficulty=0.5)).sample_batch(8, 0, rng_seed=0)] == [0.5] * 8
    assert spread_difficulty(0.02, 0.1, 5) >= 0.0 and spread_difficulty(0.98, 0.1, 5) <= 1.0
    with pytest.raises(ValueError):
        PoolEntry(name="a", spread=0.6)
