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
  (``describe``, ``sample``, ``score``, ``score_many``, ``grade``), ``exec``, or ``many`` (a list of
  ops performed in order on one environment object, in this one process).

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


def _perform_one(task: dict, env):
    op = task.get("op")
    if op == "describe":
        return {"name": env.name, "description": env.description, "oracle": env.oracle,
                "answer_format": env.answer_format, "allow_boxed": bool(env.allow_boxed),
                "has_steps": bool(env.has_steps())}
    if op == "sample":
        difficulty = task.get("difficulty", 0.0)
        return [env.sample(seed, difficulty).to_json() for seed in task["seeds"]]
    if op == "score":
        return env.score(task["instance"], task["answer"])
    if op == "score_many":
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
        sys.path[:] = [pkg_parent] + [p for p in sys.path if p and p != here]
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
