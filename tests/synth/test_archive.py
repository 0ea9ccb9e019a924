"""The SQLite archive of proposed environment programs, and `worldsmith archive`."""

import dataclasses
import json
import multiprocessing
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from worldsmith.synth.archive import (
    SCHEMA_VERSION,
    STATUSES,
    TRANSITIONS,
    Archive,
    ArchiveError,
    FrozenSource,
    GateReport,
    IllegalTransition,
    InvalidValue,
    SchemaError,
    UnknownCandidate,
    export_filename,
    source_hash,
)

SRC = "class Env:\n    def sample(self, seed):\n        return seed\n"
GATES = [{"name": "L1", "passed": True, "reason": "parses", "seconds": 0.01},
         {"name": "L5", "passed": False, "reason": "junk answer scored 1.0", "seconds": 1.5}]


def _program(i: int) -> str:
    return f"class Env{i}:\n    value = {i}\n"


def test_round_trip_of_every_field(tmp_path):
    with Archive(tmp_path / "a.sqlite") as arch:
        cid = arch.add(SRC, "qwen3-4b@step12", parents=[3, "seed:sorting"], name="planted_sum")
        fresh = arch.get(cid)
        assert (fresh.status, fresh.gates, fresh.accuracy, fresh.novelty, fresh.admitted_at) == \
               ("candidate", (), None, None, None)
        arch.record_gates(cid, GATES, "process")
        arch.set_calibration(cid, 0.375, 0.137, 0.694, 0.87)
        arch.set_novelty(cid, 0.42)
        arch.set_status(cid, "admitted", "all contracts passed")
    with Archive(tmp_path / "a.sqlite") as arch:  # reopened: everything came from disk
        c = arch.get(cid)
        history = arch.history(cid)
    assert c.id == cid and c.name == "planted_sum" and c.source == SRC
    assert c.sha256 == source_hash(SRC) and c.hash8 == c.sha256[:8] and len(c.sha256) == 64
    assert c.parents == (3, "seed:sorting") and c.proposer == "qwen3-4b@step12"
    assert c.gates == (GateReport("L1", True, "parses", 0.01), GateReport("L5", False, "junk answer scored 1.0", 1.5))
    assert c.isolation == "process"
    assert (c.accuracy, c.ci_low, c.ci_high, c.difficulty_reward, c.novelty) == (0.375, 0.137, 0.694, 0.87, 0.42)
    assert (c.status, c.status_reason) == ("admitted", "all contracts passed")
    assert c.frozen and c.admitted_at is not None and c.created <= c.updated
    assert [(h["from_status"], h["to_status"]) for h in history] == [(None, "candidate"), ("candidate", "admitted")]
    assert json.loads(json.dumps(c.to_json()))["gates"][1]["name"] == "L5"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.status = "retired"


def test_pragmas_schema_version_and_migration_guard(tmp_path):
    path = tmp_path / "a.sqlite"
    with Archive(path) as arch:
        assert arch.schema_version == SCHEMA_VERSION
        conn = arch._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        arch.add(SRC, "p")
    with Archive(path) as arch:  # reopening does not migrate again
        assert len(arch.list()) == 1 and arch.integrity_check() == "ok"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(SchemaError, match="schema version"):
        Archive(path)
    with pytest.raises(ArchiveError, match="no archive"):
        Archive(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()


def test_identical_source_is_deduplicated(tmp_path, caplog):
    with Archive(tmp_path / "a.sqlite") as arch:
        first = arch.add(SRC, "p1")
        other = arch.add(SRC + "# changed\n", "p1")
        with caplog.at_level("INFO", logger="worldsmith.synth.archive"):
            again = arch.add(SRC, "p2", parents=[other])
        assert again == first and other != first
        assert "already archived as candidate" in caplog.text
        assert arch.add_or_get(SRC, "p3") == (first, False)
        assert arch.get(first).proposer == "p1"  # the existing row is untouched
        assert len(arch.list()) == 2


def test_admitted_source_is_frozen(tmp_path):
    with Archive(tmp_path / "a.sqlite") as arch:
        cid = arch.add(SRC, "p")
        arch.set_source(cid, SRC + "# fixed\n")  # a candidate may still change
        assert arch.get(cid).sha256 == source_hash(SRC + "# fixed\n")
        arch.set_status(cid, "admitted", "ok")
        with pytest.raises(FrozenSource, match="frozen"):
            arch.set_source(cid, "class Evil: pass\n")
        arch.set_status(cid, "quarantined", "scorer looks wrong")  # still frozen after leaving admitted
        with pytest.raises(FrozenSource):
            arch.set_source(cid, "class Evil: pass\n")
        conn = arch._conn  # the database refuses too, whoever writes to it
        with pytest.raises(sqlite3.IntegrityError, match="frozen"):
            conn.execute("UPDATE candidates SET source = 'x', sha256 = ? WHERE id = ?", ("0" * 64, cid))
        assert arch.get(cid).source == SRC + "# fixed\n"
        other = arch.add(SRC, "p")
        with pytest.raises(InvalidValue, match="already archived"):
            arch.set_source(other, SRC + "# fixed\n")


def _reach(arch: Archive, status: str, i: int) -> int:
    cid = arch.add(_program(i), "p")
    path = {"candidate": [], "admitted": ["admitted"], "rejected": ["rejected"],
            "quarantined": ["quarantined"], "retired": ["admitted", "retired"]}[status]
    for step in path:
        arch.set_status(cid, step, f"to {step}")
    return cid


def test_status_transitions_are_enforced(tmp_path):
    with Archive(tmp_path / "a.sqlite") as arch:
        i = 0
        for old in STATUSES:
            for new in STATUSES:
                i += 1
                cid = _reach(arch, old, i)
                if new in TRANSITIONS[old]:
                    arch.set_status(cid, new, "allowed")
                    assert arch.get(cid).status == new
                else:
                    with pytest.raises(IllegalTransition, match=f"{old} -> {new}"):
                        arch.set_status(cid, new, "not allowed")
                    assert arch.get(cid).status == old
        assert "admitted" not in TRANSITIONS["rejected"] and "retired" in TRANSITIONS["admitted"]
        cid = arch.add(SRC, "p")
        with pytest.raises(InvalidValue, match="unknown status"):
            arch.set_status(cid, "promoted", "x")
        with pytest.raises(InvalidValue, match="reason"):
            arch.set_status(cid, "admitted", " ")
        with pytest.raises(UnknownCandidate, match="no candidate with id 9999"):
            arch.set_status(9999, "admitted", "x")


def test_bad_values_are_refused(tmp_path):
    with Archive(tmp_path / "a.sqlite") as arch:
        cid = arch.add(SRC, "p")
        for args in [(1.5, 0, 1, 0), (0.5, 0.6, 0.9, 0), (0.5, 0.8, 0.2, 0), (float("nan"), None, None, None),
                     ("0.5", None, None, None)]:
            with pytest.raises(InvalidValue):
                arch.set_calibration(cid, *args)
        arch.set_calibration(cid, None, None, None, None)
        with pytest.raises(InvalidValue):
            arch.set_novelty(cid, float("inf"))
        for bad in [{"name": "L1"}, {"name": "", "passed": True}, {"name": "L1", "passed": "yes"}]:
            with pytest.raises(InvalidValue):
                arch.record_gates(cid, [bad], "process")
        arch.record_gates(cid, [GateReport("L1", True)], None)  # objects work as well as dicts
        with pytest.raises(InvalidValue):
            arch.add("  ", "p")
        with pytest.raises(InvalidValue):
            arch.add(SRC + "#", "p", parents=[None])
        with pytest.raises(UnknownCandidate):
            arch.get(424242)
        with pytest.raises(UnknownCandidate):
            arch.set_novelty(424242, 0.1)


def test_list_filters_admitted_and_counts(tmp_path):
    with Archive(tmp_path / "a.sqlite") as arch:
        assert arch.counts() == dict.fromkeys(STATUSES, 0)
        ids = [arch.add(_program(i), f"p{i}") for i in range(6)]
        arch.set_status(ids[0], "admitted", "ok")
        arch.set_status(ids[1], "admitted", "ok")
        arch.set_status(ids[2], "rejected", "L3 failed")
        arch.set_status(ids[1], "retired", "old")
        assert [c.id for c in arch.list()] == ids
        assert [c.id for c in arch.list(status="admitted")] == [ids[0]] == [c.id for c in arch.admitted()]
        assert [c.id for c in arch.list(status="candidate", limit=2)] == ids[3:5]
        assert arch.list(limit=0) == []
        assert arch.counts() == {"candidate": 3, "admitted": 1, "rejected": 1, "retired": 1, "quarantined": 0}
        with pytest.raises(InvalidValue):
            arch.list(status="nope")
        with pytest.raises(InvalidValue):
            arch.list(limit=-1)


def test_export_writes_programs_and_manifest(tmp_path):
    with Archive(tmp_path / "a.sqlite") as arch:
        named = arch.add(SRC, "p", name="planted subset/sum")
        plain = arch.add(_program(1), "p", parents=[named])
        arch.add(_program(2), "p")  # stays a candidate: not exported
        for cid in (named, plain):
            arch.set_calibration(cid, 0.25, 0.1, 0.5, 0.9)
            arch.set_status(cid, "admitted", "ok")
        paths = arch.export(tmp_path / "out")
        cands = [arch.get(named), arch.get(plain)]
    assert [p.name for p in paths] == [f"planted_subset_sum_{cands[0].hash8}.py", f"{plain}_{cands[1].hash8}.py"]
    assert [export_filename(c) for c in cands] == [p.name for p in paths]
    for path, cand in zip(paths, cands):
        assert path.read_text() == cand.source
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["count"] == 2 and manifest["schema_version"] == SCHEMA_VERSION
    entry = manifest["programs"][1]
    assert entry["id"] == plain and entry["file"] == paths[1].name and entry["parents"] == [named]
    assert entry["sha256"] == source_hash(_program(1)) and entry["accuracy"] == 0.25
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([*(p.name for p in paths), "manifest.json"])


# --- concurrency and durability ---------------------------------------------------------------


def _writer(path: str, worker: int, rows: int, barrier, queue) -> None:
    ids = []
    try:
        with Archive(path, busy_timeout_ms=20) as arch:  # short: exercises the retry with backoff
            barrier.wait(timeout=60)
            shared = arch.add("class Shared: pass\n", f"w{worker}")
            for i in range(rows):
                cid = arch.add(_program(1000 * worker + i), f"w{worker}", parents=[shared])
                arch.record_gates(cid, GATES, "process")
                arch.set_novelty(cid, i / rows)
                arch.set_status(cid, "admitted" if i % 2 else "rejected", f"w{worker} row {i}")
                ids.append(cid)
        queue.put((worker, shared, ids, None))
    except BaseException as exc:
        queue.put((worker, None, ids, repr(exc)))


def test_concurrent_writers_lose_nothing(tmp_path):
    path, workers, rows = str(tmp_path / "a.sqlite"), 4, 25
    Archive(path).close()
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, w, rows, barrier, queue)) for w in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [r[3] for r in results] == [None] * workers, results
    assert len({r[1] for r in results}) == 1  # everybody got the same id for the shared source
    with Archive(path) as arch:
        assert arch.integrity_check() == "ok"
        assert len(arch.list()) == workers * rows + 1
        for worker, _, ids, _ in results:
            assert len(ids) == rows
            for i, cid in enumerate(ids):
                c = arch.get(cid)
                assert c.source == _program(1000 * worker + i) and c.proposer == f"w{worker}"
                assert c.status == ("admitted" if i % 2 else "rejected") and len(c.gates) == 2
                assert c.novelty == i / rows and len(arch.history(cid)) == 2
        assert arch.counts()["admitted"] == workers * (rows // 2)


_KILLED_WRITER = textwrap.dedent("""
    import sys
    from worldsmith.synth.archive import Archive
    round_, path = int(sys.argv[1]), sys.argv[2]
    with Archive(path) as arch:
        i = 0
        while True:
            src = f"class Env_{round_}_{i}:\\n    payload = {'x' * 2000!r}\\n"
            cid = arch.add(src, "killed-writer")
            print(cid, "added", round_, i, flush=True)
            arch.set_status(cid, "admitted", "durability")
            print(cid, "admitted", round_, i, flush=True)
            i += 1
""")


def test_sigkill_loses_no_committed_row(tmp_path):
    path = tmp_path / "a.sqlite"
    committed: dict[int, tuple[str, str]] = {}
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(round_), str(path)],
                                stdout=subprocess.PIPE, text=True)
        seen = 0
        for line in proc.stdout:
            cid, what, r, i = line.split()
            committed[int(cid)] = (f"class Env_{r}_{i}:\n    payload = {'x' * 2000!r}\n", what)
            seen += 1
            if seen >= 40 + 7 * round_:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        with Archive(path) as arch:
            assert arch.integrity_check() == "ok"
            for cid, (src, what) in committed.items():
                c = arch.get(cid)
                assert c.source == src and c.sha256 == source_hash(src)
                if what == "admitted":
                    assert c.status == "admitted"
    assert len(committed) >= 60


# --- the command line -------------------------------------------------------------------------

BIN = [sys.executable, "-m", "worldsmith.cli"]


def run(*args, env_extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "WORLDSMITH_ARCHIVE"}
    env.update(PYTHONWARNINGS="ignore", **(env_extra or {}))
    return subprocess.run([*BIN, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("cli") / "archive.sqlite"
    with Archive(path) as arch:
        a = arch.add(SRC, "proposer-a", name="planted")
        arch.record_gates(a, GATES[:1], "process")
        arch.set_calibration(a, 0.375, 0.1, 0.7, 0.88)
        arch.set_novelty(a, 0.31)
        arch.set_status(a, "admitted", "all contracts passed")
        b = arch.add(_program(7), "proposer-b", parents=[a])
        arch.set_status(b, "rejected", "L3 nondeterministic")
    return path


def test_cli_list(db):
    out = run("archive", "list", "--db", str(db))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["id", "status", "hash8", "â", "novelty", "proposer", "created"]
    assert lines[1].split()[:6] == ["1", "admitted", source_hash(SRC)[:8], "0.375", "0.310", "proposer-a"]
    assert lines[2].split()[:5] == ["2", "rejected", source_hash(_program(7))[:8], "-", "-"]
    rows = json.loads(run("archive", "list", "--db", str(db), "--status", "rejected", "--json").stdout)
    assert [(r["id"], r["status"], r["proposer"]) for r in rows] == [(2, "rejected", "proposer-b")]


def test_cli_show(db):
    out = run("archive", "show", "1", "--db", str(db))
    assert out.returncode == 0, out.stderr
    for text in ("planted", "all contracts passed", source_hash(SRC), "PASS  L1", "process",
                 "CI [0.100, 0.700]", "candidate -> admitted", "def sample(self, seed):"):
        assert text in out.stdout, text
    shown = json.loads(run("archive", "show", "2", "--db", str(db), "--json").stdout)
    assert shown["status"] == "rejected" and shown["parents"] == [1] and shown["source"] == _program(7)
    assert [h["to_status"] for h in shown["history"]] == ["candidate", "rejected"]


def test_cli_export_with_env_var_default(db, tmp_path):
    out = run("archive", "export", str(tmp_path / "exp"), env_extra={"WORLDSMITH_ARCHIVE": str(db)})
    assert out.returncode == 0, out.stderr
    assert "exported 1 admitted program" in out.stdout
    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    assert [p["file"] for p in manifest["programs"]] == [f"planted_{source_hash(SRC)[:8]}.py"]
    assert (tmp_path / "exp" / manifest["programs"][0]["file"]).read_text() == SRC


@pytest.mark.parametrize("args, message", [
    (("archive", "list"), "no archive at runs/archive.sqlite"),
    (("archive", "show", "99", "--db", "{db}"), "no candidate with id 99"),
    (("archive", "list", "--status", "bogus", "--db", "{db}"), "unknown status 'bogus'"),
    (("archive", "show", "abc", "--db", "{db}"), "must be a candidate id"),
    (("archive", "export", "{tmp}/x", "--db", "{tmp}/missing.sqlite"), "no archive at"),
])
def test_cli_errors_are_one_line_exit_2(db, tmp_path, args, message):
    args = [a.format(db=db, tmp=tmp_path) for a in args]
    out = run(*args, cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "missing.sqlite").exists()


def test_cli_on_a_file_that_is_not_a_database(tmp_path):
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_bytes(b"not a database at all" * 100)
    start = time.monotonic()
    out = run("archive", "list", "--db", str(bogus))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert time.monotonic() - start < 60


def _one_line_error(out, code: int, fragment: str) -> None:
    assert out.returncode == code, (out.stdout, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1 and fragment in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_cli_export_into_a_file_is_one_line_error(db, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    _one_line_error(run("archive", "export", str(target), "--db", str(db)), 2, "is a file, not a folder")
    _one_line_error(run("archive", "export", str(target / "inside"), "--db", str(db)), 1, "cannot export to")
    assert target.read_text() == "mine\n"


def _damage_pages_after_the_first(path: pathlib.Path) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("args", [("show", "2"), ("list",), ("export", "{tmp}/out")])
def test_cli_on_a_damaged_database_is_one_line_error(tmp_path, args):
    path = tmp_path / "a.sqlite"
    with Archive(path) as arch:
        for i in range(20):
            arch.set_status(arch.add(_program(i) + "#" * 2000, "p"), "admitted", "ok")
    _damage_pages_after_the_first(path)
    out = run("archive", *[a.format(tmp=tmp_path) for a in args], "--db", str(path))
    _one_line_error(out, 1, "is damaged")


@pytest.mark.parametrize("content", ["empty", "foreign"])
def test_cli_refuses_a_file_that_is_no_archive_and_writes_nothing_into_it(tmp_path, content):
    path = tmp_path / "x.sqlite"
    if content == "empty":
        path.write_bytes(b"")
    else:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.commit()
        conn.close()
    before = path.read_bytes()
    for args in (("list",), ("show", "1"), ("export", str(tmp_path / "out"))):
        _one_line_error(run("archive", *args, "--db", str(path)), 2, "is not a worldsmith archive")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.sqlite"]


def test_cli_export_skips_a_program_whose_hash_mismatches_and_says_so(tmp_path):
    path = tmp_path / "a.sqlite"
    with Archive(path) as arch:
        good, bad = arch.add(_program(1), "p", name="good"), arch.add(_program(2), "p", name="bad")
        for cid in (good, bad):
            arch.set_status(cid, "admitted", "ok")
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER admitted_source_is_frozen")
    conn.execute("UPDATE candidates SET source = 'class Env: scores_everything = 1.0' WHERE id = ?", (bad,))
    conn.commit()
    conn.close()
    out = run("archive", "export", str(tmp_path / "out"), "--db", str(path))
    _one_line_error(out, 1, f"skipped candidate(s) {bad}: stored source does not match its sha256")
    assert "exported 1 admitted program" in out.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [p["id"] for p in manifest["programs"]] == [good] and [s["id"] for s in manifest["skipped"]] == [bad]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_" + source_hash(_program(1))[:8] + ".py",
                                                                     "manifest.json"]
    shown = run("archive", "show", str(bad), "--db", str(path)).stdout
    assert "MISMATCH: stored source does not match its sha256" in shown
    with Archive(path) as arch:
        assert arch.runnable(bad) is None
    shown = run("archive", "show", str(bad), "--db", str(path)).stdout
    assert "quarantined" in shown and "admitted -> quarantined" in shown
