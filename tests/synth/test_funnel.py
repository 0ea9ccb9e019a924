"""The admission funnel (worldsmith.synth.funnel) and the sandboxed environment it calibrates with.

A scripted solver double stands in for the policy: it knows each calibration prompt's reference
(read through ``SandboxedEnvironment.sample``) and answers the first half of every batch right.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from worldsmith.envs.contract import Instance, Score
from worldsmith.policy.backend import GenerationBackend, Rollouts, SamplingParams
from worldsmith.synth import corpus
from worldsmith.synth.archive import Archive
from worldsmith.synth.calibrate import CalibrationConfig, calibration_seeds
from worldsmith.synth.funnel import STAGES, FunnelConfig, run_funnel
from worldsmith.synth.proposers import CorpusProposer
from worldsmith.synth.sandboxed_env import SandboxedEnvironment

CORPUS = {item.name: item for item in corpus.load()}
CORPUS_DIR = Path(corpus.__file__).parent
GOOD, OTHER, BUGGY = "letter_count", "matrix_trace", "bug_constant_instance"


class ScriptedSolverDouble:
    """A ``GenerationBackend``: for a prompt in ``references`` it answers the reference when the
    prompt sits in the first ``right_fraction`` of the batch, otherwise a wrong answer."""

    def __init__(self, references: dict[str, str], right_fraction: float = 0.5) -> None:
        self.references = references
        self.right_fraction = right_fraction
        self.calls = 0

    def generate(self, prompts: list[str], params: SamplingParams) -> Rollouts:
        self.calls += 1
        right = int(len(prompts) * self.right_fraction)
        texts = [f"<answer>{self.references[p]}</answer>" if i < right and p in self.references
                 else "<answer>not the answer</answer>" for i, p in enumerate(prompts)]
        b = len(prompts)
        empty = torch.zeros((b, 1), dtype=torch.long)
        return Rollouts(empty, empty.bool(), empty, empty.bool(), torch.zeros((b, 1)), texts)


def references_for(names: list[str], cfg: CalibrationConfig) -> dict[str, str]:
    """prompt -> reference for every calibration instance of the named corpus programs."""
    out = {}
    for name in names:
        env = SandboxedEnvironment(CORPUS[name].source, name)
        for seed in calibration_seeds(cfg.m, 0):
            inst = env.sample(seed, cfg.difficulty)
            out[inst.prompt] = inst.reference
    return out


def test_scripted_double_is_a_generation_backend():
    assert isinstance(ScriptedSolverDouble({}), GenerationBackend)


def test_sandboxed_environment_samples_and_grades_like_an_environment():
    env = SandboxedEnvironment(CORPUS[GOOD].source, GOOD)
    a = env.sample(7, 0.5)
    again = SandboxedEnvironment(CORPUS[GOOD].source, GOOD).sample_many([5, 7], 0.5)
    assert isinstance(a, Instance) and a == again[1] and a != again[0]
    assert a.seed == 7 and a.difficulty == 0.5 and a.prompt and a.reference
    runs = env.runs
    assert env.sample(7, 0.5) == a and env.runs == runs  # kept, no new run
    right = env.grade(a, f"thinking... <answer>{a.reference}</answer>")
    assert isinstance(right, Score) and right.passed and right.value == 1.0
    wrong = env.grade(a, f"<answer>{int(a.reference) + 1}</answer>")
    assert not wrong.passed and wrong.value == 0.0 and wrong.reason == "incorrect"
    assert env.grade(a, "no tag").reason.startswith("no <answer>")
    verdicts = env.grade_many(again, [f"<answer>{i.reference}</answer>" for i in again])
    assert [v.passed for v in verdicts] == [True, True]


def test_a_lying_scorer_scores_zero_with_a_reason():
    env = SandboxedEnvironment(CORPUS["bug_bool_scorer"].source, "bug_bool_scorer")
    inst = env.sample(3, 0.5)
    verdict = env.grade(inst, f"<answer>{inst.reference}</answer>")
    assert verdict.value == 0.0 and not verdict.passed
    assert "bool" in verdict.reason and "not a number" in verdict.reason
    assert env.grade_many([inst], [f"<answer>{inst.reference}</answer>"])[0].value == 0.0


def test_grade_never_raises():
    env = SandboxedEnvironment(CORPUS["bug_sys_exit_scorer"].source, "bug_sys_exit_scorer")
    inst = env.sample(3, 0.5)
    assert env.grade(inst, f"<answer>{inst.reference}</answer>").passed
    verdicts = env.grade_many([inst, inst], [f"<answer>{inst.reference}</answer>", "<answer>junk</answer>"])
    assert [v.value for v in verdicts] == [0.0, 0.0]  # sys.exit on one answer ends the whole batch run
    assert all("no_result" in v.reason for v in verdicts)
    assert env.grade(inst, None).value == 0.0
    assert env.grade({"not": "the instance"}, "<answer>1</answer>").value == 0.0


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "cands"
    src.mkdir()
    for name in (GOOD, OTHER, BUGGY):
        shutil.copy(CORPUS_DIR / f"{name}.py", src / f"{name}.py")
    return src


def test_funnel_admits_the_correct_programs_and_rejects_the_buggy_one(folder: Path, tmp_path: Path):
    cfg = FunnelConfig()
    solver = ScriptedSolverDouble(references_for([GOOD, OTHER], cfg.calibration))
    out = tmp_path / "out"
    with Archive(tmp_path / "a.sqlite") as archive:
        summary = run_funnel(CorpusProposer(folder), archive, solver, cfg, out, progress=False)
        lines = [json.loads(line) for line in (out / "funnel.jsonl").read_text().splitlines()]
        by_name = {line["name"]: line for line in lines}
        assert [line["name"] for line in lines] == [BUGGY, GOOD, OTHER]

        bug = archive.get(by_name[BUGGY]["id"])
        assert bug.status == "rejected" and bug.status_reason.startswith("L4_non_triviality")
        assert by_name[BUGGY]["stage"] == "L4_non_triviality" and by_name[BUGGY]["calibration"] is None
        assert [g.passed for g in bug.gates][:4] == [True, True, True, False]

        for name in (GOOD, OTHER):
            line, cand = by_name[name], archive.get(by_name[name]["id"])
            assert line["outcome"] == "admitted" and cand.status == "admitted"
            assert line["calibration"]["accuracy"] == 0.5 and line["calibration"]["correct"] == 4
            assert cand.accuracy == 0.5 and cand.difficulty_reward > 0 and cand.novelty is not None
            assert all(g.passed for g in cand.gates)
        first = by_name[GOOD]["novelty"]
        assert first["nearest_id"].startswith("seed:") and first["score"] == pytest.approx(1 - first["similarity"])
        assert first["similarity"] < cfg.novelty.tau  # the seeds are compared, and letter_count is far from them
        second = by_name[OTHER]["novelty"]
        assert second["passed_gate"] and second["nearest_id"] == str(by_name[GOOD]["id"])
        assert second["similarity"] < cfg.novelty.tau
        assert archive.counts()["admitted"] == 2 and archive.counts()["rejected"] == 1

    assert solver.calls == 2  # one calibration batch per program that passed the gates
    assert list(summary["counts"]) == list(STAGES)
    assert summary["counts"] == {"candidates": 3, "passed_L1": 3, "passed_L2": 3, "passed_L3": 3,
                                 "passed_L4": 2, "passed_L5": 2, "passed_review": 2, "calibrated_in_band": 2,
                                 "novel": 2, "admitted": 2}
    assert json.loads((out / "summary.json").read_text())["counts"] == summary["counts"]
    png = out / "funnel.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_funnel_rejects_outside_the_band_and_copies(folder: Path, tmp_path: Path):
    cfg = FunnelConfig(limit=1)
    proposer = CorpusProposer(folder)
    proposer.files = [folder / f"{GOOD}.py", folder / f"{GOOD}.py", folder / f"{OTHER}.py"]
    always = ScriptedSolverDouble(references_for([GOOD], cfg.calibration), right_fraction=1.0)
    with Archive(tmp_path / "a.sqlite") as archive:
        run_funnel(proposer, archive, always, cfg, tmp_path / "o1", progress=False)
        (cand,) = archive.list()
        assert cand.status == "rejected" and cand.status_reason.startswith("too easy")
        summary = run_funnel(proposer, archive, ScriptedSolverDouble({}), cfg, tmp_path / "o2", progress=False)
        assert summary["outcomes"]["duplicate"] == 1 and summary["counts"]["candidates"] == 0
        summary = run_funnel(proposer, archive, ScriptedSolverDouble({}), cfg, tmp_path / "o3", progress=False)
        line = json.loads((tmp_path / "o3" / "funnel.jsonl").read_text())
        assert line["name"] == OTHER and line["reason"].startswith("too hard")
        assert line["calibration"]["accuracy"] == 0.0


def test_cli_funnel_on_the_shipped_corpus(tmp_path: Path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "worldsmith.cli", "synth", "funnel", "--out", str(out),
                          "--limit", "2", "--no-progress"], capture_output=True, text=True, timeout=180, env=env)
    assert res.returncode == 0, res.stderr
    assert "candidates          2" in res.stdout and "admitted            0" in res.stdout
    assert "untrained" in res.stdout and "too hard" in res.stdout
    lines = (out / "funnel.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(x)["reason"].startswith("too hard") for x in lines)
    assert (out / "funnel.png").is_file() and (out / "archive.sqlite").is_file()
    first = (out / "funnel.jsonl").read_text()
    again = subprocess.run([sys.executable, "-m", "worldsmith.cli", "synth", "funnel", "--out", str(out),
                            "--limit", "1", "--no-progress"], capture_output=True, text=True, timeout=180, env=env)
    assert again.returncode == 2 and "already holds a funnel run (funnel.jsonl)" in again.stderr, again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and (out / "funnel.jsonl").read_text() == first
