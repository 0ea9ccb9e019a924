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

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
TRAIN = ["train", str(ROOT / "configs" / "grpo_arithmetic.yaml"), "train.steps=8", "train.prompts_per_step=2",
         "train.group_size=4", "train.minibatch_size=8", "train.microbatch_size=8", "sft.examples=0",
         "eval.instances=4", "eval.samples=1", "sampling.max_new_tokens=6", "train.checkpoint_every=3"]
# 2 corpus programs judged per step: 3 correct ones calibrated by the solver in steps 0-1, then bugs
SYNTH = ["synth", str(ROOT / "configs" / "synth_corpus.yaml"), "--no-progress", "train.steps=4",
         "sft.examples=16", "sft.epochs=1", "eval.instances=2", "eval.samples=1", "train.prompts_per_step=2",
         "train.group_size=4", "sampling.max_new_tokens=8", "synth.group_size=2", "synth.funnel.calibration.m=4",
         "synth.funnel.calibration.max_new_tokens=8", "train.checkpoint_every=2"]
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


def killed_resumed_and_uninterrupted(tmp_path, args, kills: list[int], steps: int) -> tuple[dict, dict]:
    """Records of a run killed once it holds ``kills[0]`` metric rows, resumed and killed again at
    ``kills[1]`` rows, and so on, then resumed to the end; and those of a run never stopped."""
    straight = cli(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-2000:]
    for n, lines in enumerate(kills):
        more = ["--resume"] if n else []
        assert killed_at([*args, *more], tmp_path / "killed", lines) < steps
    resumed = cli(*args, "--out", str(tmp_path / "killed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = records(tmp_path / "killed")
    assert [r["step"] for r in got["metrics.jsonl"]] == list(range(steps))
    return got, records(tmp_path / "straight")


def test_train_killed_and_resumed_leaves_the_records_of_an_uninterrupted_run(tmp_path):
    # killed before the first checkpoint (step 3), then between the first and the second (step 6)
    got, expected = killed_resumed_and_uninterrupted(tmp_path, TRAIN, [1, 5], steps=8)
    assert got == expected


def test_synth_killed_and_resumed_leaves_the_records_of_an_uninterrupted_run(tmp_path):
    # killed before the first checkpoint (step 2), then after it with step 2's records written
    got, expected = killed_resumed_and_uninterrupted(tmp_path, SYNTH, [1, 3], steps=4)
    assert len(got["funnel.jsonl"]) == len(expected["funnel.jsonl"]) == 8
    assert got["candidates"] and got["status_events"]
    assert sum(line["calibration"] is not None for line in got["funnel.jsonl"]) == 3  # the solver sampled
    assert got == expected
