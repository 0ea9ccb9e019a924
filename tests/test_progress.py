"""Progress: a live bar on a terminal, a few plain lines (no carriage returns) anywhere else."""

import io
import pathlib
import subprocess
import sys

from worldsmith.progress import PLAIN_LINES, PlainProgress, progress_bar

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_tenth_and_no_redraws():
    log = io.StringIO()
    with progress_bar(total=300, desc="train", file=log) as bar:
        assert isinstance(bar, PlainProgress)
        for step in range(300):
            bar.update(1)
            bar.set_postfix({"reward": 0.25, "step": step})
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == PLAIN_LINES
    assert [line.split()[1] for line in lines] == [f"{30 * k}/300" for k in range(1, 11)]
    assert lines[-1].startswith("train 300/300 (100%)") and lines[-1].endswith("reward=0.25 step=299")


def test_a_resumed_bar_counts_from_where_it_starts_and_close_writes_the_last_state():
    log = io.StringIO()
    bar = progress_bar(total=100, initial=95, desc="train", file=log)
    bar.update(2)  # 97: no tenth crossed since 95
    assert log.getvalue() == ""
    bar.close()
    bar.close()
    assert log.getvalue().splitlines() == [log.getvalue().splitlines()[0]]
    assert log.getvalue().startswith("train 97/100 (97%)")


def test_iterating_without_a_total_writes_only_the_end():
    log = io.StringIO()
    seen = list(progress_bar(iter(range(7)), desc="eval", file=log))
    assert seen == list(range(7))
    assert log.getvalue().splitlines()[0].startswith("eval 7 ")
    assert len(log.getvalue().splitlines()) == 1


def test_disabled_bars_write_nothing_and_terminals_get_tqdm():
    log = io.StringIO()
    with progress_bar(total=10, desc="x", file=log, disable=True) as bar:
        bar.update(10)
    assert log.getvalue() == ""
    from tqdm import tqdm

    bar = progress_bar(total=10, desc="x", file=Terminal())
    assert isinstance(bar, tqdm)
    bar.close()


def test_a_training_run_logged_to_a_file_has_plain_progress_lines(tmp_path):
    err = tmp_path / "stderr.log"
    with open(err, "w") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "worldsmith.cli", "train", "configs/grpo_arithmetic.yaml", "--out",
             str(tmp_path / "run"), "train.steps=40", "train.prompts_per_step=2", "train.group_size=2",
             "train.minibatch_size=4", "train.microbatch_size=4", "sft.examples=0", "eval.instances=4",
             "eval.samples=1", "sampling.max_new_tokens=4", "train.checkpoint_every=0"],
            stdout=subprocess.DEVNULL, stderr=fh, cwd=ROOT, timeout=300)
    text = err.read_text()
    assert proc.returncode == 0, text[-2000:]
    assert "\r" not in text
    train_lines = [line for line in text.splitlines() if line.startswith("train ")]
    assert len(train_lines) == PLAIN_LINES and train_lines[-1].startswith("train 40/40 (100%)")
