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
        (("envs", "check", "arithmetic_chain", "--seeds", "0"), "--seeds: must be a positive integer"),
        (("audit", "game", "compliance", "--secure", "--both", "--out", "x"), "not allowed with argument --secure"),
        (("audit", "game", "compliance", "--steps", "1", "--out", "x", "train.steps=2"),
         "train.steps is set by --steps"),
        (("audit", "game", "compliance", "--seed", "1", "--out", "x", "train.seed=2"), "set by --seed"),
        (("audit", "game", "compliance", "--out", __file__), "is a file, not a folder"),
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


# --- commands that run untrusted code: no isolation, no run, unless the user opts in ---------------------

CANDIDATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "src", "worldsmith", "synth", "corpus", "base_conversion.py")
CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "synth_corpus.yaml")


def run_without_bwrap(*args):
    """The command on a machine where bwrap cannot run: PATH without it, no opt-in in the environment."""
    from isolation import path_without_bwrap

    from worldsmith.sandbox import UNSAFE_ENV

    env = {k: v for k, v in os.environ.items() if k != UNSAFE_ENV}
    env.update(PATH=path_without_bwrap(), PYTHONWARNINGS="ignore")
    return subprocess.run([*BIN, *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("args, prefix", [
    (("validate", CANDIDATE), "validate"),
    (("synth", "funnel", "--out", "{tmp}/funnel", "--limit", "1"), "synth funnel"),
    (("synth", CONFIG, "--out", "{tmp}/run"), "synth"),
    (("audit", "env", CANDIDATE), f"audit env {CANDIDATE}"),
])
def test_commands_refuse_untrusted_code_without_isolation(tmp_path, args, prefix):
    from worldsmith.sandbox import NO_ISOLATION

    out = run_without_bwrap(*[a.format(tmp=tmp_path) for a in args])
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == f"error: {prefix}: {NO_ISOLATION}"
    assert "Traceback" not in out.stderr and "--unsafe-no-isolation" in out.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_the_opt_in_flag_runs_in_fallback_mode_with_its_warning():
    out = run_without_bwrap("validate", CANDIDATE, "--unsafe-no-isolation", "--json")
    assert out.returncode == 0, out.stderr
    assert "sandbox fallback mode: accident protection, not a security boundary" in out.stderr
    verdict = json.loads(out.stdout)
    assert verdict["admitted"] is True and verdict["isolation"] == "fallback"


def test_commands_that_run_untrusted_code_list_the_opt_in_flag():
    for args in (("validate", "-h"), ("synth", "funnel", "-h"), ("audit", "env", "-h")):
        assert "--unsafe-no-isolation" in run(*args).stdout, args
    assert "--unsafe-no-isolation" in run("synth", "--help").stdout
