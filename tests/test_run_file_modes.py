"""Every file a run writes gets the mode ``open()`` would give it (0666 less the umask), whether it
was appended to, saved by a library, or written atomically through a temporary file."""

import os
import stat
import subprocess
import sys

import pytest
from test_resume_records import ENV, ROOT, TRAIN

from worldsmith.runs import atomic_write_bytes, atomic_write_json


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"data")
        atomic_write_json(tmp_path / "b.json", {"x": 1})
        with open(tmp_path / "c.txt", "w") as f:
            f.write("plain open")
    finally:
        os.umask(old)
    assert {name: _mode(tmp_path / name) for name in ("a.bin", "b.json", "c.txt")} == \
           dict.fromkeys(("a.bin", "b.json", "c.txt"), 0o666 & ~umask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.json", "c.txt"]  # no temporary left


def test_the_files_a_run_writes_itself_have_one_mode(tmp_path):
    """Records, config, checkpoints and the policy folders (whose weights a library writes)."""
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "worldsmith.cli", *TRAIN, "train.steps=2", "train.checkpoint_every=1",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, env=ENV, cwd=ROOT,
                          preexec_fn=lambda: os.umask(0o022))
    assert done.returncode == 0, done.stderr[-2000:]
    modes = {str(p.relative_to(out)): oct(_mode(p)) for p in out.rglob("*") if p.is_file()}
    assert {"summary.json", "metrics.jsonl", "config.yaml", "checkpoints/step_1.pt", "checkpoints/step_2.pt",
            "policy/model.safetensors", "policy_init/model.safetensors"} <= set(modes)
    assert set(modes.values()) == {"0o644"}, modes
