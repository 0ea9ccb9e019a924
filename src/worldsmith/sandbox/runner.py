"""Run one untrusted program in a fresh, limited process and return its result as plain JSON.

``run(code, task, limits, mode)`` starts ``python -I -S -B harness.py`` either inside bubblewrap
(``"bwrap"``: new user/PID/network/IPC/UTS namespaces, no capabilities, a read-only bind of the
Python prefix, the system libraries and the ``worldsmith`` package only (plus the read-only
``paths`` a caller names, e.g. the site-packages holding a third-party scorer), a bounded tmpfs as
the only writable place) or as a plain subprocess (``"fallback"``: accident protection, not a
security boundary).

``"auto"`` means bwrap. Where bwrap cannot run, ``"auto"`` raises ``SandboxUnavailable`` (with
``NO_ISOLATION``, a one-line message saying how to get bubblewrap and how to opt out) unless the
user opted in to unisolated runs: ``allow_unisolated()`` in this process (what the command-line
flag ``--unsafe-no-isolation`` does) or ``WORLDSMITH_UNSAFE_NO_ISOLATION=1`` in the environment.
``mode="fallback"`` asks for the unisolated mode explicitly. Both modes set hard rlimits (soft = hard), clear the environment, give the
program ``/dev/null`` as stdin, start a new session, enforce a wall clock from this process, and
after every run stop and kill every process of the run they can find (the process tree, the
process group and every process whose environment carries this run's marker).

Results travel over a dedicated pipe, one JSON line tagged with a per-run nonce that only the
harness supervisor ever holds (see ``harness.py``); stdout and stderr are never parsed. Missing,
malformed, oversized or untagged results are failures.

Standard library only.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

PACKAGE_DIR = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).resolve().parent / "harness.py"
FALLBACK_WARNING = "sandbox fallback mode: accident protection, not a security boundary"
MARKER = "WS_SANDBOX_RUN"
SANDBOX_LIB = "/ws/lib"
#: The environment variable that opts in to unisolated runs (same effect as ``allow_unisolated()``).
UNSAFE_ENV = "WORLDSMITH_UNSAFE_NO_ISOLATION"
UNSAFE_FLAG = "--unsafe-no-isolation"
NO_ISOLATION = ("no sandbox isolation here: bubblewrap (bwrap) is missing or cannot create namespaces; "
                "install it (sudo apt-get install bubblewrap, or `make setup` as root) or, accepting the risk, "
                f"pass {UNSAFE_FLAG} (rlimits only: accident protection, not a security boundary)")

Mode = Literal["auto", "bwrap", "fallback"]
STATUSES = ("ok", "error", "timeout", "memory_exceeded", "crashed", "no_result", "invalid_result",
            "output_exceeded")


class SandboxUnavailable(RuntimeError):
    """The requested isolation mode cannot run on this machine."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. Every limit is hard (soft = hard) inside the sandbox."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    file_mb: int = 16
    open_files: int = 64
    tmpfs_mb: int = 64
    output_bytes: int = 64 * 1024
    max_output_bytes: int = 4 * 1024 * 1024
    result_bytes: int = 4 * 1024 * 1024

    def for_harness(self) -> dict:
        return {"memory_mb": int(self.memory_mb), "cpu_s": max(1, int(self.cpu_s)),
                "file_mb": int(self.file_mb), "open_files": int(self.open_files),
                "result_bytes": int(self.result_bytes)}


@dataclass
class RunResult:
    """What one run produced. ``value`` is plain JSON (or None); ``ok`` iff status is ``"ok"``."""

    status: str
    value: object = None
    reason: str = ""
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    seconds: float = 0.0
    isolation: str = ""
    run_id: str = ""
    exit_code: int | None = None
    cpu_s: float | None = None
    details: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        return asdict(self)


# --- isolation modes ----------------------------------------------------------------------


def _interpreter() -> str:
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(base)


def _system_binds() -> list[str]:
    """Read-only binds of the shared libraries the interpreter needs (never /, /etc, /home)."""
    args: list[str] = []
    for path in ("/usr/lib", "/usr/lib64", "/usr/lib32"):
        if os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _path_binds(paths: tuple[str, ...]) -> list[str]:
    """Read-only binds of extra folders at their own path (e.g. a site-packages folder)."""
    args: list[str] = []
    for path in paths:
        args += ["--ro-bind", path, path]
    return args


def _bwrap_prefix(limits: Limits, run_id: str, paths: tuple[str, ...] = ()) -> list[str]:
    prefix = os.path.realpath(sys.base_prefix)
    return [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all", "--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL",
        "--setenv", MARKER, run_id, "--setenv", "LANG", "C.UTF-8",
        *_system_binds(),
        "--ro-bind", prefix, prefix,
        "--ro-bind", str(PACKAGE_DIR), f"{SANDBOX_LIB}/{PACKAGE_DIR.name}",
        "--dev", "/dev", "--proc", "/proc",
        "--size", str(int(limits.tmpfs_mb) * 1024 * 1024), "--tmpfs", "/tmp",
        *_path_binds(paths),  # after the tmpfs, so that a folder under /tmp stays visible
        "--chdir", "/tmp",
        "--",
    ]


@functools.lru_cache(maxsize=1)
def bwrap_available() -> bool:
    """Whether bubblewrap is on PATH and can start the interpreter here (probed once)."""
    if shutil.which("bwrap") is None:
        return False
    try:
        out = subprocess.run(
            [*_bwrap_prefix(Limits(), "probe"), _interpreter(), "-I", "-S", "-B", "-c",
             f"import sys; sys.path.insert(0, {SANDBOX_LIB!r}); import worldsmith.envs.contract; print('ok')"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=20, env={})
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == b"ok"


_UNISOLATED_ALLOWED = False


def allow_unisolated(allowed: bool = True) -> None:
    """Opt in (or back out) for this process: where bwrap cannot run, ``mode="auto"`` runs
    programs in fallback mode (rlimits only) instead of refusing. ``--unsafe-no-isolation`` calls
    this; only code that the user started can, never a sandboxed program (another process)."""
    global _UNISOLATED_ALLOWED
    _UNISOLATED_ALLOWED = bool(allowed)


def unisolated_allowed() -> bool:
    """Whether the user opted in to unisolated runs (``allow_unisolated()`` or ``UNSAFE_ENV=1``)."""
    return _UNISOLATED_ALLOWED or os.environ.get(UNSAFE_ENV, "") == "1"


def resolve_mode(mode: Mode = "auto") -> str:
    """The isolation a run in ``mode`` gets here: ``"bwrap"`` or ``"fallback"``.

    ``"auto"``: bwrap where it works; otherwise fallback only when the user opted in
    (``unisolated_allowed()``), else ``SandboxUnavailable`` with ``NO_ISOLATION``. ``"bwrap"``:
    ``SandboxUnavailable`` where it cannot run. ``"fallback"``: always, by explicit request.
    """
    if mode == "auto":
        if bwrap_available():
            return "bwrap"
        if unisolated_allowed():
            return "fallback"
        raise SandboxUnavailable(NO_ISOLATION)
    if mode == "bwrap" and not bwrap_available():
        raise SandboxUnavailable("bwrap is not on PATH or cannot create namespaces here; "
                                 "install it: sudo apt-get install bubblewrap")
    if mode not in ("bwrap", "fallback"):
        raise ValueError(f"unknown sandbox mode {mode!r}")
    return mode


def available_modes() -> list[str]:
    """The modes that can run here without an opt-in (fallback is always possible when asked for)."""
    return (["bwrap"] if bwrap_available() else []) + ["fallback"]


# --- process cleanup ----------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) for every visible process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            table[int(name)] = (int(fields[1]), int(fields[2]))
        except (OSError, ValueError, IndexError):
            continue
    return table


def _marked(run_id: str, pids) -> set[int]:
    needle = f"{MARKER}={run_id}".encode()
    found = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.add(pid)
        except OSError:
            continue
    return found


def _run_processes(root: int, run_id: str) -> set[int]:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found = {pid for pid, (_, pgid) in table.items() if pgid == root}
    if root in table:
        found.add(root)
    found |= _marked(run_id, table)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    found.discard(os.getpid())
    return found


def kill_run(root: int, run_id: str) -> int:
    """Stop, then kill, every process of the run that can be found; returns how many."""
    stopped: set[int] = set()
    for _ in range(100):
        new = _run_processes(root, run_id) - stopped
        if not new:
            break
        for pid in new:
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
        stopped |= new
    try:
        os.killpg(root, signal.SIGKILL)
    except OSError:
        pass
    for pid in stopped:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    _wait_gone(stopped - {root})
    return len(stopped)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def _wait_gone(pids: set[int], timeout: float = 3.0) -> None:
    """Wait until killed processes have really exited (SIGKILL is delivered asynchronously)."""
    deadline = time.monotonic() + timeout
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        pending = {pid for pid in pending if _alive(pid)}
        if pending:
            time.sleep(0.002)


def survivors(run_id: str) -> list[int]:
    """Processes that still carry this run's marker (for tests and audits)."""
    return sorted(_marked(run_id, _proc_table()))


# --- the run ------------------------------------------------------------------------------


class _Capture:
    def __init__(self, keep: int):
        self.keep = keep
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > self.keep:
            del self.data[: len(self.data) - self.keep]

    @property
    def truncated(self) -> bool:
        return self.total > self.keep

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", "replace")


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (so its pid and pgid cannot be reused)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name} in result")


def _parse_json(text: str):
    return json.loads(text, parse_constant=_reject_constant)


def run(code: str, task: dict | None = None, limits: Limits | None = None,
        mode: Mode = "auto", paths: tuple[str, ...] | list[str] = ()) -> RunResult:
    """Execute ``code`` (an environment program) and perform ``task`` in a fresh sandbox.

    ``task`` is ``{"op": "exec"}`` (default: run the module only), ``{"op": "describe"}``,
    ``{"op": "sample", "seeds": [...], "difficulty": d}``, ``{"op": "score", "instance": ...,
    "answer": ...}``, ``{"op": "score_many", "items": [[instance, answer], ...]}`` (one entry per
    item: ``{"value": v}``, ``{"error": name, "message": m}`` when ``score`` raised, or
    ``{"unsendable": name, "message": m}`` when its return is not plain JSON; memory exhaustion,
    ``SystemExit`` or a hang end the whole run as for ``score``), ``{"op": "grade", "instance":
    ..., "response": ...}`` or ``{"op": "many", "tasks": [task, ...]}`` (several of these ops in
    order, one value each; any failure fails the run). ``score_many`` with ``"isolate": {"wall_s":
    w, "cpu_s": c, "guard": g}`` scores each item in its own forked process (one launch, per-item
    limits, no item can change what the next one sees; see ``harness.py``). ``{"op": "main",
    "args": ...}`` calls the program's ``main(args)`` and returns its plain-JSON value.

    ``paths``: extra folders (absolute, existing) bound read-only at their own path and appended
    to the program's ``sys.path``. Never raises for anything the program does; raises
    ``SandboxUnavailable`` when bwrap cannot run and neither ``mode="fallback"`` nor the user's
    opt-in (``allow_unisolated``) allows the unisolated mode.
    """
    limits = limits or Limits()
    isolation = resolve_mode(mode)
    paths = tuple(os.path.realpath(p) for p in paths)
    for path in paths:
        if not os.path.isdir(path):
            raise ValueError(f"sandbox path {path!r} is not a folder")
    if isolation == "fallback":
        warnings.warn(FALLBACK_WARNING, RuntimeWarning, stacklevel=2)
    run_id = secrets.token_hex(12)
    nonce = secrets.token_hex(24)
    request = json.dumps({"code": code, "task": task or {"op": "exec"}, "path": list(paths)}).encode()
    launch = _Launch(isolation, limits, run_id, paths)
    in_r, in_w = os.pipe()
    nonce_r, nonce_w = os.pipe()
    out_r, out_w = os.pipe()
    os.write(nonce_w, nonce.encode())
    os.close(nonce_w)
    argv = [*launch.prefix, _interpreter(), "-I", "-S", "-B", launch.harness, launch.pkg_parent,
            str(in_r), str(nonce_r), str(out_w), json.dumps(limits.for_harness())]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=(in_r, nonce_r, out_w),
                                start_new_session=True, env=launch.env, cwd=launch.cwd)
    except OSError as exc:
        for fd in (in_r, in_w, nonce_r, out_r, out_w):
            os.close(fd)
        launch.clean()
        return RunResult("crashed", reason=f"could not start the sandbox: {exc}",
                         isolation=isolation, run_id=run_id)
    for fd in (in_r, nonce_r, out_w):
        os.close(fd)

    streams = _Streams(limits)
    pump = _Pump(proc, streams, out_r, in_w, request)
    timed_out = pump.run(started + limits.wall_s)
    kill_run(proc.pid, run_id)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    pump.drain()  # whatever the run left in the pipes (all writers are dead now)
    pump.close()
    launch.clean()

    result = RunResult(
        status="no_result", stdout=streams.stdout.text(), stderr=streams.stderr.text(),
        stdout_truncated=streams.stdout.truncated, stderr_truncated=streams.stderr.truncated,
        seconds=round(time.monotonic() - started, 4), isolation=isolation, run_id=run_id,
        exit_code=proc.returncode,
    )
    if timed_out:
        result.status, result.reason = "timeout", f"wall clock limit of {limits.wall_s}s reached"
        return _finish(result)
    if streams.output_exceeded:
        result.status = "output_exceeded"
        result.reason = f"stdout/stderr passed {limits.max_output_bytes} bytes; the run was killed"
        return _finish(result)
    if streams.channel_over:
        result.status, result.reason = "output_exceeded", "result channel over its size cap"
        return _finish(result)
    _interpret(result, bytes(streams.channel), nonce, limits)
    return _finish(result)


class _Launch:
    """How one run starts: inside bubblewrap (the package bound at ``SANDBOX_LIB``) or, unisolated,
    in a fresh temporary working folder that ``clean`` removes."""

    def __init__(self, isolation: str, limits: Limits, run_id: str, paths: tuple[str, ...]) -> None:
        self.workdir = None
        if isolation == "bwrap":
            self.pkg_parent = SANDBOX_LIB
            self.harness = f"{SANDBOX_LIB}/{PACKAGE_DIR.name}/sandbox/harness.py"
            self.prefix = _bwrap_prefix(limits, run_id, paths)
            self.env = {MARKER: run_id}
            self.cwd = "/"
        else:
            self.workdir = tempfile.mkdtemp(prefix="ws-sandbox-")
            self.pkg_parent = str(PACKAGE_DIR.parent)
            self.harness = str(HARNESS)
            self.prefix = []
            self.env = {MARKER: run_id, "LANG": "C.UTF-8", "TMPDIR": self.workdir, "HOME": self.workdir}
            self.cwd = self.workdir

    def clean(self) -> None:
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class _Streams:
    """What a run writes: stdout and stderr (the last ``output_bytes`` kept, the total counted) and
    the result channel (refused past its cap). ``full`` says when reading must stop."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.stdout, self.stderr = _Capture(limits.output_bytes), _Capture(limits.output_bytes)
        self.channel = bytearray()
        self.channel_cap = limits.result_bytes * 2 + 4096
        self.channel_over = self.output_exceeded = False

    def take(self, source, chunk: bytes) -> None:
        """Add ``chunk`` read from ``source`` (a capture, or ``"channel"``)."""
        if source == "channel":
            if len(self.channel) + len(chunk) > self.channel_cap:
                self.channel_over = True
            else:
                self.channel += chunk
        else:
            source.add(chunk)
            if source.total > self.limits.max_output_bytes:
                self.output_exceeded = True

    @property
    def full(self) -> bool:
        return self.output_exceeded or self.channel_over


class _Pump:
    """Feeds the request to the harness and reads its output pipes until it exits, the deadline
    passes or an output cap is reached; ``drain`` then reads what is left."""

    def __init__(self, proc: subprocess.Popen, streams: _Streams, out_r: int, in_w: int, request: bytes) -> None:
        self.proc, self.streams, self.out_r, self.in_w = proc, streams, out_r, in_w
        self.pending = memoryview(request)
        self.in_open = True
        self.sel = selectors.DefaultSelector()
        self.sel.register(proc.stdout, selectors.EVENT_READ, streams.stdout)
        self.sel.register(proc.stderr, selectors.EVENT_READ, streams.stderr)
        self.sel.register(out_r, selectors.EVENT_READ, "channel")
        os.set_blocking(in_w, False)
        self.sel.register(in_w, selectors.EVENT_WRITE, "input")
        try:
            self.pidfd = os.pidfd_open(proc.pid)
            self.sel.register(self.pidfd, selectors.EVENT_READ, "exit")
        except (AttributeError, OSError):
            self.pidfd = None

    def run(self, deadline: float) -> bool:
        """Pump until the run exits or a cap is reached; True when the deadline passed first."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if _exited(self.proc.pid):
                return False
            events = self.sel.select(timeout=min(remaining, 0.05 if self.pidfd is None else remaining))
            for key, _ in events:
                if key.data == "input":
                    self._feed()
                elif key.data != "exit":
                    self._read(key)
            if self.streams.full:
                return False

    def _feed(self) -> None:
        try:
            self.pending = self.pending[os.write(self.in_w, self.pending[: 1 << 16]):]
        except BlockingIOError:
            return
        except OSError:
            self.pending = self.pending[:0]
        if not self.pending:
            self.sel.unregister(self.in_w)
            os.close(self.in_w)
            self.in_open = False

    def _read(self, key) -> bool:
        """Read one chunk from ``key``'s pipe into the streams; False at its end (unregistered)."""
        try:
            chunk = os.read(key.fd, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            self.sel.unregister(key.fileobj)
            return False
        self.streams.take(key.data, chunk)
        return True

    def drain(self) -> None:
        for key in list(self.sel.get_map().values()):
            if key.data in ("exit", "input"):
                continue
            os.set_blocking(key.fd, False)
            while not self.streams.full and self._read(key):
                pass

    def close(self) -> None:
        self.sel.close()
        self.proc.stdout.close()
        self.proc.stderr.close()
        os.close(self.out_r)
        if self.in_open:
            os.close(self.in_w)
        if self.pidfd is not None:
            os.close(self.pidfd)


def _finish(result: RunResult) -> RunResult:
    if result.isolation == "fallback":
        result.details["warning"] = FALLBACK_WARNING
    return result


def _interpret(result: RunResult, channel: bytes, nonce: str, limits: Limits) -> None:
    """Fill status/value/reason from the tagged channel message (never from stdout)."""
    message = None
    for line in channel.splitlines():
        try:
            candidate = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(candidate, dict) and secrets.compare_digest(
                str(candidate.get("nonce", "")), nonce):
            message = candidate
    if message is None:
        code = result.exit_code
        if code is not None and code < 0:
            result.status = "crashed"
            result.reason = f"sandbox killed by {_signame(-code)} before reporting"
        else:
            result.status = "no_result"
            result.reason = f"no tagged result on the channel (exit code {code})"
        return
    exit_value = message.get("exit")
    result.cpu_s = message.get("cpu_s")
    result.details = {"worker_exit": exit_value, "maxrss_kb": message.get("maxrss_kb")}
    if message.get("payload_over_cap"):
        result.status = "output_exceeded"
        result.reason = f"result over {limits.result_bytes} bytes"
        return
    payload = message.get("payload") or ""
    if not payload:
        if isinstance(exit_value, int) and exit_value < 0:
            sig = -exit_value
            cpu = result.cpu_s or 0.0
            if sig in (signal.SIGKILL, signal.SIGXCPU) and cpu >= limits.cpu_s - 0.5:
                result.status = "timeout"
                result.reason = f"CPU limit of {limits.cpu_s}s reached ({_signame(sig)})"
            elif sig in (signal.SIGSEGV, signal.SIGBUS) or (
                    sig == signal.SIGABRT and "MemoryError" in result.stderr):
                result.status = "memory_exceeded"
                result.reason = f"worker killed by {_signame(sig)} (stack overflow or memory exhausted)"
            else:
                result.status = "crashed"
                result.reason = f"worker killed by {_signame(sig)}"
        else:
            result.status = "no_result"
            result.reason = f"program exited (code {exit_value}) before producing results"
        return
    try:
        body = _parse_json(payload)
    except (ValueError, RecursionError) as exc:
        result.status, result.reason = "invalid_result", f"result is not valid JSON: {exc}"[:300]
        return
    if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
        result.status, result.reason = "invalid_result", "result lacks the harness envelope"
        return
    if body["ok"]:
        if set(body) - {"ok", "value", "caps_dropped"}:
            result.status, result.reason = "invalid_result", "unexpected fields in the result"
            return
        result.status, result.value, result.reason = "ok", body.get("value"), "completed"
        result.details["caps_dropped"] = body.get("caps_dropped")
        return
    error = str(body.get("error", "Exception"))[:100]
    message_text = str(body.get("message", ""))[:500]
    if error == "MemoryError":
        result.status = "memory_exceeded"
    elif error == "SystemExit":
        result.status = "no_result"
    elif error == "TypeError" and "JSON serializable" in message_text:
        result.status = "invalid_result"
    elif (message.get("maxrss_kb") or 0) >= 0.9 * limits.memory_mb * 1024:
        result.status = "memory_exceeded"
        message_text += " (worker used its whole memory limit)"
    else:
        result.status = "error"
    result.reason = f"{error}: {message_text}"


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
