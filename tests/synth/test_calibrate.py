"""Solver-relative difficulty calibration (worldsmith.synth.calibrate, spec §1.4).

A scripted backend double stands in for the solver; the Wilson intervals and Q values below were
worked out by hand from the formulas in the module docstring (z = 1.959964 at 95%).
"""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from worldsmith import envs
from worldsmith.envs.contract import Instance, stable_hash
from worldsmith.policy.backend import GenerationBackend, Rollouts, SamplingParams
from worldsmith.synth.calibrate import (
    Calibration,
    CalibrationConfig,
    band_distance,
    calibrate,
    calibration_seeds,
    difficulty_reward,
    find_difficulty,
    wilson_interval,
)


class RecordingEnv:
    """An env-like wrapper (only ``sample`` and ``grade``) that remembers each prompt's instance."""

    def __init__(self, env: envs.Environment) -> None:
        self.env = env
        self.by_prompt: dict[str, Instance] = {}

    def sample(self, seed: int, difficulty: float = 0.0) -> Instance:
        inst = self.env.sample(seed, difficulty)
        self.by_prompt[inst.prompt] = inst
        return inst

    def grade(self, instance, response):
        return self.env.grade(instance, response)


class ScriptedBackendDouble:
    """A solver double. ``script`` (bools, by position in the batch) decides exactly which prompts
    get the right answer; otherwise an instance is answered right when a stable hash of its seed,
    read as a uniform draw in [0, 1), falls below ``p_correct`` (a number or a function of the
    instance's difficulty). Wrong answers are the reference plus one."""

    def __init__(self, env: RecordingEnv, p_correct=0.0, script: list[bool] | None = None) -> None:
        self.env = env
        self.p_correct = p_correct
        self.script = script
        self.calls: list[SamplingParams] = []

    def _right(self, i: int, inst: Instance) -> bool:
        if self.script is not None:
            return self.script[i]
        p = self.p_correct(inst.difficulty) if callable(self.p_correct) else self.p_correct
        return stable_hash("double", inst.seed) / 2**64 < p

    def generate(self, prompts: list[str], params: SamplingParams) -> Rollouts:
        self.calls.append(params)
        texts = []
        for i, prompt in enumerate(prompts):
            inst = self.env.by_prompt[prompt]
            answer = inst.reference if self._right(i, inst) else str(int(inst.reference) + 1)
            texts.append(f"<answer>{answer}</answer>")
        b = len(prompts)
        empty = torch.zeros((b, 1), dtype=torch.long)
        return Rollouts(empty, empty.bool(), empty, empty.bool(), torch.zeros((b, 1)), texts)


@pytest.fixture
def env() -> RecordingEnv:
    return RecordingEnv(envs.get("arithmetic_chain"))


def test_the_double_is_a_generation_backend_that_answers_as_scripted(env):
    # the calibration tests below read their expected Wilson intervals off this double's script
    double = ScriptedBackendDouble(env, script=[True, False, False, True])
    assert isinstance(double, GenerationBackend)
    instances = [env.sample(seed, 0.5) for seed in range(4)]
    out = double.generate([inst.prompt for inst in instances], SamplingParams(max_new_tokens=8))
    passed = [env.grade(inst, text).passed for inst, text in zip(instances, out.texts)]
    assert passed == [True, False, False, True]
    assert len(double.calls) == 1


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 8, 0.0, 0.324408),  # centre = half = 0.240091 / 1.480182 = 0.162204
        (3, 8, 0.136844, 0.694258),  # centre 0.415549, half 1.324137 * 0.210483 = 0.278705
        (8, 8, 0.675592, 1.0),
        (1, 10, 0.017876, 0.404150),  # the textbook example
    ],
)
def test_wilson_interval_matches_hand_computation(k, n, low, high):
    got = wilson_interval(k, n, 0.95)
    assert got == pytest.approx((low, high), abs=1e-6)


def test_wilson_interval_rejects_bad_counts():
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


@pytest.mark.parametrize(
    ("a", "expected"),
    [
        (0.3, 1.0),
        (0.125, 0.681941),  # exp(-0.175^2 / 0.08) = exp(-0.3828125)
        (0.875, 0.016038),  # exp(-0.575^2 / 0.08) = exp(-4.1328125)
        (0.5, 0.606531),  # exp(-0.5)
        (0.0, 0.324652),  # exp(-1.125)
    ],
)
def test_difficulty_reward_matches_hand_computation(a, expected):
    assert difficulty_reward(a) == pytest.approx(expected, abs=1e-6)


def test_difficulty_reward_sigma_is_a_knob():
    assert difficulty_reward(0.5, a_star=0.3, sigma=0.1) == pytest.approx(math.exp(-2.0))
    with pytest.raises(ValueError):
        difficulty_reward(0.5, sigma=0.0)


def test_scripted_three_of_eight(env):
    backend = ScriptedBackendDouble(env, script=[True, False, False, True, False, True, False, False])
    cal = calibrate(env, backend, m=8, difficulty=0.5, seed=0)
    assert isinstance(cal, Calibration)
    assert cal.n == 8 and cal.accuracy == 0.375
    assert cal.passed == (True, False, False, True, False, True, False, False)
    assert (cal.ci_low, cal.ci_high) == pytest.approx((0.136844, 0.694258), abs=1e-6)
    assert cal.admitted_band
    assert cal.difficulty_reward == pytest.approx(math.exp(-(0.075**2) / 0.08))  # 0.932102
    assert cal.difficulty_reward == pytest.approx(0.932102, abs=1e-6)


@pytest.mark.parametrize(("p", "accuracy"), [(0.0, 0.0), (1.0, 1.0)])
def test_all_wrong_or_all_right_is_not_admitted(env, p, accuracy):
    cal = calibrate(env, ScriptedBackendDouble(env, p_correct=p), m=8)
    assert cal.accuracy == accuracy
    assert not cal.admitted_band
    assert cal.difficulty_reward == 0.0
    assert cal.q == pytest.approx(difficulty_reward(accuracy))


def test_reward_outside_band_can_be_kept(env):
    cfg = CalibrationConfig(zero_reward_outside_band=False)
    cal = calibrate(env, ScriptedBackendDouble(env, p_correct=0.0), cfg=cfg)
    assert not cal.admitted_band and cal.difficulty_reward == pytest.approx(0.324652, abs=1e-6)


def test_probability_double_tracks_its_rate(env):
    cal = calibrate(env, ScriptedBackendDouble(env, p_correct=0.3), m=200, seed=1)
    assert 0.2 < cal.accuracy < 0.4
    assert cal.ci_low < 0.3 < cal.ci_high


def test_calibration_is_deterministic_and_uses_config(env):
    cfg = CalibrationConfig(m=6, difficulty=0.25, temperature=0.7, max_new_tokens=12)
    backend = ScriptedBackendDouble(env, p_correct=0.5)
    first = calibrate(env, backend, seed=3, cfg=cfg)
    second = calibrate(env, backend, seed=3, cfg=cfg)
    assert first == second
    assert first.n == 6 and first.difficulty == 0.25
    params = backend.calls[0]
    assert (params.temperature, params.max_new_tokens) == (0.7, 12)
    assert params.seed == backend.calls[1].seed


def test_calibration_seeds_are_odd_distinct_and_not_eval_seeds():
    seeds = calibration_seeds(64, seed=0)
    assert len(set(seeds)) == 64
    assert all(s & 1 for s in seeds)
    assert not set(seeds) & {envs.split_seed("eval", i) for i in range(64)}
    assert calibration_seeds(8, seed=1) != calibration_seeds(8, seed=0)


def test_find_difficulty_picks_the_band(env):
    rates = {0.0: 1.0, 0.25: 0.9, 0.5: 0.6, 0.75: 0.3, 1.0: 0.0}
    backend = ScriptedBackendDouble(env, p_correct=lambda d: rates[d])
    search = find_difficulty(env, backend, band=(0.2, 0.4), m=32)
    assert set(search.table) == set(rates)
    assert search.table[0.0].accuracy == 1.0 and search.table[1.0].accuracy == 0.0
    assert search.difficulty == 0.75
    assert search.distance == 0.0
    assert search.calibration is search.table[0.75]


def test_find_difficulty_ties_go_to_the_lower_difficulty(env):
    backend = ScriptedBackendDouble(env, p_correct=lambda d: 1.0 if d < 0.5 else 0.0)
    search = find_difficulty(env, backend, band=(0.4, 0.6), m=8)
    assert [search.table[d].accuracy for d in sorted(search.table)] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert search.difficulty == 0.0 and search.distance == pytest.approx(0.4)


def test_band_distance():
    assert band_distance(0.3, (0.2, 0.4)) == 0.0
    assert band_distance(0.0, (0.2, 0.4)) == pytest.approx(0.2)
    assert band_distance(0.9, (0.2, 0.4)) == pytest.approx(0.5)


def test_config_validates():
    with pytest.raises(ValidationError):
        CalibrationConfig(sigma=0.0)
    with pytest.raises(ValidationError):
        CalibrationConfig(admit_low=0.6, admit_high=0.4)
    with pytest.raises(ValidationError):
        CalibrationConfig(unknown=1)
    with pytest.raises(ValidationError):
        CalibrationConfig(search_band=(0.5, 0.2))
    for name, field in CalibrationConfig.model_fields.items():
        assert any(tag in field.description for tag in ("READ", "INFERRED", "PROPOSED")), name


def test_untrained_tiny_model_calibrates_to_zero_and_is_not_admitted():
    from worldsmith.policy.hf_backend import HFBackend
    from worldsmith.policy.model import build_tiny_model
    from worldsmith.policy.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer()
    backend = HFBackend(build_tiny_model(tok, seed=0), tok)
    cfg = CalibrationConfig(max_new_tokens=16)
    cal = calibrate(envs.get("arithmetic_chain"), backend, m=8, difficulty=0.5, cfg=cfg)
    assert cal.n == 8 and cal.accuracy == 0.0
    assert not cal.admitted_band and cal.difficulty_reward == 0.0
    assert cal.ci_low == 0.0 and cal.ci_high == pytest.approx(0.324408, abs=1e-6)
