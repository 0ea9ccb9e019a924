"""Run folders: resolved config, metrics.jsonl, summary.json, atomic checkpoints.

Nothing here is lost on a crash: metric lines are flushed as they are written, and every other file
is written to a temporary name in the same folder and renamed into place.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import tempfile
from typing import Any


def atomic_write_bytes(path: pathlib.Path, data: bytes) -> None:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def _plain(value: Any) -> Any:
    """JSON-safe: non-finite floats become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def atomic_write_json(path: pathlib.Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(_plain(obj), indent=2) + "\n").encode())


class RunDir:
    """The folder of one run."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def metrics_path(self) -> pathlib.Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoint_dir(self) -> pathlib.Path:
        return self.root / "checkpoints"

    def log(self, row: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(_plain(row)) + "\n")
            f.flush()

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a crash: everything before it is intact
        return rows

    def truncate_metrics(self, last_step: int) -> None:
        """Drop metric rows after ``last_step`` (used when resuming from an earlier checkpoint)."""
        rows = [r for r in self.read_metrics() if r.get("step", -1) <= last_step]
        atomic_write_bytes(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows).encode())

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.root / "summary.json", summary)

    def latest_checkpoint(self) -> pathlib.Path | None:
        if not self.checkpoint_dir.exists():
            return None
        found = sorted(self.checkpoint_dir.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        return found[-1] if found else None
