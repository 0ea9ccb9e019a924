"""The in-sandbox harness, executed by path in a fresh ``python -I -S -B`` process.

Usage (by ``runner.py`` only)::

    harness.py PKG_PARENT IN_FD NONCE_FD OUT_FD LIMITS_JSON

Two processes live here:

- the *supervisor* (this process): sets hard rlimits (soft = hard), makes itself a child
  subreaper and non-dumpable, forks the worker, and only after the fork reads the per-run nonce
  from ``NONCE_FD``. It never runs candidate code. When the worker ends it kills every remaining
  descendant (orphans are reparented to it because it is a subreaper), then writes one JSON line
  ``{"nonce", "exit", "cpu_s", "payload", ...}`` to ``OUT_FD``.
- the *worker* (forked child): closes ``NONCE_FD`` and ``OUT_FD`` before anything else, drops
  every capability (bounding set, effective/permitted/inheritable, no_new_privs), reads the
  request ``{"code", "task"}`` from ``IN_FD``, executes the candidate, performs the task and
  writes ``{"ok": ..., ...}`` as JSON to a private pipe the supervisor reads. A task is one op
  (``describe``, ``sample``, ``score``, ``score_many``, ``grade``), ``exec``, ``main`` (the
  program's own ``main(args)``, for drivers that ship their own logic), or ``many`` (a list of
  ops performed in order on one environment object, in this one process).

``score_many`` with ``"isolate"`` scores every item in a process forked from the worker (after an
optional ``env.prepare_scoring(instances)``, so shared set-up is paid once): each item gets its own
wall clock and CPU limit, a crash or hang costs only that item (``{"error": "Timeout", ...}``), and
no answer can change the scorer the next answer meets. With ``"guard": true`` an audit hook in the
forked process refuses side effects (processes, writes, network, ctypes) and the item reports
``{"error": "SideEffect", ...}`` even when the scorer swallowed the refusal.

The nonce therefore never exists in the worker's address space, and the worker holds no handle
on the channel the runner trusts. What this does not protect: the worker may write anything to
its own private pipe, i.e. it can forge *its own* results (an environment program is the source
of its own instances and scores anyway; verdicts are recomputed on the trusted side from plain
JSON). Inside one process, candidate code can reach every object of the harness, so the worker
side is never treated as trusted.
"""

import json
import os
import resource
import signal
import sys

MEMORY_ERROR = b'{"ok": false, "error": "MemoryError", "message": "memory limit reached"}'
#: The most bytes one isolated ``score_many`` item may send back.
ITEM_BYTES = 64 * 1024

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38


def _libc():
    try:
        import ctypes

        return ctypes, ctypes.CDLL(None, use_errno=True)
    except Exception:
        return None, None


def _set_limits(limits: dict) -> None:
    pairs = {
        resource.RLIMIT_AS: limits["memory_mb"] * 1024 * 1024,
        resource.RLIMIT_CPU: limits["cpu_s"],
        resource.RLIMIT_FSIZE: limits["file_mb"] * 1024 * 1024,
        resource.RLIMIT_NOFILE: limits["open_files"],
        resource.RLIMIT_CORE: 0,
    }
    for which, value in pairs.items():
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def _drop_capabilities() -> bool:
    """Drop every capability of this process for good; True when the kernel agreed."""
    ctypes, libc = _libc()
    if libc is None:
        return False
    try:
        for cap in range(64):
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]

        header = Header(0x20080522, 0)
        data = (Data * 2)()
        if libc.capset(ctypes.byref(header), data) != 0:
            return False
        with open("/proc/self/status") as fh:
            status = fh.read()
        return "CapEff:\t0000000000000000" in status and "CapBnd:\t0000000000000000" in status
    except Exception:
        return False


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return set()
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _kill_descendants() -> None:
    me = os.getpid()
    stopped: set[int] = set()
    for _ in range(50):
        new = _descendants(me) - stopped
        if not new:
            break
        for pid in new:
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
        stopped |= new
    for pid in stopped:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    while True:
        try:
            if os.waitpid(-1, 0)[0] <= 0:
                break
        except ChildProcessError:
            break
        except OSError:
            break


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _pick_environment(namespace: dict, wanted: str | None):
    from worldsmith.envs.contract import Environment

    found = [v for v in namespace.values()
             if isinstance(v, type) and issubclass(v, Environment) and v is not Environment
             and v.__module__ == "__candidate__"]
    if wanted is not None:
        found = [v for v in found if v.__name__ == wanted]
    if len(found) != 1:
        names = ", ".join(sorted(v.__name__ for v in found)) or "none"
        raise LookupError(f"expected exactly one Environment subclass, found {names}")
    return found[0]()


def _score_item(env, instance, answer) -> dict:
    """One answer of ``score_many``: ``{"value": v}`` (v plain JSON), ``{"error", "message"}`` when
    ``score`` raised, ``{"unsendable", "message"}`` when its return is not plain JSON. Memory
    exhaustion and ``SystemExit`` end the whole run, as they do for ``score``."""
    try:
        value = env.score(instance, answer)
    except MemoryError:
        raise
    except Exception as exc:
        return {"error": _exc_name(exc), "message": _exc_text(exc)}
    try:
        json.dumps(value, allow_nan=False)
    except MemoryError:
        raise
    except Exception as exc:
        return {"unsendable": _exc_name(exc), "message": _exc_text(exc)}
    return {"value": value}


def _exc_name(exc: BaseException) -> str:
    name = type(exc).__name__
    return name[:100] if isinstance(name, str) else "Exception"


def _exc_text(exc: BaseException) -> str:
    try:
        return str(exc)[:500]
    except MemoryError:
        raise
    except Exception:
        return "unprintable"


#: Audit events a guarded scorer may not raise: processes, writes, network, native code.
_GUARDED_EVENTS = frozenset({
    "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "os.kill", "os.killpg", "pty.spawn", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod",
    "os.chown", "os.link", "os.symlink", "os.truncate", "os.utime", "os.putenv", "os.unsetenv",
    "shutil.rmtree", "shutil.copyfile", "shutil.move", "socket.connect", "socket.bind", "socket.sendto",
    "socket.getaddrinfo", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function",
    "ctypes.addressof", "ctypes.string_at", "ctypes.wstring_at", "mmap.__new__", "resource.setrlimit",
    "resource.prlimit", "sys.settrace", "sys.setprofile",
})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _install_guard() -> list[str]:
    """Add an audit hook that refuses side effects; the returned list names the first refused one."""
    hits: list[str] = []

    def hook(event: str, args: tuple) -> None:
        refused = event in _GUARDED_EVENTS
        if event == "open" and len(args) >= 3:
            mode, flags = args[1], args[2]
            refused = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
        if refused:
            if not hits:
                hits.append(event)
            raise PermissionError(f"{event} refused while scoring")

    sys.addaudithook(hook)
    return hits


def _score_forked(env, instance, answer, wall_s: float, cpu_s: int, guard: bool) -> dict:
    """One ``score_many`` item scored in a forked process with its own limits (see the module doc)."""
    import select
    import time

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
            hits = _install_guard() if guard else []
            entry = _score_item(env, instance, answer)
            if hits:
                entry = {"error": "SideEffect", "message": f"the scorer attempted {hits[0]} on this answer"}
            data = json.dumps(entry, allow_nan=False).encode()
        except MemoryError:
            data = b'{"error": "MemoryError", "message": "memory limit reached"}'
        except BaseException as exc:  # SystemExit and the like from the scorer: this item only
            try:
                data = json.dumps({"error": _exc_name(exc), "message": _exc_text(exc)}).encode()
            except BaseException:
                data = b'{"error": "Exception", "message": "unprintable"}'
        try:
            view = memoryview(data[:ITEM_BYTES])
            while view:
                view = view[os.write(write_end, view):]
        except BaseException:
            pass
        os._exit(0)
    os.close(write_end)
    chunks, size, timed_out = [], 0, False
    deadline = time.monotonic() + wall_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_end], [], [], left)
        if not ready:
            continue
        chunk = os.read(read_end, 1 << 16)
        if not chunk:
            break
        size += len(chunk)
        if size <= ITEM_BYTES:
            chunks.append(chunk)
    os.close(read_end)
    if timed_out:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    if timed_out:
        return {"error": "Timeout", "message": f"scoring this answer ran past {wall_s:g}s"}
    try:
        entry = json.loads(b"".join(chunks))
    except ValueError:
        entry = None
    if type(entry) is dict:
        return entry
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
        return {"error": "Timeout", "message": f"scoring this answer used its {cpu_s}s of CPU"}
    return {"error": "Crashed", "message": "the scoring process ended without a result"}


def _score_isolated(env, items: list, isolate: dict) -> list[dict]:
    wall_s = float(isolate.get("wall_s", 5.0))
    cpu_s = max(1, int(isolate.get("cpu_s", 5)))
    guard = bool(isolate.get("guard", False))
    prepare = getattr(env, "prepare_scoring", None)
    if callable(prepare):
        prepare([instance for instance, _ in items])
    return [_score_forked(env, instance, answer, wall_s, cpu_s, guard) for instance, answer in items]


def _perform_one(task: dict, env):
    op = task.get("op")
    if op == "describe":
        return {"name": env.name, "description": env.description, "oracle": env.oracle,
                "answer_format": env.answer_format, "allow_boxed": bool(env.allow_boxed),
                "has_steps": bool(env.has_steps())}
    if op == "sample":
        difficulty = task.get("difficulty", 0.0)
        if task.get("splits") is False:  # the admission gates look at the sampler itself, seed by seed
            env.eval_share = None
        return [env.sample(seed, difficulty).to_json() for seed in task["seeds"]]
    if op == "score":
        return env.score(task["instance"], task["answer"])
    if op == "score_many":
        if task.get("isolate"):
            return _score_isolated(env, task["items"], task["isolate"])
        return [_score_item(env, instance, answer) for instance, answer in task["items"]]
    if op == "grade":
        verdict = env.grade(task["instance"], task["response"])
        return {"value": verdict.value, "passed": verdict.passed, "reason": verdict.reason,
                "answer": verdict.answer}
    raise ValueError(f"unknown op {op!r}")


def _perform(task: dict, namespace: dict):
    op = task.get("op", "exec")
    if op == "exec":
        return None
    if op == "main":
        main = namespace.get("main")
        if not callable(main):
            raise LookupError("the program defines no main(args)")
        return main(task.get("args"))
    env = _pick_environment(namespace, task.get("class"))
    if op == "many":
        return [_perform_one(sub, env) for sub in task["tasks"]]
    return _perform_one(task, env)


def _worker(pkg_parent: str, in_fd: int, result_fd: int) -> None:
    payload = b""
    try:
        dropped = _drop_capabilities()
        request = json.loads(_read_all(in_fd))
        os.close(in_fd)
        here = os.path.dirname(os.path.abspath(__file__))
        extra = [p for p in request.get("path") or [] if isinstance(p, str)]
        sys.path[:] = [pkg_parent] + [p for p in sys.path if p and p != here] + extra
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")  # one thread: forked scorers never meet a held lock
        import builtins

        import worldsmith.envs.contract  # noqa: F401  (imported before the candidate runs)

        namespace = {"__name__": "__candidate__", "__builtins__": builtins}
        sys.modules.pop("__candidate__", None)
        code = compile(request["code"], "<candidate>", "exec")
        exec(code, namespace)
        value = _perform(request["task"], namespace)
        payload = json.dumps({"ok": True, "value": value, "caps_dropped": dropped},
                             allow_nan=False).encode()
    except MemoryError:
        payload = MEMORY_ERROR
    except SystemExit as exc:
        code_value = exc.code if isinstance(exc.code, (int, str)) or exc.code is None else "?"
        payload = json.dumps({"ok": False, "error": "SystemExit",
                              "message": f"exited with {str(code_value)[:100]}"}).encode()
    except BaseException as exc:  # the candidate's failure, reported as data
        try:
            payload = json.dumps({"ok": False, "error": type(exc).__name__,
                                  "message": str(exc)[:500]}).encode()
        except MemoryError:
            payload = MEMORY_ERROR
        except BaseException:
            payload = b'{"ok": false, "error": "Exception", "message": "unprintable"}'
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(result_fd, view):]
    except BaseException:
        pass
    os._exit(0)


def main() -> None:
    pkg_parent, in_fd, nonce_fd, out_fd, limits = sys.argv[1:6]
    in_fd, nonce_fd, out_fd = int(in_fd), int(nonce_fd), int(out_fd)
    limits = json.loads(limits)
    _set_limits(limits)
    _, libc = _libc()
    if libc is not None:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(nonce_fd)
        os.close(out_fd)
        os.close(read_end)
        _worker(pkg_parent, in_fd, write_end)
        os._exit(1)
    os.close(write_end)
    os.close(in_fd)
    nonce = os.read(nonce_fd, 256).decode()
    os.close(nonce_fd)

    cap = limits["result_bytes"]
    chunks: list[bytes] = []
    size = 0
    over = False
    os.set_blocking(read_end, False)
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    status = None
    rusage = None
    while True:
        watch = [read_end] + ([pidfd] if pidfd is not None else [])
        ready, _, _ = select.select(watch, [], [], 0.05 if pidfd is None else None)
        eof = False
        if read_end in ready or status is not None:
            try:
                while True:
                    chunk = os.read(read_end, 1 << 16)
                    if not chunk:
                        eof = True
                        break
                    size += len(chunk)
                    if size > cap:
                        over = True
                    else:
                        chunks.append(chunk)
            except BlockingIOError:
                pass
        if status is not None:
            break
        done, st, ru = os.wait4(pid, os.WNOHANG)
        if done:
            status, rusage = st, ru
            continue
        if eof and pidfd is None:
            select.select([], [], [], 0.01)
    _kill_descendants()
    exit_value = (-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
    message = {
        "nonce": nonce,
        "exit": exit_value,
        "cpu_s": round(rusage.ru_utime + rusage.ru_stime, 4),
        "maxrss_kb": rusage.ru_maxrss,
        "payload": b"".join(chunks).decode("utf-8", "replace") if not over else "",
        "payload_over_cap": over,
    }
    data = (json.dumps(message) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[os.write(out_fd, view):]
    os.close(out_fd)


if __name__ == "__main__":
    main()
