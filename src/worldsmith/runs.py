"""Run folders: resolved config, metrics.jsonl, summary.json, atomic checkpoints.

Nothing here is lost on a crash: metric lines are flushed as they are written, and every other file
is written to a temporary name in the same folder and renamed into place. A checkpoint that cannot
be read back (empty, truncated, not a torch checkpoint) is set aside, and resume falls back to the
newest intact one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import re
import secrets
import zipfile
import zlib
from typing import Any

log = logging.getLogger(__name__)

#: Where ``checkpoints/`` keeps what cannot be resumed from: damaged checkpoints and stray files.
SET_ASIDE = "set_aside"


def _create_temporary(path: pathlib.Path) -> tuple[int, pathlib.Path]:
    """A new hidden file beside ``path``, with the mode ``open()`` would give it (0666 less the umask)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_bytes(path: pathlib.Path, data: bytes) -> None:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
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
        self.trackers = None  # experiment trackers fed each row and closed by the summary (worldsmith.tracking)

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
        if self.trackers is not None:
            self.trackers.log(row)

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
        if self.trackers is not None:
            self.trackers.finish(summary)

    def latest_checkpoint(self) -> pathlib.Path | None:
        """The newest intact ``step_N.pt``, or None. Newer ones that cannot be read back, and
        stray files named ``step_*.pt``, are moved to ``checkpoints/set_aside/`` and named in one
        warning line, so that resume falls back to the newest intact checkpoint."""
        if not self.checkpoint_dir.exists():
            return None
        steps, unusable = [], []
        for path in self.checkpoint_dir.glob("step_*.pt"):
            step = checkpoint_step(path)
            if step is None:
                unusable.append((path, "not named step_N.pt"))
            else:
                steps.append((step, path))
        latest = None
        for _, path in sorted(steps, reverse=True):
            problem = checkpoint_problem(path)
            if problem is None:
                latest = path
                break
            unusable.append((path, problem))
        if unusable:
            self._set_aside(unusable, latest)
        return latest

    def _set_aside(self, unusable: list[tuple[pathlib.Path, str]], latest: pathlib.Path | None) -> None:
        folder = self.checkpoint_dir / SET_ASIDE
        folder.mkdir(exist_ok=True)
        moved = []
        for path, problem in unusable:
            target = folder / path.name
            n = 0
            while target.exists():
                n += 1
                target = folder / f"{path.name}.{n}"
            try:
                os.replace(path, target)
            except FileNotFoundError:  # another process of this run set it aside first
                continue
            moved.append(f"{path.name} ({problem})")
        if moved:
            then = f"resuming from {latest.name}" if latest is not None else "no intact checkpoint is left"
            log.warning("checkpoints: skipped %s, moved to %s; %s", ", ".join(moved), folder, then)


def checkpoint_step(path: pathlib.Path) -> int | None:
    """N of a file named ``step_N.pt``, else None."""
    match = re.fullmatch(r"step_(\d+)\.pt", path.name)
    return int(match.group(1)) if match else None


def checkpoint_problem(path: pathlib.Path) -> str | None:
    """Why ``path`` is not a checkpoint ``torch.save`` wrote whole, or None when it is: a zip archive
    with a ``data.pkl`` whose every member passes its CRC check. Nothing is unpickled."""
    try:
        if path.stat().st_size == 0:
            return "empty"
        with zipfile.ZipFile(path) as archive:
            if not any(name.rsplit("/", 1)[-1] == "data.pkl" for name in archive.namelist()):
                return "not a torch checkpoint"
            bad = archive.testzip()
    except zipfile.BadZipFile:
        return "truncated, or not a torch checkpoint"
    except (OSError, EOFError, ValueError, NotImplementedError, zlib.error) as exc:
        return f"unreadable: {exc}"
    return None if bad is None else f"{bad} fails its CRC check"
