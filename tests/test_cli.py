"""The command line as a user meets it: real subprocesses, exit codes, one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from worldsmith import envs

BIN = [sys.executable, "-m", "worldsmith.cli"]


def run(*args):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*BIN, *args], capture_output=True, text=True, timeout=120, env=env)


def test_envs_list_shows_every_seed_environment():
    out = run("envs", "list")
    assert out.returncode == 0, out.stderr
    for name in envs.names():
        assert name in out.stdout
    listed = json.loads(run("envs", "list", "--json").stdout)
    assert {row["name"] for row in listed} == set(envs.names())
    assert {row["oracle"] for row in listed} <= {"equality", "feasibility"}


@pytest.mark.parametrize("name", envs.names())
def test_envs_show_each_environment(name):
    out = run("envs", "show", name, "--seed", "3", "--difficulty", "0.5", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    inst = envs.get(name).sample(3, 0.5)
    assert shown["prompt"] == inst.prompt and shown["reference"] == inst.reference
    assert shown["reference_grade"] == 1.0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("envs", "show", "no_such_env"), "unknown environment"),
        (("envs", "show", "arithmetic_chain", "--difficulty", "1.5"), "[0, 1]"),
        (("envs", "show", "arithmetic_chain", "--difficulty", "hard"), "[0, 1]"),
        (("envs", "show", "arithmetic_chain", "--seed", "x"), "--seed"),
        (("envs", "check", "nope"), "unknown environment"),
        (("envs",), "required"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_2(args, fragment):
    out = run(*args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert fragment in out.stderr
    assert "Traceback" not in out.stderr


def test_envs_check_passes_a_seed_environment():
    out = run("envs", "check", "arithmetic_chain", "--seeds", "5", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["passed"] and all(c["passed"] for c in report["checks"])
