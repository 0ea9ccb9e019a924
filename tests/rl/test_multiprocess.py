"""`accelerate launch` with two CPU processes: DDP training through the same CLI."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

CONFIG = """
threads: 1
model:
  tiny: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}
pool: [{name: arithmetic_chain}]
sampling: {max_new_tokens: 8}
optim: {lr: 1.0e-2}
train: {steps: 3, prompts_per_step: 4, group_size: 4, minibatch_size: 8, microbatch_size: 8, checkpoint_every: 0}
eval: {instances: 8, samples: 1}
"""


@pytest.mark.skipif(shutil.which("accelerate", path=str(pathlib.Path(sys.executable).parent)) is None,
                    reason="accelerate launcher not installed")
def test_two_cpu_processes_train_one_run(tmp_path):
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    launcher = pathlib.Path(sys.executable).parent / "accelerate"
    cmd = [str(launcher), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "worldsmith.cli", "train", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]  # one writer: the main process
    assert all(r["loss/n_tokens"] > 0 for r in rows)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 3
    assert (tmp_path / "run" / "policy" / "config.json").exists()
