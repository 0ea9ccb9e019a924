"""The archive of proposed environment programs: one SQLite file, one row per candidate.

Every candidate the policy proposes is stored with its source, the SHA-256 of that source, the
exemplars it was prompted with, every gate report, the solver-relative calibration (â with its
confidence interval and the difficulty reward), its novelty and its status. Status changes follow
a fixed graph (``TRANSITIONS``) and each one is logged with its reason in ``status_events``.

Once a candidate has been admitted its source is frozen: the scorer must never change after
admission, so any update of an admitted program's source is refused here and, as a second line,
by a trigger inside the database. A program read out to run (``runnable``, ``admitted``) is checked
against its SHA-256 first; a stored source changed behind the archive's back is quarantined, not run.

Concurrency and durability: the database runs in WAL mode with ``synchronous=FULL``; every write is
one ``BEGIN IMMEDIATE`` transaction, retried with jittered exponential backoff while another
process holds the write lock. A writer killed mid-transaction loses only that transaction.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import pathlib
import random
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_PATH = "runs/archive.sqlite"
ENV_VAR = "WORLDSMITH_ARCHIVE"

STATUSES = ("candidate", "admitted", "rejected", "retired", "quarantined")

#: Allowed status changes. Rejected is final; retired is final but for quarantine (a retired
#: program is still evaluated, so one whose stored source no longer matches its hash must be
#: marked); a quarantined program can be cleared back to candidate (and re-checked), rejected, or
#: retired.
TRANSITIONS: dict[str, frozenset[str]] = {
    "candidate": frozenset({"admitted", "rejected", "quarantined"}),
    "admitted": frozenset({"retired", "quarantined"}),
    "quarantined": frozenset({"candidate", "rejected", "retired"}),
    "rejected": frozenset(),
    "retired": frozenset({"quarantined"}),
}

BUSY_TIMEOUT_MS = 5_000
RETRY_DEADLINE_S = 60.0

T = TypeVar("T")


class ArchiveError(Exception):
    """Base class of every archive error."""


class UnknownCandidate(ArchiveError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IllegalTransition(ArchiveError, ValueError):
    pass


class FrozenSource(ArchiveError):
    pass


class InvalidValue(ArchiveError, ValueError):
    pass


class SchemaError(ArchiveError):
    pass


class ArchiveBusy(ArchiveError):
    pass


class DamagedArchive(ArchiveError):
    """The database file, or a row in it, cannot be read back."""


@dataclasses.dataclass(frozen=True)
class GateReport:
    name: str
    passed: bool
    reason: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Candidate:
    id: int
    created: str
    updated: str
    name: str | None
    source: str
    sha256: str
    parents: tuple
    proposer: str
    gates: tuple[GateReport, ...]
    isolation: str | None
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    difficulty_reward: float | None
    novelty: float | None
    status: str
    status_reason: str | None
    admitted_at: str | None

    @property
    def hash8(self) -> str:
        return self.sha256[:8]

    @property
    def intact(self) -> bool:
        """True when the stored source still hashes to the stored sha256."""
        return source_hash(self.source) == self.sha256

    @property
    def frozen(self) -> bool:
        """True once the program has been admitted: its source can no longer change."""
        return self.admitted_at is not None

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["parents"] = list(self.parents)
        out["gates"] = [g.to_json() for g in self.gates]
        return out


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def tampered_reason(cand: Candidate) -> str:
    return (f"stored source does not match its sha256 {cand.hash8} (it hashes to "
            f"{source_hash(cand.source)[:8]})")


def _not_sqlite(path: pathlib.Path) -> str | None:
    """Why the file at ``path`` is no SQLite database, or None when it starts as one."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return "an empty file"
    return None if head == b"SQLite format 3\x00" else "not an SQLite database"


def default_path() -> pathlib.Path:
    return pathlib.Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)


# --- schema -----------------------------------------------------------------------------------

_STATUS_CHECK = ", ".join(f"'{s}'" for s in STATUSES)

_V1 = f"""
CREATE TABLE candidates (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    created           TEXT NOT NULL,
    updated           TEXT NOT NULL,
    name              TEXT,
    source            TEXT NOT NULL,
    sha256            TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
    parents           TEXT NOT NULL DEFAULT '[]',
    proposer          TEXT NOT NULL,
    gates             TEXT NOT NULL DEFAULT '[]',
    isolation         TEXT,
    accuracy          REAL CHECK (accuracy IS NULL OR accuracy BETWEEN 0 AND 1),
    ci_low            REAL,
    ci_high           REAL,
    difficulty_reward REAL,
    novelty           REAL,
    status            TEXT NOT NULL DEFAULT 'candidate' CHECK (status IN ({_STATUS_CHECK})),
    status_reason     TEXT,
    admitted_at       TEXT
);
CREATE INDEX candidates_status ON candidates (status, id);
CREATE TABLE status_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    candidate_id INTEGER NOT NULL REFERENCES candidates (id) ON DELETE CASCADE,
    at           TEXT NOT NULL,
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    reason       TEXT
);
CREATE INDEX status_events_candidate ON status_events (candidate_id, id);
CREATE TRIGGER admitted_source_is_frozen
BEFORE UPDATE OF source, sha256 ON candidates
WHEN OLD.admitted_at IS NOT NULL AND (NEW.source IS NOT OLD.source OR NEW.sha256 IS NOT OLD.sha256)
BEGIN
    SELECT RAISE(ABORT, 'the source of an admitted program is frozen');
END;
"""

#: MIGRATIONS[i] takes a database at user_version i to i + 1.
MIGRATIONS: tuple[str, ...] = (_V1,)
assert len(MIGRATIONS) == SCHEMA_VERSION


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _optional_float(field: str, value: Any, lo: float | None = None, hi: float | None = None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(f"{field}: must be a number or None, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidValue(f"{field}: must be finite, got {value}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidValue(f"{field}: must be in [{lo}, {hi}], got {value}")
    return value


def _gate(report: Any) -> GateReport:
    if isinstance(report, GateReport):
        return report
    get = report.get if isinstance(report, Mapping) else (lambda k, d=None: getattr(report, k, d))
    name, passed = get("name"), get("passed")
    if not isinstance(name, str) or not name:
        raise InvalidValue(f"gate report: name must be a non-empty string, got {name!r}")
    if not isinstance(passed, bool):
        raise InvalidValue(f"gate report {name}: passed must be True or False, got {passed!r}")
    seconds = _optional_float(f"gate report {name}: seconds", get("seconds", 0.0) or 0.0, lo=0.0)
    return GateReport(name=name, passed=passed, reason=str(get("reason", "") or ""), seconds=seconds or 0.0)


def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise InvalidValue(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
    return status


def _row(row: sqlite3.Row) -> Candidate:
    try:
        gates = tuple(GateReport(**g) for g in json.loads(row["gates"]))
        parents = tuple(json.loads(row["parents"]))
    except (ValueError, TypeError) as exc:
        raise DamagedArchive(f"candidate {row['id']}: damaged row ({exc})") from None
    return Candidate(
        id=row["id"], created=row["created"], updated=row["updated"], name=row["name"],
        source=row["source"], sha256=row["sha256"], parents=parents,
        proposer=row["proposer"], gates=gates, isolation=row["isolation"], accuracy=row["accuracy"],
        ci_low=row["ci_low"], ci_high=row["ci_high"], difficulty_reward=row["difficulty_reward"],
        novelty=row["novelty"], status=row["status"], status_reason=row["status_reason"],
        admitted_at=row["admitted_at"],
    )


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def export_filename(candidate: Candidate) -> str:
    stem = _SAFE.sub("_", candidate.name).strip("._") if candidate.name else ""
    return f"{stem or candidate.id}_{candidate.hash8}.py"


# --- the archive ------------------------------------------------------------------------------


class Archive:
    """An open archive. Use as a context manager; one instance per process (and per thread)."""

    def __init__(self, path: str | os.PathLike, *, create: bool = True,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS, retry_deadline_s: float = RETRY_DEADLINE_S) -> None:
        self.path = pathlib.Path(path)
        self._retry_deadline_s = retry_deadline_s
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target, uri = str(self.path), False
        else:
            if not self.path.is_file():
                raise ArchiveError(f"no archive at {self.path}")
            if (why := _not_sqlite(self.path)) is not None:
                raise ArchiveError(f"{self.path} is not a worldsmith archive ({why})")
            target, uri = f"{self.path.resolve().as_uri()}?mode=rw", True
        try:
            self._conn = sqlite3.connect(target, uri=uri, timeout=busy_timeout_ms / 1000,
                                         isolation_level=None)
        except sqlite3.Error as exc:
            raise ArchiveError(f"cannot open {self.path}: {exc}") from None
        self._conn.row_factory = sqlite3.Row
        try:
            self._retry(lambda: self._setup(busy_timeout_ms, create))
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ArchiveError(f"{self.path}: {exc}") from None
        except BaseException:
            self._conn.close()
            raise

    # connection plumbing

    def _setup(self, busy_timeout_ms: int, create: bool) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        self._check_is_archive(create)
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise ArchiveError(f"{self.path}: cannot switch to WAL mode")
        conn.execute("PRAGMA synchronous = FULL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaError(f"{self.path} has schema version {version}; this worldsmith knows up to "
                              f"{SCHEMA_VERSION}")
        if version < SCHEMA_VERSION:
            self._transaction(self._migrate)

    def _check_is_archive(self, create: bool) -> None:
        """Before anything is written: refuse a database some other program made (and, unless
        ``create``, an empty one), so that no schema is ever written into it."""
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0 and not tables and create:
            return
        if version == 0 or "candidates" not in tables:
            what = "an empty database" if not tables else "tables " + ", ".join(sorted(tables)[:5])
            raise ArchiveError(f"{self.path} is not a worldsmith archive ({what})")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the write lock
        for step in range(version, SCHEMA_VERSION):
            for statement in _statements(MIGRATIONS[step]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")

    def _retry(self, fn: Callable[[], T]) -> T:
        deadline = time.monotonic() + self._retry_deadline_s
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise ArchiveBusy(f"{self.path}: still locked after {self._retry_deadline_s:g} s") from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one BEGIN IMMEDIATE transaction, retried while the database is busy."""

        def attempt() -> T:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        return self._retry(attempt)

    def _read(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        try:
            return self._retry(lambda: self._conn.execute(sql, params).fetchall())
        except sqlite3.DatabaseError as exc:
            raise DamagedArchive(f"{self.path} is damaged: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    def snapshot(self, path: str | os.PathLike) -> pathlib.Path:
        """A consistent copy of the whole archive at ``path`` (SQLite's backup API, written to a
        temporary file then renamed): what a checkpoint restores on resume."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        target = sqlite3.connect(tmp)
        try:
            self._conn.backup(target)
        finally:
            target.close()
        os.replace(tmp, path)
        return path

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._read("PRAGMA user_version")[0][0]

    def integrity_check(self) -> str:
        return ", ".join(r[0] for r in self._read("PRAGMA integrity_check"))

    # writes

    def add_or_get(self, source: str, proposer: str, parents: Iterable = (), *, name: str | None = None,
                   ) -> tuple[int, bool]:
        """(id, created): the id of the row holding ``source``, and whether this call created it."""
        if not isinstance(source, str) or not source.strip():
            raise InvalidValue("source: must be a non-empty string")
        if not isinstance(proposer, str) or not proposer:
            raise InvalidValue("proposer: must be a non-empty string")
        parents = list(parents)
        if not all(isinstance(p, (int, str)) and not isinstance(p, bool) for p in parents):
            raise InvalidValue(f"parents: ids must be ints or strings, got {parents!r}")
        digest, now = source_hash(source), _now()

        def body(conn: sqlite3.Connection) -> tuple[int, bool]:
            cur = conn.execute(
                "INSERT INTO candidates (created, updated, name, source, sha256, parents, proposer, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'candidate') ON CONFLICT (sha256) DO NOTHING",
                (now, now, name, source, digest, json.dumps(parents), proposer))
            if cur.rowcount == 1:
                conn.execute("INSERT INTO status_events (candidate_id, at, from_status, to_status, reason)"
                             " VALUES (?, ?, NULL, 'candidate', 'proposed')", (cur.lastrowid, now))
                return cur.lastrowid, True
            return conn.execute("SELECT id FROM candidates WHERE sha256 = ?", (digest,)).fetchone()[0], False

        return self._transaction(body)

    def add(self, source: str, proposer: str, parents: Iterable = (), *, name: str | None = None) -> int:
        """Archive a proposed program; identical source returns the existing id (and logs so)."""
        cid, created = self.add_or_get(source, proposer, parents, name=name)
        if not created:
            log.info("identical source already archived as candidate %d (sha256 %s)", cid,
                     source_hash(source)[:8])
        return cid

    def _update(self, cid: int, assignments: Mapping[str, Any],
                check: Callable[[sqlite3.Row], None] | None = None) -> None:
        columns = ", ".join(f"{k} = ?" for k in assignments)

        def body(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT * FROM candidates WHERE id = ?", (cid,)).fetchone()
            if row is None:
                raise UnknownCandidate(f"no candidate with id {cid}")
            if check is not None:
                check(row)
            conn.execute(f"UPDATE candidates SET {columns}, updated = ? WHERE id = ?",
                         (*assignments.values(), _now(), cid))

        self._transaction(body)

    def record_gates(self, cid: int, reports: Iterable[Any], isolation: str | None) -> None:
        """Store the full list of gate reports (dicts or objects with name/passed/reason/seconds)."""
        gates = [_gate(r).to_json() for r in reports]
        if isolation is not None and not isinstance(isolation, str):
            raise InvalidValue(f"isolation: must be a string or None, got {isolation!r}")
        self._update(cid, {"gates": json.dumps(gates), "isolation": isolation})

    def set_calibration(self, cid: int, accuracy: float | None, ci_low: float | None, ci_high: float | None,
                        difficulty_reward: float | None) -> None:
        acc = _optional_float("accuracy", accuracy, 0.0, 1.0)
        lo = _optional_float("ci_low", ci_low, 0.0, 1.0)
        hi = _optional_float("ci_high", ci_high, 0.0, 1.0)
        reward = _optional_float("difficulty_reward", difficulty_reward)
        if lo is not None and hi is not None and lo > hi:
            raise InvalidValue(f"confidence interval: ci_low {lo} > ci_high {hi}")
        if acc is not None and ((lo is not None and acc < lo) or (hi is not None and acc > hi)):
            raise InvalidValue(f"accuracy {acc} lies outside its confidence interval [{lo}, {hi}]")
        self._update(cid, {"accuracy": acc, "ci_low": lo, "ci_high": hi, "difficulty_reward": reward})

    def set_novelty(self, cid: int, value: float | None) -> None:
        self._update(cid, {"novelty": _optional_float("novelty", value)})

    def set_source(self, cid: int, source: str) -> None:
        """Replace a not-yet-admitted candidate's source; an admitted program's source is frozen."""
        if not isinstance(source, str) or not source.strip():
            raise InvalidValue("source: must be a non-empty string")

        def check(row: sqlite3.Row) -> None:
            if row["admitted_at"] is not None:
                raise FrozenSource(f"candidate {cid} was admitted (sha256 {row['sha256'][:8]}); "
                                   "its source is frozen and cannot be updated")

        try:
            self._update(cid, {"source": source, "sha256": source_hash(source)}, check)
        except sqlite3.IntegrityError as exc:
            if "frozen" in str(exc):
                raise FrozenSource(f"candidate {cid}: {exc}") from None
            raise InvalidValue(f"candidate {cid}: identical source is already archived") from None

    def set_status(self, cid: int, status: str, reason: str) -> None:
        _check_status(status)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidValue("reason: a status change needs a non-empty reason")

        def body(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT status, admitted_at FROM candidates WHERE id = ?", (cid,)).fetchone()
            if row is None:
                raise UnknownCandidate(f"no candidate with id {cid}")
            old = row["status"]
            if status not in TRANSITIONS[old]:
                allowed = ", ".join(sorted(TRANSITIONS[old])) or "none (final)"
                raise IllegalTransition(f"candidate {cid}: {old} -> {status} is not allowed "
                                        f"(from {old}: {allowed})")
            now = _now()
            admitted_at = row["admitted_at"] or (now if status == "admitted" else None)
            conn.execute("UPDATE candidates SET status = ?, status_reason = ?, admitted_at = ?, updated = ?"
                         " WHERE id = ?", (status, reason, admitted_at, now, cid))
            conn.execute("INSERT INTO status_events (candidate_id, at, from_status, to_status, reason)"
                         " VALUES (?, ?, ?, ?, ?)", (cid, now, old, status, reason))

        self._transaction(body)

    # reads

    def get(self, cid: int) -> Candidate:
        rows = self._read("SELECT * FROM candidates WHERE id = ?", (cid,))
        if not rows:
            raise UnknownCandidate(f"no candidate with id {cid}")
        return _row(rows[0])

    def find(self, source: str) -> Candidate | None:
        rows = self._read("SELECT * FROM candidates WHERE sha256 = ?", (source_hash(source),))
        return _row(rows[0]) if rows else None

    def list(self, status: str | None = None, limit: int | None = None) -> list[Candidate]:
        sql, params = "SELECT * FROM candidates", []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(_check_status(status))
        sql += " ORDER BY id"
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise InvalidValue(f"limit: must be a non-negative integer, got {limit!r}")
            sql += " LIMIT ?"
            params.append(limit)
        return [_row(r) for r in self._read(sql, params)]

    def admitted(self) -> list[Candidate]:
        """The admitted programs, each checked as ``runnable`` checks it: a tampered one is
        quarantined and left out."""
        out = []
        for cand in self.list(status="admitted"):
            if cand.intact:
                out.append(cand)
            else:
                self._quarantine_tampered(cand)
        return out

    def runnable(self, cid: int) -> Candidate | None:
        """Candidate ``cid`` read out to run, or None when its stored source no longer hashes to
        its stored sha256: such a program is quarantined, with one warning line, and never run."""
        cand = self.get(cid)
        if cand.intact:
            return cand
        self._quarantine_tampered(cand)
        return None

    def _quarantine_tampered(self, cand: Candidate) -> None:
        reason = tampered_reason(cand)
        if "quarantined" in TRANSITIONS[cand.status]:
            self.set_status(cand.id, "quarantined", reason)
        log.warning("archive %s: candidate %d not run (%s): %s", self.path, cand.id,
                    "quarantined" if cand.status != "rejected" else "rejected", reason)

    def history(self, cid: int) -> list[dict]:
        """Every status change of one candidate, oldest first."""
        self.get(cid)
        rows = self._read("SELECT at, from_status, to_status, reason FROM status_events"
                          " WHERE candidate_id = ? ORDER BY id", (cid,))
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of candidates per status, every status present (zeros included), in STATUSES order."""
        found = {r[0]: r[1] for r in self._read("SELECT status, count(*) FROM candidates GROUP BY status")}
        return {s: found.get(s, 0) for s in STATUSES}

    def export(self, directory: str | os.PathLike) -> list[pathlib.Path]:
        """Write each admitted program to ``<dir>/<name-or-id>_<hash8>.py`` and a ``manifest.json``.

        Every file is written atomically; the manifest is written last, so a manifest always names
        files that are complete. A program whose stored source no longer matches its sha256 is not
        written; the manifest lists it under ``skipped``. Returns the program paths.
        """
        from worldsmith.runs import atomic_write_bytes, atomic_write_json

        directory = pathlib.Path(directory)
        programs, entries, skipped = [], [], []
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for cand in self.list(status="admitted"):
                if not cand.intact:
                    skipped.append({"id": cand.id, "sha256": cand.sha256, "reason": tampered_reason(cand)})
                    continue
                path = directory / export_filename(cand)
                atomic_write_bytes(path, cand.source.encode("utf-8"))
                programs.append(path)
                entries.append(_manifest_entry(cand, path))
            atomic_write_json(directory / "manifest.json", {
                "schema_version": SCHEMA_VERSION, "exported_at": _now(), "archive": str(self.path),
                "count": len(entries), "programs": entries, "skipped": skipped,
            })
        except OSError as exc:
            raise ArchiveError(f"cannot export to {directory}: {exc.strerror or exc}") from None
        return programs


def _manifest_entry(cand: Candidate, path: pathlib.Path) -> dict:
    return {
        "id": cand.id, "name": cand.name, "file": path.name, "sha256": cand.sha256,
        "proposer": cand.proposer, "parents": list(cand.parents), "admitted_at": cand.admitted_at,
        "accuracy": cand.accuracy, "ci_low": cand.ci_low, "ci_high": cand.ci_high,
        "difficulty_reward": cand.difficulty_reward, "novelty": cand.novelty,
        "isolation": cand.isolation, "gates": [g.to_json() for g in cand.gates],
    }


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers keep their inner ';')."""
    out, buf = [], ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise SchemaError(f"incomplete statement in migration: {buf.strip()[:60]}")
    return out


def restore_snapshot(snapshot: str | os.PathLike | None, path: str | os.PathLike) -> None:
    """Make the archive at ``path`` (closed) what ``snapshot`` holds; None removes it (a run that
    resumes with no checkpoint starts with an empty archive). The write-ahead log and shared-memory
    files go too: a stale log must never be replayed over the restored database."""
    path = pathlib.Path(path)
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    if snapshot is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".restore")
    shutil.copyfile(snapshot, tmp)
    os.replace(tmp, path)
