"""Two CPU processes through the documented launch: DDP over gloo, global metrics, exact resume.

The 2-process run is stopped after its step-2 checkpoint and resumed; it must then equal a
1-process run of the same global batch: the same completions (rewards, lengths), the same loss,
gradient norm and weights.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from worldsmith.distributed import lost_processes

# the warm start gives some groups mixed rewards, so the policy gradient is not zero
CONFIG = """
threads: 1
model:
  tiny: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}
pool: [{name: arithmetic_chain}]
sampling: {max_new_tokens: 6}
sft: {examples: 1500, epochs: 2, lr: 1.0e-2, batch_size: 16, with_steps: false}
optim: {lr: 1.0e-2}
train: {steps: 3, prompts_per_step: 8, group_size: 4, minibatch_size: 32, microbatch_size: 4, checkpoint_every: 1}
eval: {instances: 8, samples: 1}
"""

LAUNCHER = pathlib.Path(sys.executable).parent / "accelerate"
needs_launcher = pytest.mark.skipif(not LAUNCHER.exists(), reason="accelerate launcher not installed")


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_CPU")}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _launch(args: list[str], port: int) -> None:
    _run([str(LAUNCHER), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
          "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
          "-m", "worldsmith.cli", *args])


def _rows(run: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(run: pathlib.Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "policy" / "model.safetensors"))


@needs_launcher
def test_two_processes_resumed_equal_one_process_of_the_same_global_batch(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "worldsmith.cli", "train", str(cfg), "--out", str(one)])
    _launch(["train", str(cfg), "train.steps=2", "--out", str(two)], port=29611)
    assert [r["step"] for r in _rows(two)] == [0, 1]  # one writer
    _launch(["train", str(cfg), "--out", str(two), "--resume"], port=29612)

    assert json.loads((two / "summary.json").read_text())["resumed_from"] == 2
    a, b = _rows(one), _rows(two)
    assert [r["step"] for r in b] == [0, 1, 2]
    assert any(r["grad_norm"] > 0 for r in a)  # something was learned, so the comparison means something
    for ra, rb in zip(a, b):
        # the completions are the same rows: every count over the global batch agrees exactly
        for key in ("reward/mean", "accuracy/train", "completion_tokens/mean", "completion/finished_fraction",
                    "groups/zero_variance_fraction", "loss/n_tokens"):
            assert rb[key] == ra[key], (ra["step"], key, ra[key], rb[key])
        for key in ("entropy", "loss/loss", "loss/pg_loss", "grad_norm"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-7), (ra["step"], key)
    wa, wb = _weights(one), _weights(two)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], rtol=1e-4, atol=1e-6)
    init = load_file(str(one / "policy_init" / "model.safetensors"))
    assert any(not torch.equal(init[name], wa[name]) for name in wa)  # RL changed the weights


def test_a_cpu_launch_that_lost_its_processes_is_refused(tmp_path):
    # what `accelerate launch --cpu --num_processes 2` (no mpirun) leaves: one process, no world size
    assert "starts only one" in lost_processes({"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1"})
    assert lost_processes({"ACCELERATE_USE_CPU": "True"}) is None  # one process asked for
    assert lost_processes({"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "WORLD_SIZE": "2"}) is None
    assert lost_processes({"MASTER_ADDR": "127.0.0.1", "PMI_SIZE": "2", "ACCELERATE_USE_CPU": "1"}) is None


@needs_launcher
def test_the_cpu_launch_says_what_works_instead_of_training_alone(tmp_path):
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "WORLD_SIZE")}
    out = subprocess.run([str(LAUNCHER), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "worldsmith.cli", "train",
                          str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--multi_gpu" in errors[0] and "torchrun" in errors[0]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
