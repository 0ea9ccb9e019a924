"""Experiment tracking (``report_to``): every tracker writes real files that its own library reads
back with the values of metrics.jsonl; a missing package or unknown name is a one-line error; a
tracker that breaks never stops the run."""

import contextlib
import io
import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from worldsmith import cli, tracking
from worldsmith.configuration import ConfigError, build
from worldsmith.rl.config import RunConfig
from worldsmith.runs import RunDir

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"

#: three metric rows as the trainer writes them: values to track, and ones no tracker can take
ROWS = [{"step": s, "reward/mean": 0.25 * s, "accuracy/train": 1.0 - 0.25 * s, "pass@4": 0.5,
         "completion/finished_fraction": None, "note": "text", "bad": float("nan")} for s in range(3)]
SUMMARY = {"before": {"accuracy_greedy": 0.125, "problems": 64}, "after": {"accuracy_greedy": 0.375, "problems": 64}}


def tracked_run(root: pathlib.Path, name: str) -> RunDir:
    """A run folder that logs ROWS and SUMMARY through the ``name`` tracker."""
    run = RunDir(root)
    tracking.attach(run, build(RunConfig, {"report_to": [name], "tracking": {"project": "ws-test"}}))
    for row in ROWS:
        run.log(row)
    run.write_summary(SUMMARY)
    return run


def test_tensorboard_event_files_hold_every_row(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tracked_run(tmp_path, "tensorboard")
    events = EventAccumulator(tracking.where(run.root)["tensorboard"]["logdir"])
    events.Reload()
    series = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert series["reward/mean"] == [(0, 0.0), (1, 0.25), (2, 0.5)]
    assert series["accuracy/train"] == [(0, 1.0), (1, 0.75), (2, 0.5)]
    assert series["summary/after/accuracy_greedy"] == [(2, 0.375)]
    assert series["summary/before/accuracy_greedy"] == [(2, 0.125)]
    assert not {"completion/finished_fraction", "note", "bad", "step"} & set(series)
    assert "config/text_summary" in events.Tags()["tensors"]  # the resolved config, as text


def test_mlflow_file_store_holds_params_metrics_and_a_finished_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # the tracker opts in to the file store itself
    run = tracked_run(tmp_path, "mlflow")
    where = tracking.where(run.root)["mlflow"]
    assert where["tracking_uri"] == (tmp_path / "mlruns").resolve().as_uri()
    client = MlflowClient(tracking_uri=where["tracking_uri"])
    history = client.get_metric_history(where["run_id"], "reward/mean")
    assert [(m.step, m.value) for m in history] == [(0, 0.0), (1, 0.25), (2, 0.5)]
    assert [m.value for m in client.get_metric_history(where["run_id"], "pass_4")] == [0.5] * 3  # '@' is not allowed
    got = client.get_run(where["run_id"])
    assert got.info.status == "FINISHED" and got.info.run_name == tmp_path.name
    assert got.data.params["train.group_size"] == "8" and got.data.params["report_to"] == '["mlflow"]'
    assert got.data.metrics["summary/after/accuracy_greedy"] == 0.375
    assert client.get_experiment(where["experiment_id"]).name == "ws-test"


def test_wandb_offline_run_holds_history_summary_and_config(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tracked_run(tmp_path, "wandb")
    where = tracking.where(run.root)["wandb"]
    folder = pathlib.Path(where["dir"])
    assert where["mode"] == "offline" and folder.parent == tmp_path / "wandb" and folder.name.startswith("offline-run-")
    wandb_cli = pathlib.Path(sys.executable).with_name("wandb")
    records = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(folder)], capture_output=True,
                             text=True, timeout=120)
    assert records.returncode == 0, records.stderr
    history = [json.loads(line) for line in records.stdout.splitlines() if '"type":"history"' in line]
    text = json.dumps(history)
    assert len(history) == 3 and '"reward/mean"' in text and '"note"' not in text
    summary = subprocess.run([str(wandb_cli), "leet", "inspect", "--summary", "--json", str(folder)],
                             capture_output=True, text=True, timeout=120)
    state = json.loads(summary.stdout)
    flat = json.dumps(state)
    assert '"summary/after/accuracy_greedy"' in flat and "0.375" in flat and "ws-test" in flat
    assert "finished" in flat


TRACKIO_SCRIPT = """
import json, sys
from worldsmith import tracking
from worldsmith.runs import RunDir
run = RunDir(sys.argv[1])
run.trackers = tracking.RunTrackers(run.root, ["trackio"], {"train": {"seed": 3}}, project="ws-test")
for s in range(3):
    run.log({"step": s, "reward/mean": 0.25 * s, "note": "text"})
run.write_summary({"after": {"accuracy_greedy": 0.375}})
from trackio.sqlite_storage import SQLiteStorage
print("RESULT " + json.dumps({"runs": SQLiteStorage.get_runs("ws-test"), "logs": SQLiteStorage.get_logs("ws-test", run.root.name)},
                 default=str), flush=True)
"""


def test_trackio_local_database_holds_every_row(tmp_path):
    """In a fresh process: trackio reads TRACKIO_DIR once, when it is imported."""
    pytest.importorskip("trackio")
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "PYTHONPATH": str(SRC)}
    env.pop("TRACKIO_SPACE_ID", None)
    env.pop("TRACKIO_SERVER_URL", None)
    out = subprocess.run([sys.executable, "-c", TRACKIO_SCRIPT, str(tmp_path / "run")], capture_output=True,
                         text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr
    got = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert got["runs"] == ["run"]
    steps = {log["step"]: log for log in got["logs"] if "reward/mean" in log}
    assert {s: steps[s]["reward/mean"] for s in steps} == {0: 0.0, 1: 0.25, 2: 0.5}
    assert any(log.get("summary/after/accuracy_greedy") == 0.375 for log in got["logs"])
    assert not any("note" in log for log in got["logs"])
    assert (tmp_path / "trackio" / "ws-test.db").is_file()
    assert json.loads((tmp_path / "run" / "tracking.json").read_text())["trackio"]["dir"] == str(tmp_path / "trackio")


# --- refusals and failures -------------------------------------------------------------------------


def test_a_missing_package_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: `import wandb` fails
    with pytest.raises(ConfigError, match=r"^report_to: wandb needs the wandb package: pip install wandb$"):
        build(RunConfig, {"report_to": ["wandb"]})


@pytest.mark.parametrize("value, fragment", [
    ("[tensorbored]", "report_to: unknown tracker 'tensorbored'; valid: mlflow, tensorboard, trackio, wandb"),
    ("[tensorboard,tensorboard]", "report_to: 'tensorboard' is named twice"),
])
def test_the_cli_refuses_bad_trackers_in_one_line(tmp_path, value, fragment):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"train": {"steps": 1}}))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["train", str(config), f"report_to={value}", "--out", str(tmp_path / "out")])
    assert code == 2 and err.getvalue() == f"error: config: {fragment}\n"
    assert not (tmp_path / "out").exists()


class BrokenTracker(tracking.Tracker):
    """A test double: a tracker whose service fails on the second row."""

    module = package = "json"
    calls: list = []

    def start(self, root, run_name, project, group, config):
        return {"name": run_name}

    def log(self, metrics, step):
        self.calls.append(step)
        if step == 1:
            raise ConnectionError("service unreachable\nsecond line")

    def finish(self, summary):
        self.calls.append("finish")


@pytest.fixture
def broken_tracker():
    tracking.register_tracker("broken_test_double")(BrokenTracker)
    BrokenTracker.calls = []
    yield
    tracking.TRACKERS.remove("broken_test_double")


def test_a_failing_tracker_is_dropped_with_one_warning_and_the_run_goes_on(tmp_path, broken_tracker, capsys):
    run = RunDir(tmp_path)
    run.trackers = tracking.RunTrackers(tmp_path, ["broken_test_double"], {}, project="p")
    for row in ROWS:
        run.log(row)
    run.write_summary(SUMMARY)
    assert BrokenTracker.calls == [0, 1]  # not called again after it failed, not finished
    assert [r["step"] for r in run.read_metrics()] == [0, 1, 2]
    err = capsys.readouterr().err
    assert err == ("warning: report_to: broken_test_double failed to log: service unreachable; "
                   "metrics.jsonl still has every row\n")


def test_trackers_start_only_with_the_first_row(tmp_path, broken_tracker):
    """Only the process that writes metrics.jsonl (the main one) ever starts a tracker."""
    run = RunDir(tmp_path)
    run.trackers = tracking.RunTrackers(tmp_path, ["broken_test_double"], {}, project="p")
    run.write_summary(SUMMARY)
    assert BrokenTracker.calls == [] and not (tmp_path / tracking.TRACKING_FILE).exists()
    run.log(ROWS[0])
    assert json.loads((tmp_path / tracking.TRACKING_FILE).read_text()) == {"broken_test_double": {"name": tmp_path.name}}


def test_a_run_without_report_to_gets_no_trackers(tmp_path):
    run = RunDir(tmp_path)
    assert tracking.attach(run, build(RunConfig, {})) is None and run.trackers is None


# --- a real training run ------------------------------------------------------------------------


TINY = {
    "threads": 1,
    "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
    "pool": [{"name": "arithmetic_chain", "difficulty": 0.0}],
    "sampling": {"max_new_tokens": 8, "temperature": 1.0},
    "train": {"steps": 3, "prompts_per_step": 2, "group_size": 4, "minibatch_size": 8, "microbatch_size": 8,
              "checkpoint_every": 0},
    "eval": {"instances": 8, "samples": 2},
    "report_to": ["tensorboard"],
}


def test_a_train_run_sends_every_metrics_row_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from worldsmith.recipes import train_run

    summary = train_run(build(RunConfig, TINY), tmp_path / "run", progress=False, evaluate_before=True)
    rows = RunDir(tmp_path / "run").read_metrics()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    for key in ("reward/mean", "entropy", "loss/pg_loss", "lr"):
        logged = [(e.step, e.value) for e in events.Scalars(key)]
        assert logged == [(r["step"], pytest.approx(r[key], rel=1e-6, abs=1e-12)) for r in rows], key
    final = events.Scalars("summary/after/accuracy_sampled")
    assert [e.value for e in final] == [pytest.approx(summary["after"]["accuracy_sampled"])]


# --- two processes -----------------------------------------------------------------------------------

MULTIPROCESS_CONFIG = {**TINY, "sft": {"examples": 64, "epochs": 1, "batch_size": 16},
                       "train": {**TINY["train"], "prompts_per_step": 4}}


@pytest.mark.slow
def test_only_the_main_process_of_a_two_process_run_logs(tmp_path):
    """`accelerate launch` with 2 CPU processes: one tracker run, every step in it once."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    launcher = pathlib.Path(sys.executable).parent / "accelerate"
    if not launcher.exists():
        pytest.skip("accelerate launcher not installed")
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(MULTIPROCESS_CONFIG))
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_CPU")}
    env["PYTHONPATH"] = str(SRC)
    out = subprocess.run([str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--main_process_port", "29517", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "-m", "worldsmith.cli", "train", str(config), "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    rows = RunDir(tmp_path / "run").read_metrics()
    assert [e.step for e in events.Scalars("reward/mean")] == [r["step"] for r in rows] == [0, 1, 2]
    assert [e.value for e in events.Scalars("reward/mean")] == [pytest.approx(r["reward/mean"]) for r in rows]
