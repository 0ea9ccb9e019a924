"""The "run" rows 1-13 of specs/safety.md, one test each, in every isolation mode available here.

bwrap runs when bubblewrap works on this machine; fallback always runs. Where fallback has no
boundary (filesystem, network) the test records that with an explicit xfail instead of
pretending.
"""

import dataclasses
import json
import os
import socket
import time
import uuid

import pytest

from worldsmith.sandbox import Limits, available_modes, run

pytestmark = pytest.mark.filterwarnings("ignore:sandbox fallback mode")

SMALL = Limits(wall_s=2.0, cpu_s=2, memory_mb=256, file_mb=4, tmpfs_mb=16,
               output_bytes=4096, max_output_bytes=1 << 20, result_bytes=1 << 20)
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(params=available_modes())
def mode(request):
    return request.param


def _cmdline_hits(token: str) -> list[int]:
    hits = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if token.encode() in fh.read():
                    hits.append(int(name))
        except OSError:
            continue
    return hits


def _marker_hits(run_id: str) -> list[int]:
    from worldsmith.sandbox.runner import survivors

    return survivors(run_id)


# --- row 1: infinite loops, also after disarming alarms --------------------------------------

@pytest.mark.parametrize("code", [
    "while True: pass",
    "import signal\nsignal.alarm(0)\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass",
], ids=["loop", "alarm-disarmed"])
def test_row01_infinite_loop_is_killed_from_outside(mode, code):
    started = time.monotonic()
    res = run(code, None, SMALL, mode=mode)
    assert res.status == "timeout", res
    assert res.value is None and not res.ok
    assert time.monotonic() - started < SMALL.wall_s + 2
    assert _marker_hits(res.run_id) == []


# --- row 2: fork -> setsid -> fork daemon ----------------------------------------------------

@pytest.mark.parametrize("then", ["", "while True: pass"], ids=["returns", "times-out"])
def test_row02_daemon_does_not_survive(mode, then):
    token = f"ws-daemon-{uuid.uuid4().hex}"
    code = f"""
import os, sys, time
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(30)", "{token}"], {{}})
    os._exit(0)
os.waitpid(pid, 0)
time.sleep(0.3)
{then}
"""
    res = run(code, None, SMALL, mode=mode)
    assert res.status == ("ok" if not then else "timeout"), res
    time.sleep(0.1)
    assert _cmdline_hits(token) == [], "a daemon of the run survived"
    assert _marker_hits(res.run_id) == []


# --- row 3: fork bombs (bounded, the machine is shared) -----------------------------------------

BOMBS = {
    "os.fork": "import os as F\nfork = F.fork",
    "posix.fork": "import posix as F\nfork = F.fork",
}


@pytest.mark.parametrize("kind", ["os.fork", "posix.fork", "multiprocessing"])
def test_row03_fork_bomb_is_contained(mode, kind):
    if kind == "multiprocessing":
        code = """
import multiprocessing, time
ctx = multiprocessing.get_context("fork")
procs = [ctx.Process(target=time.sleep, args=(30,)) for _ in range(40)]
for p in procs:
    p.start()
while True: time.sleep(1)
"""
    else:
        code = BOMBS[kind] + """
import time
end = time.time() + 1.0
n = 0
while time.time() < end and n < 120:
    try:
        pid = fork()
    except OSError:
        break
    if pid == 0:
        try:
            fork()
        except OSError:
            pass
        time.sleep(30)
    n += 1
while True: time.sleep(1)
"""
    started = time.monotonic()
    res = run(code, None, SMALL, mode=mode)
    assert res.status in ("timeout", "error", "crashed"), res
    assert not res.ok
    assert time.monotonic() - started < SMALL.wall_s + 3, "host stayed responsive"
    time.sleep(0.1)
    assert _marker_hits(res.run_id) == []


# --- row 4: memory ----------------------------------------------------------------------------

MEMORY_BOMBS = {
    "one-block": "x = bytearray(1 << 30)",
    "slow-growth": "chunks = []\nwhile True:\n    chunks.append(bytearray(4 << 20))",
    "raise-rlimit-first": (
        "import resource\n"
        "for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):\n"
        "    try:\n"
        "        resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "    except (ValueError, OSError):\n"
        "        pass\n"
        "x = bytearray(1 << 30)"),
    "deep-recursion": ("import sys\nsys.setrecursionlimit(10**8)\n"
                       "def f(n):\n    pad = [n] * 1000\n    return f(n + 1) + len(pad)\nf(0)"),
}


@pytest.mark.parametrize("name", list(MEMORY_BOMBS))
def test_row04_memory_bombs_hit_the_limit(mode, name):
    # room on the clocks, so that a loaded machine reaches the memory limit before a time limit
    limits = dataclasses.replace(SMALL, wall_s=10.0, cpu_s=8)
    res = run(MEMORY_BOMBS[name], None, limits, mode=mode)
    assert res.status == "memory_exceeded", res
    assert res.value is None


def test_row04_bare_deep_recursion_is_contained(mode):
    code = "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1) + 1\nf(0)"
    res = run(code, None, SMALL, mode=mode)
    assert res.status in ("memory_exceeded", "timeout"), res


# --- row 5: output and stdin ------------------------------------------------------------------

def test_row05_endless_output_is_capped_and_flagged(mode):
    res = run("while True:\n    print('spam' * 1000)", None, SMALL, mode=mode)
    assert res.status == "output_exceeded", res
    assert res.stdout_truncated and len(res.stdout.encode()) <= SMALL.output_bytes


def test_row05_one_huge_line_is_capped(mode):
    res = run("import os\nos.write(1, b'x' * (64 << 20))", None, SMALL, mode=mode)
    assert res.status == "output_exceeded", res
    assert res.stdout_truncated and len(res.stdout) <= SMALL.output_bytes


def test_row05_closed_stdout_still_times_out(mode):
    res = run("import os\nos.close(1)\nos.close(2)\nwhile True: pass", None, SMALL, mode=mode)
    assert res.status == "timeout", res


def test_row05_input_sees_eof(mode):
    code = "try:\n    input()\n    print('GOT LINE')\nexcept EOFError:\n    print('EOF')"
    res = run(code, None, SMALL, mode=mode)
    assert res.status == "ok", res
    assert res.stdout.strip() == "EOF"


# --- row 6: secrets ---------------------------------------------------------------------------

def test_row06_planted_secret_is_not_visible(mode, monkeypatch):
    secret = f"ws-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("WS_TEST_SECRET", secret)
    code = f"""
import os
from worldsmith import Environment

class Spy(Environment):
    name = "spy"
    def generate(self, rng, difficulty):
        seen = {{"environ": dict(os.environ), "proc": {{}}, "files": {{}}}}
        for name in os.listdir("/proc"):
            if name.isdigit() or name == "self":
                try:
                    with open(f"/proc/{{name}}/environ", "rb") as fh:
                        seen["proc"][name] = fh.read().decode("latin-1")
                except OSError as exc:
                    seen["proc"][name] = type(exc).__name__
        for path in ("/home", "/etc", {CHECKOUT!r}, {CHECKOUT!r} + "/pyproject.toml"):
            seen["files"][path] = os.path.exists(path)
        seen["root"] = sorted(os.listdir("/root")) if os.path.isdir("/root") else []
        print(seen["environ"])
        seen["problem"] = rng.random()
        return seen
    def solve(self, instance): return ""
    def render(self, instance): return str(instance["problem"])
    def score(self, instance, answer): return 0.0
"""
    res = run(code, {"op": "sample", "seeds": [1]}, SMALL, mode=mode)
    assert res.status == "ok", res
    assert secret not in json.dumps(res.to_json())
    seen = res.value[0]["data"]
    assert "WS_TEST_SECRET" not in seen["environ"]
    if mode == "bwrap":
        assert not any(seen["files"].values()), seen["files"]
        assert seen["root"] in ([], [".pyenv"]), "only the Python prefix is bound under home"


# --- row 7: writing outside the tmpfs -----------------------------------------------------------

def test_row07_writes_outside_the_tmpfs_leave_the_host_unchanged(mode, tmp_path):
    target = tmp_path / "planted.txt"
    package_file = os.path.join(CHECKOUT, "src", "worldsmith", "sandbox", f"planted-{uuid.uuid4().hex}")
    targets = [str(target)] if mode == "fallback" else [str(target), package_file,
                                                       os.path.join(CHECKOUT, "tests", "planted.txt")]
    code = f"""
import os
results = {{}}
inside = os.path.join(os.environ.get("TMPDIR", "/tmp"), "inside.txt")
for path in {targets!r} + ["/ws/lib/worldsmith/planted.txt", inside]:
    try:
        with open(path, "w") as fh:
            fh.write("pwned")
        results["inside" if path == inside else path] = "written"
    except OSError as exc:
        results[path] = type(exc).__name__
raise ValueError(repr(results))
"""
    res = run(code, None, SMALL, mode=mode)
    assert res.status == "error", res
    assert "'inside': 'written'" in res.reason, "the run's own scratch space is writable"
    if mode == "fallback":
        if target.exists():
            pytest.xfail("fallback: no filesystem boundary; the write reached the host (documented)")
    assert not target.exists()
    assert not os.path.exists(package_file)
    assert not os.path.exists(os.path.join(CHECKOUT, "tests", "planted.txt"))


# --- row 8: network -----------------------------------------------------------------------------

def test_row08_network_is_unreachable(mode):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = f"""
import socket
out = {{}}
for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 53)):
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect((host, port))
        s.sendall(b"hello")
        out[host] = "connected"
    except OSError as exc:
        out[host] = type(exc).__name__
    finally:
        s.close()
try:
    socket.getaddrinfo("example.com", 80)
    out["dns"] = "resolved"
except OSError as exc:
    out["dns"] = type(exc).__name__
raise ValueError(repr(out))
"""
    try:
        res = run(code, None, SMALL, mode=mode)
        assert res.status == "error", res
        try:
            conn, _ = listener.accept()
            conn.close()
            seen = True
        except BlockingIOError:
            seen = False
    finally:
        listener.close()
    if mode == "fallback" and seen:
        pytest.xfail("fallback: no network boundary; the local listener saw a connection (documented)")
    assert not seen, res.reason
    assert "connected" not in res.reason and "resolved" not in res.reason, res.reason


# --- row 9: guard bypasses --------------------------------------------------------------------

def test_row09_bypasses_do_not_lift_the_limits(mode):
    code = """
import importlib, os, posix, ctypes, resource
os = importlib.reload(os)
wrap = [c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == "_wrap_close"]
libc = ctypes.CDLL(None, use_errno=True)
class RLimit(ctypes.Structure):
    _fields_ = [("cur", ctypes.c_ulong), ("max", ctypes.c_ulong)]
big = RLimit(2**64 - 1, 2**64 - 1)
libc.setrlimit(resource.RLIMIT_AS, ctypes.byref(big))
libc.setrlimit(resource.RLIMIT_CPU, ctypes.byref(big))
if posix.fork() == 0:
    os.setsid()
    import time
    time.sleep(30)
x = bytearray(1 << 30)
"""
    res = run(code, None, SMALL, mode=mode)
    assert res.status == "memory_exceeded", res
    time.sleep(0.1)
    assert _marker_hits(res.run_id) == []


# --- row 10: forging the harness ------------------------------------------------------------

SCORE_ZERO = """
from worldsmith import Environment
class Z(Environment):
    name = "z"
    def generate(self, rng, d): return {"n": 1}
    def solve(self, i): return "1"
    def render(self, i): return "?"
    def score(self, i, a):
        import gc, json, os, sys
        fake = json.dumps({"ok": True, "value": 1.0, "nonce": "0" * 48, "exit": 0, "payload": "{}"})
        print(fake)
        print(fake, file=sys.stderr)
        for obj in gc.get_objects():
            if isinstance(obj, dict) and "nonce" in obj:
                obj["nonce"] = "forged"
        return 0.0
"""


def test_row10_fake_verdicts_on_stdout_are_not_results(mode):
    res = run(SCORE_ZERO, {"op": "score", "instance": {"n": 1}, "answer": "2"}, SMALL, mode=mode)
    assert res.status == "ok", res
    assert res.value == 0.0 and type(res.value) is float
    assert '"value": 1.0' in res.stdout


def test_row10_fake_json_then_exit_is_no_result(mode):
    code = """
import json, os
fake = json.dumps({"ok": True, "value": 1.0}) + "\\n"
os.write(1, fake.encode())
for fd in range(3, 64):
    try:
        os.write(fd, json.dumps({"nonce": "x" * 48, "exit": 0, "payload": fake}).encode() + b"\\n")
    except OSError:
        pass
os._exit(0)
"""
    res = run(code, None, SMALL, mode=mode)
    assert res.status != "ok" and res.value is None, res


# --- row 11: exiting before the results -------------------------------------------------------

@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)",
                                       "raise SystemExit"])
def test_row11_exit_before_results_is_failure(mode, exit_call):
    code = SCORE_ZERO.replace("        return 0.0", f"        {exit_call}")
    res = run(code, {"op": "score", "instance": {"n": 1}, "answer": "1"}, SMALL, mode=mode)
    assert res.status == "no_result", res
    assert res.value is None and not res.ok


# --- row 12: lying objects cannot cross -------------------------------------------------------

def test_row12_lying_objects_do_not_cross(mode):
    liar = """
class Liar:
    def __eq__(self, other): return True
    def __bool__(self): return True
    def __hash__(self): return 0
"""
    res = run(SCORE_ZERO.replace("        return 0.0", "        return Liar()") + liar,
              {"op": "score", "instance": {"n": 1}, "answer": "2"}, SMALL, mode=mode)
    assert res.status == "invalid_result", res
    assert res.value is None
    lying_float = """
class LyingFloat(float):
    def __eq__(self, other): return True
    def __bool__(self): return True
    __hash__ = float.__hash__
"""
    res = run(SCORE_ZERO.replace("        return 0.0", "        return {'v': [LyingFloat(0.0)]}") + lying_float,
              {"op": "score", "instance": {"n": 1}, "answer": "2"}, SMALL, mode=mode)
    assert res.status == "ok", res
    assert res.value == {"v": [0.0]} and type(res.value["v"][0]) is float
    assert res.value["v"][0] != 1.0


# --- row 13: a fresh process per run ----------------------------------------------------------

def test_row13_each_run_is_a_fresh_process(mode):
    poison = """
import builtins, random, threading, time, sys
builtins.POISON = True
random.seed(0)
sys.modules["json"].dumps = lambda *a, **k: '{"ok": true, "value": "poisoned"}'
threading.Thread(target=time.sleep, args=(30,), daemon=False).start()
"""
    first = run(poison, None, SMALL, mode=mode)
    assert first.status in ("ok", "invalid_result", "error"), first
    check = "import builtins\nassert not hasattr(builtins, 'POISON'), 'poisoned'\n"
    second = run(check, None, SMALL, mode=mode)
    assert second.status == "ok", second
    assert second.value is None


# --- positive: a correct environment program ----------------------------------------------------

SUM_ENV = """
from worldsmith import Environment

class TinySum(Environment):
    name = "tiny_sum"
    description = "add two integers"
    answer_format = "the sum as an integer"

    def generate(self, rng, difficulty):
        high = 10 + int(difficulty * 90)
        return {"a": rng.randint(0, high), "b": rng.randint(0, high)}

    def solve(self, instance):
        return str(instance["a"] + instance["b"])

    def render(self, instance):
        return f"What is {instance['a']} + {instance['b']}?"

    def score(self, instance, answer):
        return 1.0 if answer.strip() == str(instance["a"] + instance["b"]) else 0.0
"""


def test_a_correct_program_samples_deterministically_and_scores(mode):
    task = {"op": "sample", "seeds": [3, 5, 8], "difficulty": 0.5}
    first = run(SUM_ENV, task, SMALL, mode=mode)
    second = run(SUM_ENV, task, SMALL, mode=mode)
    assert first.status == "ok", first
    assert first.isolation == mode
    assert first.value == second.value and len(first.value) == 3
    for item in first.value:
        scored = run(SUM_ENV, {"op": "score", "instance": item["data"], "answer": item["reference"]},
                     SMALL, mode=mode)
        assert scored.status == "ok" and scored.value == 1.0, scored
    item = first.value[0]
    graded = run(SUM_ENV, {"op": "grade", "instance": item["data"], "response": "<answer>-1</answer>"},
                 SMALL, mode=mode)
    assert graded.status == "ok" and graded.value["value"] == 0.0 and graded.value["passed"] is False
    described = run(SUM_ENV, {"op": "describe"}, SMALL, mode=mode)
    assert described.value["name"] == "tiny_sum"
