"""HTTPBackend against a hostile server: a real local HTTP server (``HostileServerDouble``, a test
double of a misbehaving OpenAI-compatible server) that drips its reply, sends huge replies, replies
of the wrong shape and non-finite log-probs. Every case must end in ``HTTPBackendError`` with one
line, within the configured time."""

from __future__ import annotations

import json
import time

import pytest
from local_server import LocalServerDouble, QuietHandler

from worldsmith.policy.backend import SamplingParams
from worldsmith.policy.http_backend import HTTPBackend, HTTPBackendConfig, HTTPBackendError

PARAMS = SamplingParams(max_new_tokens=8, temperature=1.0)
GOOD = {"choices": [{"text": "42", "finish_reason": "stop",
                     "logprobs": {"tokens": ["4", "2"], "token_logprobs": [-0.5, -0.25]}}]}

SHAPES = {
    "/strchoice": b'{"choices": ["hello"]}',
    "/strlogprobs": b'{"choices": [{"text": "hi", "logprobs": "abc"}]}',
    "/listtokens": b'{"choices": [{"text": "hi", "logprobs": {"tokens": ["a"], "token_logprobs": "xy"}}]}',
    "/nan": b'{"choices": [{"text": "hi", "logprobs": {"tokens": ["a", "b"], "token_logprobs": [-0.1, NaN]}}]}',
    "/inf": b'{"choices": [{"text": "hi", "logprobs": {"tokens": ["a"], "token_logprobs": [-Infinity]}}]}',
    "/textlogprob": b'{"choices": [{"text": "hi", "logprobs": {"tokens": ["a"], "token_logprobs": ["-1"]}}]}',
    "/list": b'[1, 2, 3]',
}
CHAT_SHAPES = {
    "/strmessage": b'{"choices": [{"message": "hi"}]}',
    "/chatnan": b'{"choices": [{"message": {"content": "hi"}, "logprobs": {"content": [{"token": "h", "logprob": NaN}]}}]}',
    "/chatitem": b'{"choices": [{"message": {"content": "hi"}, "logprobs": {"content": ["h"]}}]}',
}


class _HostileHandler(QuietHandler):
    def do_POST(self):  # noqa: N802  (the http.server naming)
        self.read_json()
        prefix = self.path.partition("/v1/")[0]
        if prefix == "/drip":  # headers at once, then one byte every 0.2 s, forever as far as the client knows
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                return
            return
        if prefix == "/huge":
            padding = "x" * (3 * 1024 * 1024)
            return self.send(200, json.dumps({**GOOD, "padding": padding}).encode())
        if prefix in SHAPES or prefix in CHAT_SHAPES:
            return self.send(200, SHAPES.get(prefix) or CHAT_SHAPES[prefix])
        self.send(200, GOOD)

    def handle(self):
        try:
            super().handle()
        except OSError:
            pass  # the client cut the connection: the point of /drip


def backend(url: str, **kw) -> HTTPBackend:
    cfg = dict(base_url=url, model="m", backoff_s=0.0, timeout_s=5.0, max_retries=0)
    cfg.update(kw)
    return HTTPBackend(HTTPBackendConfig(**cfg))


@pytest.fixture(scope="module")
def server():
    with LocalServerDouble(_HostileHandler) as srv:
        yield srv


def test_a_good_reply_still_parses(server):
    out = backend(server.url).generate(["p"], PARAMS)
    assert out.texts == ["42"] and out.behaviour_logp.tolist() == [[-0.5, -0.25]]


def test_a_dripping_server_is_cut_off_at_the_deadline(server):
    be = backend(server.url + "/drip", timeout_s=1.0, max_retries=1)
    started = time.monotonic()
    with pytest.raises(HTTPBackendError, match=r"timed out after 1 s \(gave up after 2 attempts\)"):
        be.generate(["p"], PARAMS)
    elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 4.0  # two attempts of 1 s each, not 200 bytes x 0.2 s each


def test_a_reply_over_the_size_cap_is_refused(server):
    with pytest.raises(HTTPBackendError, match=r"reply larger than max_reply_bytes=1048576"):
        backend(server.url + "/huge", max_reply_bytes=1024 * 1024).generate(["p"], PARAMS)
    out = backend(server.url + "/huge", max_reply_bytes=8 * 1024 * 1024).generate(["p"], PARAMS)
    assert out.texts == ["42"]


@pytest.mark.parametrize("path", sorted(SHAPES))
def test_wrong_shapes_and_non_finite_logprobs_are_backend_errors(server, path):
    with pytest.raises(HTTPBackendError, match="reply is not a completions completion") as info:
        backend(server.url + path).generate(["p"], PARAMS)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("path", sorted(CHAT_SHAPES))
def test_wrong_chat_shapes_are_backend_errors(server, path):
    with pytest.raises(HTTPBackendError, match="reply is not a chat completion"):
        backend(server.url + path, endpoint="chat").generate(["p"], PARAMS)
