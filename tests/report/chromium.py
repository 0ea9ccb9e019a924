"""Open a page in headless Chromium and report what a person would see go wrong: console errors,
uncaught exceptions, blocked or failed loads, and the result of a script run in the page.

Drives Chromium through the DevTools protocol over ``--remote-debugging-pipe`` (standard library
only). ``find_chromium()`` is None where no Chromium is installed; tests skip then.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    """One page load: ``errors`` (console errors, exceptions, error log entries) and ``value`` (the
    result of ``expression``, evaluated after the load event)."""

    def __init__(self, errors: list[str], value) -> None:
        self.errors, self.value = errors, value


def open_page(url: str, expression: str, timeout: float = 60.0) -> Page:
    binary = find_chromium()
    assert binary, "no chromium"
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()

    def wire() -> None:  # in the child: fd 3 reads commands, fd 4 writes replies
        high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)  # out of the way of 3 and 4 first
        high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)

    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, pass_fds=(3, 4))
        os.close(to_child_r)
        os.close(from_child_w)
        buffer = b""
        ids = iter(range(1, 10**6))
        events: list[dict] = []
        deadline = time.monotonic() + timeout

        def send(method: str, params: dict | None = None, session: str | None = None) -> int:
            n = next(ids)
            msg = {"id": n, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            os.write(to_child_w, json.dumps(msg).encode() + b"\0")
            return n

        def receive() -> dict:
            nonlocal buffer
            while b"\0" not in buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([from_child_r], [], [], left)[0]:
                    raise TimeoutError("chromium did not answer")
                chunk = os.read(from_child_r, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium exited")
                buffer += chunk
            raw, buffer = buffer.split(b"\0", 1)
            return json.loads(raw)

        def call(method: str, params: dict | None = None, session: str | None = None) -> dict:
            n = send(method, params, session)
            while True:
                msg = receive()
                if msg.get("id") == n:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg.get("result", {})
                events.append(msg)

        def wait_for(method: str) -> None:
            while not any(e.get("method") == method for e in events):
                events.append(receive())

        try:
            target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page"):
                call(f"{domain}.enable", session=session)
            events.clear()
            call("Page.navigate", {"url": url}, session=session)
            wait_for("Page.loadEventFired")
            result = call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
            value = result.get("result", {}).get("value")
            call("Runtime.evaluate", {"expression": "1"}, session=session)  # drain late events
            errors = []
            for e in events:
                p = e.get("params", {})
                if e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
                elif e.get("method") == "Runtime.exceptionThrown":
                    errors.append("exception: " + p["exceptionDetails"].get("text", ""))
                elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                    errors.append(f"{p['entry'].get('source')}: {p['entry'].get('text')}")
            try:
                send("Browser.close")
            except OSError:
                pass
            return Page(errors, value)
        finally:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_child_w)
            os.close(from_child_r)
