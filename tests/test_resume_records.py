"""A run killed with SIGKILL at any point and then resumed leaves every record file exactly as an
uninterrupted run does: metrics.jsonl, and for synth also funnel.jsonl and the archive (candidates
and their status events). Only wall-clock fields may differ."""

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
TRAIN = ["train", str(ROOT / "configs" / "grpo_arithmetic.yaml"), "train.steps=8", "train.prompts_per_step=2",
         "train.group_size=4", "train.minibatch_size=8", "train.microbatch_size=8", "sft.examples=0",
         "eval.instances=4", "eval.samples=1", "sampling.max_new_tokens=6", "train.checkpoint_every=3"]
SYNTH = ["synth", str(ROOT / "configs" / "synth_corpus.yaml"), "--no-progress", "train.steps=4",
         "sft.examples=64", "eval.instances=4", "eval.samples=1", "train.prompts_per_step=4",
         "train.checkpoint_every=2"]
WALL_CLOCK = {"seconds", "at", "created", "updated", "admitted_at"}


def _plain(value):
    """A record without its wall-clock fields (time/*, seconds, timestamps)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in WALL_CLOCK and not k.startswith("time/")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def records(run: pathlib.Path) -> dict:
    out = {}
    for name in ("metrics.jsonl", "funnel.jsonl"):
        if (run / name).exists():
            out[name] = [_plain(json.loads(line)) for line in (run / name).read_text().splitlines()]
    if (run / "archive.sqlite").exists():
        with sqlite3.connect(run / "archive.sqlite") as db:
            db.row_factory = sqlite3.Row
            for table in ("candidates", "status_events"):
                rows = [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY id")]
                out[table] = [_plain({**r, "gates": json.loads(r["gates"])} if "gates" in r else r) for r in rows]
    return out


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "worldsmith.cli", *args], capture_output=True, text=True,
                          env=ENV, timeout=600, **kw)


def killed_at(args, out: pathlib.Path, lines: int) -> int:
    """Start ``args`` and SIGKILL it as soon as metrics.jsonl holds ``lines`` rows; returns the rows then."""
    proc = subprocess.Popen([sys.executable, "-m", "worldsmith.cli", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= lines:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return len(metrics.read_text().splitlines())


def killed_resumed_and_uninterrupted(tmp_path, args, lines: int, steps: int) -> tuple[dict, dict]:
    """Records of a run killed after ``lines`` metric rows then resumed, and of one never stopped."""
    straight = cli(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert killed_at(args, tmp_path / "killed", lines) < steps
    resumed = cli(*args, "--out", str(tmp_path / "killed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = records(tmp_path / "killed")
    assert [r["step"] for r in got["metrics.jsonl"]] == list(range(steps))
    return got, records(tmp_path / "straight")


@pytest.mark.parametrize("lines", [1, 5])  # before the first checkpoint (step 3); between two
def test_train_killed_and_resumed_leaves_the_records_of_an_uninterrupted_run(tmp_path, lines):
    got, expected = killed_resumed_and_uninterrupted(tmp_path, TRAIN, lines, steps=8)
    assert got == expected


@pytest.mark.parametrize("lines", [1, 3])  # before the first checkpoint (step 2); after it
def test_synth_killed_and_resumed_leaves_the_records_of_an_uninterrupted_run(tmp_path, lines):
    got, expected = killed_resumed_and_uninterrupted(tmp_path, SYNTH, lines, steps=4)
    assert len(got["funnel.jsonl"]) == len(expected["funnel.jsonl"]) > 0 and got["candidates"]
    assert got == expected
