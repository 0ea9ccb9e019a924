"""The Theorem-1 benchmark's noisy start data: each level's decision is wrong independently."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from worldsmith import envs

_SPEC = importlib.util.spec_from_file_location(
    "theorem1_depth", Path(__file__).resolve().parents[1] / "benchmarks" / "theorem1_depth.py")
theorem1_depth = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(theorem1_depth)


def _levels(prompt: str) -> list[tuple[int, int]]:
    body = prompt.split("Levels: ")[1].split(".")[0]
    return [tuple(int(x) for x in pair.split("|")) for pair in body.split()]


def _grade(prompt: str, completion: str) -> bool:
    env = envs.get("decision_chain")
    answer = completion.split("<answer>")[1].split("</answer>")[0]
    return env.score({"levels": [list(p) for p in _levels(prompt)]}, answer) == 1.0


def test_no_noise_gives_the_reference_derivations():
    examples = theorem1_depth.noisy_decision_examples([3, 5], 40, 0.0, seed=0)
    assert len(examples) == 40 and all(_grade(p, c) for p, c in examples)
    assert {len(_levels(p)) for p, _ in examples} == {3, 5}


def test_full_noise_takes_the_smaller_digit_everywhere_and_the_answer_follows():
    for prompt, completion in theorem1_depth.noisy_decision_examples([4], 20, 1.0, seed=1):
        levels = _levels(prompt)
        lines = completion.splitlines()
        assert lines[:-1] == [f"{a}|{b}={min(a, b)}" for a, b in levels]
        assert lines[-1] == f"<answer>{''.join(str(min(p)) for p in levels)}</answer>"
        assert not _grade(prompt, completion)


def test_each_decision_errs_at_the_rate_independently_of_its_level():
    examples = theorem1_depth.noisy_decision_examples([6], 1500, 0.3, seed=2)
    wrong_by_level = [0] * 6
    for prompt, completion in examples:
        for k, ((a, b), line) in enumerate(zip(_levels(prompt), completion.splitlines())):
            wrong_by_level[k] += line != f"{a}|{b}={max(a, b)}"
    rates = [w / len(examples) for w in wrong_by_level]
    # 1500 draws per level: the binomial sd is 0.012, so 0.05 is 4 sd
    assert all(abs(r - 0.3) < 0.05 for r in rates), rates


def test_growth_is_the_per_seed_slope_with_censored_runs_at_the_cap():
    runs = [{"seed": s, "depth": d, "method": m, "steps_to_target": steps}
            for s, rows in {0: {"grpo": [10, 20, None], "vppo": [10, 15, 20]},
                            1: {"grpo": [10, 30, 50], "vppo": [5, 10, 15]}}.items()
            for m, per_depth in rows.items() for d, steps in zip([4, 5, 6], per_depth)]
    out = theorem1_depth.growth(runs, [4, 5, 6], ["grpo", "vppo"], max_steps=60)
    # seed 0 GRPO: 10, 20, 60 (censored) -> slope 25; seed 1: 10, 30, 50 -> 20
    assert out["grpo"]["per_seed"] == {0: 25.0, 1: 20.0}
    assert out["vppo"]["per_seed"] == {0: 5.0, 1: 5.0}
    assert out["vppo-grpo"]["mean"] == -17.5
    # on a log scale: seed 1 VPPO 5, 10, 15 -> ln 3 / 2 per level; GRPO seed 0 10, 20, 60 -> ln 6 / 2
    assert out["log"]["vppo"]["per_seed"][1] == pytest.approx(math.log(3) / 2)
    assert out["log"]["grpo"]["per_seed"][0] == pytest.approx(math.log(6) / 2)
    assert out["log"]["grpo"]["factor_per_level"] == pytest.approx(
        math.exp((math.log(6) / 2 + math.log(5) / 2) / 2))


def test_the_common_step_is_where_the_earliest_run_stopped_and_pairs_read_there():
    def run(seed, method, curve):
        return {"seed": seed, "depth": 4, "method": method, "curve": curve,
                "steps_to_target": curve[-1][0] if curve[-1][1] >= 0.5 else None}
    runs = [run(0, "grpo", [(0, 0.1), (10, 0.2), (20, 0.3), (30, 0.5)]),
            run(0, "vppo", [(0, 0.1), (10, 0.3), (20, 0.5)]),
            run(1, "grpo", [(0, 0.0), (10, 0.1), (20, 0.2), (30, 0.3), (40, 0.4)]),
            run(1, "vppo", [(0, 0.0), (10, 0.2), (20, 0.25), (30, 0.35), (40, 0.45)])]
    assert theorem1_depth.common_step(runs) == 20
    assert theorem1_depth.common_step([run(0, "grpo", [(0, 0.6)])]) is None
    out = theorem1_depth.summarize(runs, [4], ["grpo", "vppo"], max_steps=40)
    at = out["4"]["vppo-grpo"]["at_common_step"]
    # at step 20: seed 0 0.5 - 0.3, seed 1 0.25 - 0.2
    assert at["step"] == 20 and at["mean"] == pytest.approx((0.2 + 0.05) / 2)
    paired = theorem1_depth.summarize(runs, [4], ["grpo", "vppo"], max_steps=40, levels=[0.25, 0.5])
    to = paired["4"]["vppo-grpo"]["steps_to"]
    # to 0.25: seed 0 10 - 20, seed 1 20 - 30; to 0.5: seed 0 20 - 30, seed 1 never twice (40 - 40)
    assert to["0.25"]["mean"] == pytest.approx((-10 - 10) / 2)
    assert to["0.5"]["mean"] == pytest.approx((-10 + 0) / 2)


def test_mechanism_means_over_all_steps_and_the_first_tenth():
    seen = {"groups/zero_variance_fraction": [1.0] * 10 + [0.0] * 10, "vppo/rp_fraction": []}
    out = theorem1_depth.mechanism(seen)
    assert out["groups/zero_variance_fraction"] == pytest.approx(0.5)
    assert out["groups/zero_variance_fraction@first_tenth"] == pytest.approx(1.0)  # the first 2 of 20 steps
    assert "vppo/rp_fraction" not in out  # a metric no step logged is left out, not reported as 0
    short = theorem1_depth.mechanism({"accuracy/train": [0.25, 0.75]})
    assert short["accuracy/train@first_tenth"] == pytest.approx(0.25)  # at least one step


def test_mean_curves_keep_only_the_steps_every_run_reached(tmp_path):
    runs = [{"seed": 0, "depth": 6, "method": "vppo", "curve": [(0, 0.0), (10, 0.2), (20, 0.6)]},
            {"seed": 1, "depth": 6, "method": "vppo", "curve": [(0, 0.1), (10, 0.4)]},
            {"seed": 0, "depth": 6, "method": "grpo", "curve": [(0, 0.0), (10, 0.1), (20, 0.3)]}]
    curve = theorem1_depth.mean_curves(runs, 6, "vppo")
    assert [step for step, _ in curve] == [0, 10]  # seed 1 stopped at step 10
    assert curve[1][1]["mean"] == pytest.approx(0.3)
    assert theorem1_depth.mean_curves(runs, 7, "vppo") == []
    out = tmp_path / "curves.png"
    theorem1_depth.plot_curves(runs, [6], ["grpo", "vppo"], str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_final_metrics_pair_only_runs_that_recorded_them():
    def run(seed, method, last, final=None):
        r = {"seed": seed, "depth": 6, "method": method, "curve": [(0, 0.0), (40, last)], "steps_to_target": None}
        return r | ({"final": final} if final is not None else {})
    runs = [run(0, "grpo", 0.2, {"pass@k": 0.4}), run(0, "vppo", 0.5, {"pass@k": 0.7}),
            run(1, "grpo", 0.1, {"pass@k": 0.3}), run(1, "vppo", 0.2, {"pass@k": 0.2}),
            run(2, "grpo", 0.1), run(2, "vppo", 0.9)]  # made before "final" was recorded
    pair = theorem1_depth.summarize(runs, [6], ["grpo", "vppo"], max_steps=40)["6"]["vppo-grpo"]
    assert pair["last"]["n"] == 3
    assert pair["final_pass@k"]["seeds"] == 2
    assert pair["final_pass@k"]["mean"] == pytest.approx((0.3 - 0.1) / 2)
    assert "final_maj@k" not in pair
