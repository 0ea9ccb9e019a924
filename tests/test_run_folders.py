"""A run folder holds one run: a new run never starts among another run's files, and a resumed run
never continues with a model other than the one its folder was built with."""

import pathlib
import subprocess
import sys

import pytest

from worldsmith.configuration import load
from worldsmith.recipes import RUN_ARTEFACTS, open_run
from worldsmith.rl.config import RunConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]


def config(*overrides: str) -> RunConfig:
    return load(RunConfig, ROOT / "configs" / "grpo_arithmetic.yaml", list(overrides))


@pytest.mark.parametrize("left", ["policy_init", "config.yaml", "sft.json", "checkpoints", "metrics.jsonl"])
def test_a_new_run_refuses_a_folder_another_run_has_started_in(tmp_path, left):
    (tmp_path / left).mkdir() if "." not in left else (tmp_path / left).write_text("")
    with pytest.raises(FileExistsError, match=rf"already holds a run \({left}\); pass --resume"):
        open_run(config(), tmp_path, resume=False)


def test_an_empty_or_unrelated_folder_is_fine(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    run = open_run(config(), tmp_path, resume=False)
    assert (run.root / "config.yaml").is_file() and "notes.txt" not in RUN_ARTEFACTS


def test_resume_refuses_another_model_and_accepts_its_own(tmp_path):
    open_run(config("model.tiny.hidden_size=128"), tmp_path, resume=False)
    with pytest.raises(FileExistsError, match=r"built with model.tiny.hidden_size = 128, not 64"):
        open_run(config(), tmp_path, resume=True)
    open_run(config("model.tiny.hidden_size=128", "train.steps=9"), tmp_path, resume=True)  # same model


def test_the_cli_says_so_in_one_line(tmp_path):
    (tmp_path / "policy_init").mkdir()
    out = subprocess.run([sys.executable, "-m", "worldsmith.cli", "train", "configs/grpo_arithmetic.yaml",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "already holds a run (policy_init)" in out.stderr
