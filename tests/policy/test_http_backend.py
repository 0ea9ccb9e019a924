"""HTTPBackend against a real local HTTP server that replays recorded OpenAI-compatible replies.

``ReplayServerDouble`` is a test double of a vLLM/Ollama server: a ``ThreadingHTTPServer`` on
127.0.0.1 (port 0) that serves ``/v1/completions`` and ``/v1/chat/completions`` from
tests/synth/fixtures/recorded_completions.json, picking the record whose ``match`` text occurs in
the prompt. Path prefixes select misbehaviour: ``/flaky`` answers 503 twice then replays, ``/badjson``
answers HTML, ``/slow`` sleeps past the client timeout, ``/auth`` answers 401 echoing the
Authorization header, ``/busy`` answers 429 with ``Retry-After`` every time.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import torch
from local_server import LocalServerDouble, QuietHandler

from worldsmith.policy.backend import GenerationBackend, SamplingParams, merge_rollouts
from worldsmith.policy.http_backend import (
    UNKNOWN_TOKEN,
    HTTPBackend,
    HTTPBackendConfig,
    HTTPBackendError,
    api_root,
)

FIXTURE = Path(__file__).resolve().parents[1] / "synth" / "fixtures" / "recorded_completions.json"
PARAMS = SamplingParams(max_new_tokens=256, temperature=0.7, top_k=20, seed=11)


class _ReplayHandler(QuietHandler):
    server: ReplayServerDouble

    def do_POST(self):  # noqa: N802  (the http.server naming)
        body = self.read_json()
        srv = self.server
        with srv.lock:
            srv.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            srv.hits[self.path] = srv.hits.get(self.path, 0) + 1
            hits = srv.hits[self.path]
        prefix, _, endpoint = self.path.partition("/v1/")
        if prefix not in ("", "/flaky", "/busy", "/badjson", "/slow", "/auth"):
            return self.send(404, b'{"error": {"message": "not found"}}')
        if prefix == "/flaky" and hits <= 2:
            return self.send(503, b'{"error": {"message": "model is loading"}}')
        if prefix == "/busy":
            return self.send(429, b'{"error": {"message": "rate limited"}}', headers={"Retry-After": "0.01"})
        if prefix == "/badjson":
            return self.send(200, b"<html><body>502 Bad Gateway (proxy)</body></html>", "text/html")
        if prefix == "/slow":
            time.sleep(srv.slow_s)
        if prefix == "/auth":
            echo = json.dumps({"error": {"message": f"invalid key in header {self.headers.get('Authorization')}"}})
            return self.send(401, echo.encode())
        records = {"completions": srv.records["completions"], "chat/completions": srv.records["chat"]}.get(endpoint)
        if records is None:
            return self.send(404, b'{"error": {"message": "not found"}}')
        text = body.get("prompt") if endpoint == "completions" else body["messages"][-1]["content"]
        record = next((r for r in records if r["match"] and r["match"] in text), records[0])
        self.send(200, json.dumps(record["reply"]).encode())


class ReplayServerDouble(LocalServerDouble):
    """A stand-in for an OpenAI-compatible generation server (see the module doc)."""

    def __init__(self, slow_s: float = 1.0) -> None:
        super().__init__(_ReplayHandler)
        self.records = json.loads(FIXTURE.read_text())
        self.requests: list[dict] = []
        self.hits: dict[str, int] = {}
        self.slow_s = slow_s

    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out closes its socket first; that is the point of /slow

    def record(self, name: str) -> dict:
        return next(r for rs in (self.records["completions"], self.records["chat"]) for r in rs if r["name"] == name)


@pytest.fixture
def server():
    with ReplayServerDouble() as srv:
        yield srv


def backend(url: str, **kw) -> HTTPBackend:
    cfg = dict(base_url=url, model="qwen2.5-coder-1.5b-instruct", backoff_s=0.0, timeout_s=5.0, max_retries=3)
    cfg.update(kw)
    return HTTPBackend(HTTPBackendConfig(**cfg))


# --- the happy paths --------------------------------------------------------------------------------
def test_completions_replay_texts_logprobs_and_shapes(server):
    program = server.record("program")["reply"]["choices"][0]
    junk = server.record("junk")["reply"]["choices"][0]
    be = backend(server.url)
    assert isinstance(be, GenerationBackend)
    out = be.generate(["Design one of the verifiable reasoning environments.", "JUNK please"], PARAMS)
    assert out.texts == [program["text"], junk["text"]]
    n = len(program["logprobs"]["token_logprobs"])
    assert out.completion_ids.shape == out.completion_mask.shape == out.behaviour_logp.shape == (2, n)
    assert out.prompt_ids.shape == out.prompt_mask.shape == (2, 0)
    assert torch.allclose(out.behaviour_logp[0], torch.tensor(program["logprobs"]["token_logprobs"]))
    assert out.completion_mask[0].all() and not out.completion_mask[1].any()  # junk came without logprobs
    assert (out.behaviour_logp[1] == 0).all()
    assert (out.completion_ids == UNKNOWN_TOKEN).all()
    assert out.finished.tolist() == [True, False]  # "stop" vs "length"
    assert "".join(out.tokens[0]) == program["text"] and out.tokens[1] == []
    bodies = sorted((r["body"] for r in server.requests), key=lambda b: b["seed"])
    assert [b["seed"] for b in bodies] == [11, 12]  # one seed per row, so a group does not repeat itself
    assert all(b["logprobs"] == 1 and b["max_tokens"] == 256 and b["top_k"] == 20 for b in bodies)
    assert all(r["path"] == "/v1/completions" and r["auth"] is None for r in server.requests)


def test_chat_endpoint_with_system_prompt(server):
    reply = server.record("chat_program")["reply"]["choices"][0]
    be = backend(server.url + "/v1/", endpoint="chat", system_prompt="You write Python.", max_workers=1)
    out = be.generate(["anything", "anything"], SamplingParams(max_new_tokens=64, temperature=0.0))
    assert out.texts == [reply["message"]["content"]] * 2
    assert out.behaviour_logp.shape == (2, len(reply["logprobs"]["content"]))
    assert out.completion_mask.all() and out.finished.all()
    body = server.requests[0]["body"]
    assert server.requests[0]["path"] == "/v1/chat/completions"
    assert [m["role"] for m in body["messages"]] == ["system", "user"] and body["logprobs"] is True
    assert "seed" not in body and "top_k" not in body


def test_without_logprobs_all_token_tensors_are_empty(server):
    out = backend(server.url, logprobs=False).generate(["JUNK"], PARAMS)
    assert out.completion_ids.shape == out.behaviour_logp.shape == out.completion_mask.shape == (1, 0)
    assert "logprobs" not in server.requests[0]["body"]
    merged = merge_rollouts([out, out], [[0], [1]])  # shapes stay consistent for the batch helpers
    assert merged.texts == out.texts * 2


def test_api_key_from_the_named_variable_is_sent_and_never_shown(server, monkeypatch):
    monkeypatch.setenv("WS_TEST_KEY", "sk-secret-123")
    be = backend(server.url, api_key_env="WS_TEST_KEY")
    be.generate(["JUNK"], PARAMS)
    assert server.requests[-1]["auth"] == "Bearer sk-secret-123"
    assert "sk-secret" not in repr(be) and "sk-secret" not in repr(be.config)
    with pytest.raises(HTTPBackendError) as err:
        backend(server.url + "/auth", api_key_env="WS_TEST_KEY").generate(["x"], PARAMS)
    assert "401" in str(err.value) and "sk-secret" not in str(err.value) and "\n" not in str(err.value)
    monkeypatch.delenv("WS_TEST_KEY")
    with pytest.raises(HTTPBackendError, match="WS_TEST_KEY is not set"):
        backend(server.url, api_key_env="WS_TEST_KEY")


# --- failures and retries -----------------------------------------------------------------------------
def test_503_twice_then_success_is_retried(server):
    slept: list[float] = []
    be = HTTPBackend(HTTPBackendConfig(base_url=server.url + "/flaky", model="m", backoff_s=0.01, max_retries=3),
                     sleep=slept.append)
    out = be.generate(["JUNK"], PARAMS)
    assert out.texts == [server.record("junk")["reply"]["choices"][0]["text"]]
    assert server.hits["/flaky/v1/completions"] == 3
    assert len(slept) == 2 and 0 < slept[0] <= 0.01 and slept[1] <= 0.02


def test_retries_run_out(server):
    be = backend(server.url + "/flaky", max_retries=1)
    with pytest.raises(HTTPBackendError, match=r"HTTP 503 .*gave up after 2 attempts"):
        be.generate(["x"], PARAMS)
    slept: list[float] = []
    busy = HTTPBackend(HTTPBackendConfig(base_url=server.url + "/busy", model="m", max_retries=2), sleep=slept.append)
    with pytest.raises(HTTPBackendError, match="HTTP 429"):
        busy.generate(["x"], PARAMS)
    assert slept == [0.01, 0.01]  # Retry-After is honoured


def test_non_json_reply_is_a_one_line_error(server):
    with pytest.raises(HTTPBackendError, match="reply is not JSON") as err:
        backend(server.url + "/badjson").generate(["x"], PARAMS)
    assert "\n" not in str(err.value)
    assert server.hits["/badjson/v1/completions"] == 1  # not retried


def test_unknown_path_is_not_retried(server):
    with pytest.raises(HTTPBackendError, match="HTTP 404"):
        backend(server.url + "/nowhere/v2").generate(["x"], PARAMS)
    assert len(server.requests) == 1


def test_timeout():
    with ReplayServerDouble(slow_s=1.0) as srv:
        be = backend(srv.url + "/slow", timeout_s=0.2, max_retries=1)
        start = time.monotonic()
        with pytest.raises(HTTPBackendError, match=r"timed out after 0.2 s .*2 attempts"):
            be.generate(["x"], PARAMS)
        assert time.monotonic() - start < 0.9


def test_connection_refused_and_bad_urls():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HTTPBackendError, match="cannot connect"):
        backend(f"http://127.0.0.1:{port}", max_retries=1).generate(["x"], PARAMS)
    for bad in ("localhost:8000", "ftp://host/v1", "http://", "http://host:port/v1", "http://h/v1?x=1"):
        with pytest.raises(HTTPBackendError, match="bad base URL"):
            backend(bad)
    assert api_root("http://h:1/prefix") == "http://h:1/prefix/v1"
    with pytest.raises(ValueError):
        backend("http://127.0.0.1:1").generate([], PARAMS)
