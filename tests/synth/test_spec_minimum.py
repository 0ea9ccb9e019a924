"""The minimum tests of specs/rl-algorithms.md §1.9, on the seed environments' own sources:

1. a planted subset-sum seed environment (and every other seed) passes L1-L5;
2. a deliberately non-deterministic environment fails L3;
3. an environment whose scorer accepts any integer fails L5;
4. a near-duplicate of a seed is rejected by the novelty gate τ = 0.80 (through the funnel).

Plus the self-review stage of the funnel and the generator reward of every outcome.
"""

from __future__ import annotations

import pytest
import torch

from worldsmith.envs.seeds import SEED_MODULES
from worldsmith.policy.backend import Rollouts, SamplingParams
from worldsmith.synth.archive import Archive
from worldsmith.synth.calibrate import calibration_seeds, difficulty_reward
from worldsmith.synth.funnel import Funnel, FunnelConfig, FunnelRecord, GeneratorRewards, generator_reward
from worldsmith.synth.gates import GateConfig, validate
from worldsmith.synth.proposers import Proposal, seed_exemplars
from worldsmith.synth.review import ReviewConfig
from worldsmith.synth.sandboxed_env import SandboxedEnvironment

SEEDS = dict(zip(SEED_MODULES, seed_exemplars()))
FAST = GateConfig(seeds=3, probe_seeds=1)


def swap(source: str, old: str, new: str) -> str:
    assert old in source, old
    return source.replace(old, new)


@pytest.mark.parametrize("name", SEED_MODULES)
def test_every_seed_environment_passes_the_gates(name):
    verdict = validate(SEEDS[name], FAST)
    assert verdict.admitted, [(g.name, g.reason) for g in verdict.gates if not g.passed]


def test_a_non_deterministic_environment_fails_l3():
    source = swap(SEEDS["gcd_euclid"], "factor = rng.randint(1, 10 ** lerp_int(difficulty, 1, 9) - 1)",
                  "factor = random.SystemRandom().randint(1, 10 ** lerp_int(difficulty, 1, 9) - 1)")
    verdict = validate(source, FAST)
    assert verdict.failed_gate == "L3_determinism", [(g.name, g.reason) for g in verdict.gates]


def test_a_scorer_that_accepts_any_integer_fails_l5():
    source = swap(SEEDS["gcd_euclid"], "return float(parse_int(answer) == self._trace(instance)[-1][0])",
                  "return float(parse_int(answer) is not None)")
    verdict = validate(source, FAST)
    assert verdict.failed_gate == "L5_scorer", [(g.name, g.reason) for g in verdict.gates]


class ReferenceSolverDouble:
    """Answers the first half of each calibration batch with the reference (a solver that can)."""

    def __init__(self, references: dict[str, str]) -> None:
        self.references = references

    def generate(self, prompts: list[str], params: SamplingParams) -> Rollouts:
        half = len(prompts) // 2
        texts = [f"<answer>{self.references.get(p, '0')}</answer>" if i < half else "<answer>-1</answer>"
                 for i, p in enumerate(prompts)]
        z = torch.zeros((len(prompts), 1), dtype=torch.long)
        return Rollouts(z, z.bool(), z, z.bool(), torch.zeros((len(prompts), 1)), texts)


class ScriptedReviewerDouble:
    """A remote reviewer: the k reviews of a program are ``verdicts`` in order."""

    def __init__(self, verdicts: list[str]) -> None:
        self.verdicts = verdicts
        self.prompts: list[str] = []
        self.params: list[SamplingParams] = []

    def generate(self, prompts: list[str], params: SamplingParams) -> Rollouts:
        self.prompts += prompts
        self.params.append(params)
        texts = [self.verdicts[i % len(self.verdicts)] for i in range(len(prompts))]
        z = torch.zeros((len(prompts), 1), dtype=torch.long)
        return Rollouts(z, z.bool(), z, z.bool(), torch.zeros((len(prompts), 1)), texts)


ACCEPT = "DATA_FLOW: OK\nINSTANCE_TRACE: OK\nALGORITHM: OK\nSCORER: OK\nVERDICT: ACCEPT"
REJECT = "DATA_FLOW: OK\nINSTANCE_TRACE: OK\nALGORITHM: BUG - the trace stops one pair early\nSCORER: OK\nVERDICT: REJECT"

NEAR_DUPLICATE = (SEEDS["gcd_euclid"]
                  .replace("class GcdEuclid", "class CommonDivisor")
                  .replace('name = "gcd_euclid"', 'name = "common_divisor"')
                  .replace("_trace", "_steps").replace("pairs", "rows")
                  .replace("Compute gcd(", "Find gcd("))


def funnel_for(tmp_path, references: dict[str, str], reviewer=None, review: bool = False,
               seeds: tuple[str, ...] = SEED_MODULES) -> tuple[Funnel, Archive]:
    archive = Archive(tmp_path / "archive.sqlite")
    cfg = FunnelConfig(gates=FAST, review=ReviewConfig(enabled=review), seeds_in_novelty=seeds,
                       calibration={"m": 8, "difficulty": 0.0})
    return Funnel(archive, ReferenceSolverDouble(references), cfg, reviewer=reviewer), archive


def references_of(*sources: str) -> dict[str, str]:
    out = {}
    for source in sources:
        env = SandboxedEnvironment(source, "x")
        for inst in env.sample_many(calibration_seeds(8, 0), 0.0):
            out[inst.prompt] = inst.reference
    return out


def test_a_near_duplicate_of_a_seed_is_rejected_by_the_novelty_gate(tmp_path):
    funnel, archive = funnel_for(tmp_path, references_of(NEAR_DUPLICATE))
    with archive:
        line = funnel.judge(0, Proposal(NEAR_DUPLICATE, "test"))
        assert line.calibration["admitted_band"]  # only novelty stands in its way
        assert line.outcome == "rejected" and line.stage == "novelty"
        assert line.novelty["nearest_id"] == "seed:gcd_euclid" and line.novelty["similarity"] >= 0.80
        assert line.reason.startswith("not novel") and line.reward == 0.0
        assert archive.get(line.id).status == "rejected"


def test_novelty_compares_admitted_programs_and_measures_the_batch(tmp_path):
    archive = Archive(tmp_path / "archive.sqlite")
    cfg = FunnelConfig(gates=FAST, seeds_in_novelty=(), calibration={"m": 8, "difficulty": 0.0})
    funnel = Funnel(archive, ReferenceSolverDouble(references_of(SEEDS["gcd_euclid"], NEAR_DUPLICATE)), cfg)
    with archive:
        first, second = funnel.judge_batch(0, [Proposal(SEEDS["gcd_euclid"], "test"), Proposal(NEAR_DUPLICATE, "test")])
        assert first.outcome == "admitted"  # no seeds to compare with here
        assert first.reward == pytest.approx(difficulty_reward(0.5) + first.novelty["bonus"])
        assert second.outcome == "rejected" and second.stage == "novelty"
        assert second.novelty["nearest_id"] == str(first.id) and second.novelty["similarity"] >= 0.80
        # the batch's repetitiveness s̄ over both programs switches the bonus weight fully on
        assert first.novelty["batch_similarity"] >= 0.80 and first.novelty["gamma"] == 5.0
        assert first.novelty["bonus"] == pytest.approx(5.0 * first.novelty["score"] / 2)


def test_self_review_gates_after_l5_and_is_never_rewarded(tmp_path):
    source = SEEDS["gcd_euclid"]
    reviewer = ScriptedReviewerDouble([ACCEPT, REJECT, ACCEPT])
    funnel, archive = funnel_for(tmp_path, references_of(source), reviewer=reviewer, review=True)
    with archive:
        line = funnel.judge(0, Proposal(source, "test"))
        assert line.outcome == "rejected" and line.stage == "review"
        assert line.reason.startswith("review") and "algorithm" in line.reason
        assert line.calibration is None and line.reward == 0.0
        assert len(reviewer.prompts) == 3 and all(source in p for p in reviewer.prompts)
        assert reviewer.params[0].temperature == 0.6
        assert funnel.counts["passed_L5"] == 1 and funnel.counts["passed_review"] == 0
    all_accept = ScriptedReviewerDouble([ACCEPT])
    funnel, archive = funnel_for(tmp_path / "b", references_of(source), reviewer=all_accept, review=True, seeds=())
    with archive:
        line = funnel.judge(0, Proposal(source, "test"))
        assert line.outcome == "admitted" and line.review["passed"]
        assert funnel.counts["passed_review"] == 1


@pytest.mark.parametrize("line, expected", [
    ({"outcome": "rejected", "stage": "L1_parse"}, -1.0),
    ({"outcome": "rejected", "stage": "L4_non_triviality"}, -1.0),
    ({"outcome": "rejected", "stage": "L5_scorer"}, -0.5),
    ({"outcome": "rejected", "stage": "review"}, 0.0),
    ({"outcome": "rejected", "stage": "calibration"}, 0.0),
    ({"outcome": "rejected", "stage": "calibration", "crashed": True}, -1.0),
    ({"outcome": "rejected", "stage": "novelty"}, 0.0),
    ({"outcome": "admitted", "calibration": {"difficulty_reward": 0.6}, "novelty": {"bonus": 0.25}}, 0.85),
    ({"outcome": "duplicate", "stage": "rejected", "archived_reason": "L5_scorer: accepts junk"}, -0.5),
    ({"outcome": "duplicate", "stage": "rejected", "archived_reason": "L2_execution: raised"}, -1.0),
    ({"outcome": "duplicate", "stage": "rejected", "archived_reason": "too hard: â = 0/8"}, 0.0),
    ({"outcome": "duplicate", "stage": "admitted", "archived_reason": "funnel: gates passed"}, 0.0),
])
def test_generator_reward_table(line, expected):
    line = FunnelRecord(0, "test", "test", None, **line)
    assert generator_reward(line, GeneratorRewards()) == pytest.approx(expected)
    custom = GeneratorRewards(gate_failure=-2.0, scorer_failure=-0.75)
    if expected in (-1.0, -0.5):
        assert generator_reward(line, custom) == {-1.0: -2.0, -0.5: -0.75}[expected]
