"""Experiment trackers: each metrics row of a run, forwarded to TensorBoard, W&B, Trackio or MLflow.

``metrics.jsonl`` stays the run's record; trackers are copies for the dashboards people already
watch. A run config names them in ``report_to`` (``[tensorboard, mlflow]``); ``attach`` hands
them to the run folder, whose ``RunDir.log`` forwards every row it writes and whose
``write_summary`` closes them with the held-out figures. Each tracker talks to its library through
that library's own API, imported when the tracker starts, so a run that tracks nothing imports none
of them::

    run = RunDir("runs/a")
    attach(run, cfg)                 # cfg.report_to = ["tensorboard"]
    run.log({"step": 0, "reward/mean": 0.5})   # metrics.jsonl, then runs/a/tensorboard/
    run.write_summary(summary)       # summary.json; trackers get summary/after/* and finish

A tracker starts on the first row it receives, so only the process that writes ``metrics.jsonl``
(the main process of a multi-process run) ever starts one. Where each wrote is recorded in the run
folder's ``tracking.json``. A tracker that fails while a run is under way is reported in one
warning line and dropped; the run and its ``metrics.jsonl`` go on.

Where each writes (beside ``metrics.jsonl`` unless the user's environment says otherwise):

=============  ======================================================================================
tensorboard    ``RUN/tensorboard/`` event files (``torch.utils.tensorboard.SummaryWriter``)
wandb          ``RUN/wandb/``; offline unless ``WANDB_MODE`` says otherwise or ``WANDB_API_KEY`` is
               set (``wandb sync RUN/wandb/offline-run-*`` uploads an offline run later)
mlflow         the file store ``RUN/mlruns`` unless ``MLFLOW_TRACKING_URI`` is set (MLflow 3 keeps
               file stores in maintenance mode: ``MLFLOW_ALLOW_FILE_STORE`` is set for them)
trackio        trackio's own local database (``TRACKIO_DIR``, default ``~/.cache/huggingface/trackio``),
               where ``trackio show`` finds it; ``TRACKIO_SPACE_ID`` sends it to a Space instead
=============  ======================================================================================
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import pathlib
import sys
import time
from typing import Any

from pydantic import Field

from worldsmith.configuration import ConfigError, Strict
from worldsmith.registry import Registry

log = logging.getLogger(__name__)

#: name -> Tracker class. Built-ins are defined below; a plug-in registers its own with ``register_tracker``.
TRACKERS: Registry = Registry("tracker")

#: The file in a run folder saying where each tracker wrote.
TRACKING_FILE = "tracking.json"


class TrackerUnavailable(ConfigError):
    """A tracker whose package is not installed; the message is one line naming it."""


class TrackingSection(Strict):
    """How a run appears in the trackers ``report_to`` names."""

    project: str = Field("worldsmith", min_length=1, description=(
        "Project (W&B, Trackio) or experiment (MLflow) the run is filed under."))
    run_name: str | None = Field(None, description="The run's name in the trackers (None: the run folder's name).")
    group: str | None = Field(None, description=(
        "Group of related runs (W&B, Trackio; an MLflow tag). compare files each run under its folder's name."))


def register_tracker(name: str):
    """Decorator registering a ``Tracker`` subclass under ``name`` (a ``report_to`` entry)."""
    def add(cls):
        cls.name = name
        TRACKERS.add(name, cls)
        return cls

    return add


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None: import blocked
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_available(names: list[str]) -> None:
    """Raise ``TrackerUnavailable`` (one line) for the first of ``names`` whose package is missing,
    and ``KeyError`` (one line) for a name no tracker is registered under."""
    for name in names:
        cls = TRACKERS.get(name)
        if not installed(cls.module):
            raise TrackerUnavailable(f"report_to: {name} needs the {cls.package} package: "
                                     f"pip install {cls.package}")


class Tracker:
    """One experiment tracker of one run. Subclasses set ``module`` (imported lazily) and
    ``package`` (what to pip install), and implement ``start``, ``log`` and ``finish``."""

    name = ""
    module = ""
    package = ""

    def start(self, root: pathlib.Path, run_name: str, project: str, group: str | None, config: dict) -> dict:
        """Open the tracker's run; returns where it writes (recorded in ``tracking.json``)."""
        raise NotImplementedError

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record finite scalar ``metrics`` at training ``step``."""
        raise NotImplementedError

    def finish(self, summary: dict[str, float]) -> None:
        """Record the run's final figures (possibly none) and close."""
        raise NotImplementedError


def scalars(row: dict) -> dict[str, float]:
    """The finite numbers of a metrics row, as floats (``step``, None, text and NaN left out)."""
    out = {}
    for key, value in row.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def summary_scalars(summary: dict) -> dict[str, float]:
    """The held-out figures of a run summary as ``summary/before/<metric>`` and
    ``summary/after/<metric>`` (train, synth and compare summaries all have ``after``)."""
    out = {}
    for side in ("before", "after"):
        section = summary.get(side)
        if isinstance(section, dict):
            out.update({f"summary/{side}/{k}": v for k, v in scalars(section).items()})
    return out


# --- the built-in trackers ---------------------------------------------------------------------------


@register_tracker("tensorboard")
class TensorBoardTracker(Tracker):
    """Scalars in ``RUN/tensorboard``; the resolved config as a text summary."""

    module, package = "tensorboard", "tensorboard"

    def start(self, root, run_name, project, group, config):
        from torch.utils.tensorboard import SummaryWriter

        logdir = root / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(logdir))
        self.step = 0
        import yaml

        self.writer.add_text("config", "```\n" + yaml.safe_dump(config, sort_keys=False) + "```", 0)
        return {"logdir": str(logdir)}

    def log(self, metrics, step):
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.step = step
        self.writer.flush()

    def finish(self, summary):
        for key, value in summary.items():
            self.writer.add_scalar(key, value, self.step)
        self.writer.close()


@register_tracker("wandb")
class WandbTracker(Tracker):
    """A W&B run in ``RUN/wandb``; offline unless the environment asks for online (see above)."""

    module, package = "wandb", "wandb"

    def start(self, root, run_name, project, group, config):
        import wandb

        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self.run = wandb.init(project=project, name=run_name, group=group, config=config, dir=str(root),
                              mode=mode, reinit="create_new")
        return {"dir": str(pathlib.Path(self.run.dir).parent), "mode": mode, "id": self.run.id}

    def log(self, metrics, step):
        self.run.log(metrics, step=step)

    def finish(self, summary):
        self.run.summary.update(summary)
        self.run.finish()


@register_tracker("mlflow")
class MLflowTracker(Tracker):
    """An MLflow run (experiment = project) through ``MlflowClient``: config as params, rows as metrics."""

    module, package = "mlflow", "mlflow"
    #: characters MLflow allows in metric and param names
    _ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. /")

    def start(self, root, run_name, project, group, config):
        from mlflow.tracking import MlflowClient

        from worldsmith.configuration import flatten

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # a file store beside metrics.jsonl; MLflow 3 asks file-store users to say so
            uri = (root / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(project)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(project)
        tags = {"mlflow.runName": run_name, **({"group": group} if group else {})}
        self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        from mlflow.entities import Param

        params = [Param(self._key(k)[:250], json.dumps(v) if not isinstance(v, str) else v)
                  for k, v in flatten(config).items()]
        for s in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=[Param(p.key, p.value[:6000]) for p in params[s : s + 100]])
        self.step = 0
        return {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": self.run_id}

    def _key(self, key: str) -> str:
        return "".join(c if c in self._ALLOWED else "_" for c in key)

    def _metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(self._key(k), v, now, step) for k, v in metrics.items()]
        for s in range(0, len(batch), 1000):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=batch[s : s + 1000])

    def log(self, metrics, step):
        self._metrics(metrics, step)
        self.step = step

    def finish(self, summary):
        self._metrics(summary, self.step)
        self.client.set_terminated(self.run_id)


@register_tracker("trackio")
class TrackioTracker(Tracker):
    """A Trackio run in trackio's local database (or the Space ``TRACKIO_SPACE_ID`` names)."""

    module, package = "trackio", "trackio"

    def start(self, root, run_name, project, group, config):
        import trackio
        from trackio.utils import TRACKIO_DIR

        self.run = trackio.init(project=project, name=run_name, group=group, config=config,
                                resume="never", embed=False)
        return {"dir": str(TRACKIO_DIR), "project": project, "run": self.run.name}

    def log(self, metrics, step):
        self.run.log(metrics, step=step)

    def finish(self, summary):
        if summary:
            self.run.log(summary)
        self.run.finish()


# --- a run's trackers ------------------------------------------------------------------------------


class RunTrackers:
    """The trackers of one run folder: started on the first row, dropped (one warning) when they
    fail, finished by the run summary. ``RunDir.log`` and ``RunDir.write_summary`` call it."""

    def __init__(self, root: pathlib.Path, names: list[str], config: dict, project: str,
                 run_name: str | None = None, group: str | None = None) -> None:
        self.root = pathlib.Path(root)
        self.names = list(names)
        self.config = config
        self.project = project
        self.run_name = run_name or self.root.resolve().name
        self.group = group
        self.active: dict[str, Tracker] | None = None  # None until the first row

    def _start(self) -> None:
        self.active, where = {}, {}
        for name in self.names:
            tracker = TRACKERS.get(name)()
            try:
                where[name] = tracker.start(self.root, self.run_name, self.project, self.group, self.config)
            except Exception as exc:  # noqa: BLE001 - a tracker never stops a run
                self._warn(name, "could not start", exc)
                continue
            self.active[name] = tracker
        if where:
            from worldsmith.runs import atomic_write_json

            atomic_write_json(self.root / TRACKING_FILE, where)

    def _warn(self, name: str, what: str, exc: Exception) -> None:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("report_to: %s %s (%s: %s); metrics.jsonl still has every row", name, what,
                    type(exc).__name__, first)
        print(f"warning: report_to: {name} {what}: {first}; metrics.jsonl still has every row", file=sys.stderr)

    def _each(self, what: str, call) -> None:
        for name, tracker in list((self.active or {}).items()):
            try:
                call(tracker)
            except Exception as exc:  # noqa: BLE001 - a tracker never stops a run
                self._warn(name, f"failed to {what}", exc)
                self.active.pop(name, None)

    def log(self, row: dict) -> None:
        """Forward one metrics row (its ``step`` is the x axis)."""
        if self.active is None:
            self._start()
        values, step = scalars(row), int(row.get("step", 0))
        if values:
            self._each("log", lambda t: t.log(values, step))

    def finish(self, summary: dict | None = None) -> None:
        """Close every tracker that started, with the summary's held-out figures."""
        if self.active is None:
            return
        values = summary_scalars(summary or {})
        self._each("finish", lambda t: t.finish(values))
        self.active = {}


def attach(run, cfg, group: str | None = None) -> RunTrackers | None:
    """Give ``run`` (a ``RunDir``) the trackers ``cfg.report_to`` names; None when it names none.

    Raises ``TrackerUnavailable`` (one line naming the package) when one is not installed, so the
    run stops before any work rather than after it."""
    names = list(getattr(cfg, "report_to", None) or [])
    if not names:
        run.trackers = None
        return None
    check_available(names)
    t = cfg.tracking
    trackers = RunTrackers(run.root, names, cfg.model_dump(mode="json"), project=t.project,
                           run_name=t.run_name, group=group or t.group)
    run.trackers = trackers
    return trackers


def where(root: str | os.PathLike) -> dict[str, Any]:
    """What ``tracking.json`` in the run folder ``root`` says (empty when the run tracked nothing)."""
    path = pathlib.Path(root) / TRACKING_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
