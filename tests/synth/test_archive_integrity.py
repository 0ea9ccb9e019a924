"""A program read out of the archive to run is checked against its sha256 first: one whose stored
source was changed behind the archive's back is quarantined, said so in one line, and never run."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from test_loop import CORPUS, GOOD, L5_BUG, ScriptedSolverDouble, config, references, tiny

from worldsmith.configuration import build
from worldsmith.runs import RunDir
from worldsmith.synth.archive import Archive, source_hash
from worldsmith.synth.config import SynthConfig
from worldsmith.synth.loop import evaluate_programs, synth_trainer
from worldsmith.synth.sandboxed_env import SandboxedEnvironment

ALWAYS_RIGHT = "\n# the scorer now says 1.0 to everything\n"


def tamper(path, cid: int, source: str) -> None:
    """Change a stored source the way a hand edit of the file would: past the archive's own guard."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER IF EXISTS admitted_source_is_frozen")
    conn.execute("UPDATE candidates SET source = ? WHERE id = ?", (source, cid))
    conn.commit()
    conn.close()


def archive_source(db, cid: int) -> str:
    with Archive(db) as archive:
        return archive.get(cid).source


@pytest.fixture
def sources_run(monkeypatch) -> list[str]:
    """The source of every program started in the sandbox from now on."""
    started: list[str] = []
    original = SandboxedEnvironment.__init__

    def recording(self, source, *args, **kwargs):
        started.append(source)
        original(self, source, *args, **kwargs)

    monkeypatch.setattr(SandboxedEnvironment, "__init__", recording)
    return started


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_resume_quarantines_a_tampered_admitted_program_and_does_not_run_it(tmp_path, sources_run, caplog):
    cfg = config()
    model, tokenizer = tiny()
    run = RunDir(tmp_path / "run")
    db = tmp_path / "run" / "archive.sqlite"
    names = [GOOD, "matrix_trace", L5_BUG]
    with Archive(db) as archive:
        trainer = synth_trainer(cfg, model, tokenizer, archive, run)
        role = trainer.method("generator")
        role.proposer.files = sorted((p for p in role.proposer.files if p.stem in names), key=lambda p: p.name)
        role.funnel.backend = ScriptedSolverDouble(references([GOOD, "matrix_trace"], 8, 0.0))
        trainer.step(0)
        trainer.step_index = 1
        admitted = {info["id"]: name for name, info in role.admitted.items()}
        trainer.save_checkpoint(run)
    assert len(admitted) == 2
    bad, good = sorted(admitted)
    changed = archive_source(db, bad) + ALWAYS_RIGHT
    tamper(db, bad, changed)
    sources_run.clear()

    with Archive(db) as archive:
        again = synth_trainer(cfg, tiny()[0], tokenizer, archive, run)
        assert again.resume(run) and again.step_index == 1
        assert set(again.method("generator").admitted) == {admitted[good]}
        assert [e.name for e in again.pool.joined()] == [admitted[good]]
        again.pool.sample_batch(16, 1, 0)
        cand = archive.get(bad)
        assert archive.get(good).status == "admitted"
    assert cand.status == "quarantined" and "does not match its sha256" in cand.status_reason
    assert changed not in sources_run and any(src == archive_source(db, good) for src in sources_run)
    lines = [m for m in _warnings(caplog) if f"candidate {bad}" in m]
    assert len(lines) == 1 and "\n" not in lines[0] and "quarantined" in lines[0]


def test_held_out_evaluation_quarantines_and_skips_tampered_programs(tmp_path, sources_run):
    db = tmp_path / "a.sqlite"
    with Archive(db) as archive:
        good = archive.add(CORPUS[GOOD], "test", name=GOOD)
        admitted = archive.add(CORPUS["matrix_trace"], "test", name="matrix_trace")
        retired = archive.add(CORPUS["base_conversion"], "test", name="base_conversion")
        for cid in (good, admitted, retired):
            archive.set_status(cid, "admitted", "passed")
        archive.set_status(retired, "retired", "saturated")
    for cid, name in ((admitted, "matrix_trace"), (retired, "base_conversion")):
        tamper(db, cid, CORPUS[name] + ALWAYS_RIGHT)
    sources_run.clear()
    model, tokenizer = tiny()
    cfg = build(SynthConfig, {"eval": {"instances": 2, "samples": 1}, "sampling": {"max_new_tokens": 4},
                              "synth": {"funnel": {"calibration": {"difficulty": 0.0}}}})
    result = evaluate_programs(cfg, model, tokenizer, db, [good, admitted, retired])
    assert set(result["per_program"]) == {f"synth-{good}"}
    assert set(result["failed"]) == {f"synth-{admitted}", f"synth-{retired}"}
    assert all("quarantined" in why for why in result["failed"].values())
    assert sources_run == [CORPUS[GOOD]]
    with Archive(db) as archive:
        assert [archive.get(c).status for c in (good, admitted, retired)] == ["admitted", "quarantined", "quarantined"]
        assert [h["to_status"] for h in archive.history(retired)][-2:] == ["retired", "quarantined"]


def test_the_admitted_list_leaves_out_and_quarantines_a_tampered_program(tmp_path, caplog):
    db = tmp_path / "a.sqlite"
    with Archive(db) as archive:
        ids = [archive.add(f"class Env{i}:\n    value = {i}\n", "p") for i in range(3)]
        for cid in ids:
            archive.set_status(cid, "admitted", "passed")
    tamper(db, ids[1], "class Env1:\n    value = 'always right'\n")
    with Archive(db) as archive:
        assert [c.id for c in archive.admitted()] == [ids[0], ids[2]]
        cand = archive.get(ids[1])
        assert cand.status == "quarantined" and not cand.intact and cand.sha256 == source_hash("class Env1:\n    value = 1\n")
        assert archive.runnable(ids[1]) is None and archive.runnable(ids[0]).id == ids[0]
        assert [c.id for c in archive.admitted()] == [ids[0], ids[2]]
        assert archive.get(ids[1]).status == "quarantined"
    assert sum(f"candidate {ids[1]}" in m for m in _warnings(caplog)) == 2  # each time it was asked to run
