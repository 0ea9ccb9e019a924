"""A latest checkpoint that cannot be read back (empty, truncated, foreign, failing its CRC check), or
a stray file named like one, never blocks resume: it is set aside, resume falls back to the newest
intact checkpoint and says so in one line."""

import json
import logging
import re
import zipfile

import pytest
import torch
from test_resume_records import SYNTH, TRAIN, cli, records

from worldsmith.runs import SET_ASIDE, RunDir


def _write(path, step: int) -> None:
    torch.save({"step": step, "weights": torch.arange(64.0)}, path)


def _zip_without_pickle(path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "not a checkpoint")


def _flip_a_byte(path) -> None:
    """Flip one byte inside the stored tensor data: the file stays a well-formed zip."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)  # the weights
    local = info.header_offset
    start = local + 30 + int.from_bytes(data[local + 26:local + 28], "little") + \
        int.from_bytes(data[local + 28:local + 30], "little")
    data[start + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


#: how a checkpoint is damaged -> what the note says of it
DAMAGE = {
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated"),
    "foreign": (lambda p: p.write_text("step 10 went fine\n"), "not a torch checkpoint"),
    "zip without data.pkl": (_zip_without_pickle, "not a torch checkpoint"),
    "a flipped byte": (_flip_a_byte, "fails its CRC check"),
}


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_the_newest_intact_checkpoint_is_chosen_and_the_damaged_one_set_aside(tmp_path, caplog, damage):
    run = RunDir(tmp_path)
    run.checkpoint_dir.mkdir()
    for step in (2, 4, 10):
        _write(run.checkpoint_dir / f"step_{step}.pt", step)
    _write(run.checkpoint_dir / "step_final.pt", 99)
    spoil, said = DAMAGE[damage]
    spoil(run.checkpoint_dir / "step_10.pt")
    assert run.latest_checkpoint() == run.checkpoint_dir / "step_4.pt"
    assert sorted(p.name for p in run.checkpoint_dir.glob("step_*.pt")) == ["step_2.pt", "step_4.pt"]
    assert sorted(p.name for p in (run.checkpoint_dir / SET_ASIDE).iterdir()) == ["step_10.pt", "step_final.pt"]
    (line,) = _warnings(caplog)
    assert said in re.search(r"step_10\.pt \(([^)]*)\)", line).group(1)
    assert "step_final.pt (not named step_N.pt)" in line
    assert line.endswith("resuming from step_4.pt") and "\n" not in line
    assert run.latest_checkpoint() == run.checkpoint_dir / "step_4.pt" and len(_warnings(caplog)) == 1


def test_with_no_intact_checkpoint_left_there_is_none_and_it_says_so(tmp_path, caplog):
    run = RunDir(tmp_path)
    run.checkpoint_dir.mkdir()
    (run.checkpoint_dir / "step_3.pt").write_bytes(b"")
    assert run.latest_checkpoint() is None
    (line,) = _warnings(caplog)
    assert "step_3.pt (empty)" in line and line.endswith("no intact checkpoint is left")


def _damaged_and_resumed(tmp_path, args: list[str]) -> tuple[dict, dict, object]:
    """Records of a finished run with checkpoints at steps 2 and 4, and of the same run after its
    step 4 checkpoint was truncated, a stray step_final.pt added, and the run resumed."""
    out = tmp_path / "run"
    first = cli(*args, "--out", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    before = records(out)
    latest = out / "checkpoints" / "step_4.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    (out / "checkpoints" / "step_final.pt").write_text("done\n")
    resumed = cli(*args, "--out", str(out), "--resume")
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["resumed_from"] == 2
    notes = [line for line in resumed.stderr.splitlines() if line.startswith("checkpoints: skipped")]
    assert len(notes) == 1 and "step_4.pt (truncated" in notes[0] and "step_final.pt" in notes[0], resumed.stderr
    assert notes[0].endswith("resuming from step_2.pt")
    return before, records(out), out


def test_train_resumes_from_the_checkpoint_before_a_damaged_one_and_finishes(tmp_path):
    before, after, out = _damaged_and_resumed(tmp_path, [*TRAIN, "train.steps=4", "train.checkpoint_every=2"])
    assert [r["step"] for r in after["metrics.jsonl"]] == [0, 1, 2, 3]
    assert after == before  # steps 2 and 3 were run again, exactly as the first time
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*.pt")) == ["step_2.pt", "step_4.pt"]


def test_synth_resumes_from_the_checkpoint_before_a_damaged_one_with_that_checkpoints_archive(tmp_path):
    before, after, out = _damaged_and_resumed(tmp_path, [*SYNTH, "train.steps=4", "train.checkpoint_every=2"])
    # the archive went back to its step 2 copy: steps 2 and 3 judged their programs afresh
    assert after["funnel.jsonl"] == before["funnel.jsonl"] and len(after["funnel.jsonl"]) == 8
    assert after == before
