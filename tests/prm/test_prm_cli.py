"""`worldsmith prm train|eval` as a user meets it: real subprocesses, exit codes, one-line errors."""

import json
import os
import subprocess
import sys

import pytest

BIN = [sys.executable, "-m", "worldsmith.cli", "prm"]


def run(*args):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*BIN, *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("args, fragment", [
    (("eval", "oracle", "--env", "subset_sum"), "has no step checker"),
    (("eval", "oracle", "--env", "nope"), "unknown environment"),
    (("eval", "oracle", "--env", "arithmetic_chain@2"), "difficulty"),
    (("eval", "/nonexistent", "--env", "arithmetic_chain"), "holds no trained PRM"),
    (("train", "--env", "arithmetic_chain"), "--out"),
    (("eval", "likelihood:/nonexistent", "--env", "arithmetic_chain"), "/nonexistent"),
    (("train", "--env", "decision_chain", "--out", "/tmp/never", "--pool", "likelihood"), "give --init"),
])
def test_bad_input_is_a_one_line_error(args, fragment):
    out = run(*args)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and fragment in out.stderr, out.stderr


def test_eval_scores_the_exact_oracle_perfectly_on_held_out_problems():
    out = run("eval", "oracle", "--env", "grid_paths@0.2", "--env", "decision_chain", "--traces", "40", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["rows"]
    assert [r["env"] for r in rows] == ["grid_paths", "decision_chain"]
    assert all(r["f1"] == 1.0 and r["erroneous"] + r["correct"] == 40 for r in rows)


@pytest.mark.slow
def test_train_writes_a_prm_that_eval_loads(tmp_path):
    out = run("train", "--env", "decision_chain", "--traces", "30", "--epochs", "1", "--eval-traces", "20",
              "--out", str(tmp_path / "prm"), "--threads", "1")
    assert out.returncode == 0, out.stderr
    assert "epoch 1/1" in out.stderr and "saved:" in out.stdout
    saved = json.loads((tmp_path / "prm" / "eval.json").read_text())
    assert saved["rows"][0]["env"] == "decision_chain" and saved["rows"][0]["seen"] is True
    again = run("eval", str(tmp_path / "prm"), "--env", "decision_chain", "--env", "topo_order", "--traces", "10")
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert "decision_chain@0" in lines[1] and " yes " in lines[1] and " no " in lines[2]
    refused = run("train", "--env", "decision_chain", "--out", str(tmp_path / "prm"))
    assert refused.returncode == 2 and "not empty" in refused.stderr
