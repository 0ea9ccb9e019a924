"""A ``GenerationBackend`` over an OpenAI-compatible HTTP server (vLLM, Ollama, llama.cpp, ...).

``HTTPBackend.generate`` sends one request per prompt to ``{base_url}/v1/completions`` (raw text
prompt) or ``{base_url}/v1/chat/completions`` (the prompt as one user message), a few at a time on
worker threads, and returns the replies in prompt order. Only the standard library is used
(``urllib.request`` and ``json``).

What comes back, and what a trainer can do with it:

- ``texts``: the completions, exactly as the server sent them. This is all a remote *proposer*
  needs (``worldsmith.synth.proposers.PolicyProposer`` reads only texts).
- ``behaviour_logp``: the per-token log-probs the server reports when ``logprobs`` is on and the
  server supports them (vLLM does; Ollama's OpenAI layer only in recent versions). Rows without
  them are zeros with ``completion_mask`` False. Servers differ on *which* distribution these are
  from: vLLM by default reports the model's log-probs before temperature/top-k/top-p, not the
  processed distribution ``HFBackend`` records, so treat them as approximate behaviour log-probs.
- ``completion_ids``: the HTTP API returns text, not token ids. Where the server reports tokens,
  ``completion_ids`` has one column per reported token (so it lines up with ``completion_mask``
  and ``behaviour_logp``, as ``merge_rollouts`` requires) but every entry is ``UNKNOWN_TOKEN``
  (-1): an embedding lookup on it fails loudly instead of training on made-up ids. Without
  log-probs all three tensors have shape (B, 0). The reported token *strings* are in
  ``HTTPRollouts.tokens``.
- ``prompt_ids`` / ``prompt_mask``: shape (B, 0); the server tokenises prompts itself.
- ``finished``: True where the server's ``finish_reason`` is ``"stop"`` (False for ``"length"``).
- ``step_spans``: empty.

So a trainer can score, filter and log these rollouts, and use them for off-policy or
rejection-sampling data after re-tokenising ``prompt + text`` with its own tokenizer and recomputing
log-probs locally (``hf_backend.sequence_logprobs``); it cannot feed ``completion_ids`` to a model
or use ``behaviour_logp`` as an exact importance-ratio denominator.

Every attempt has one wall-clock deadline, ``timeout_s``, from connecting to the last byte of the
reply: a server that drips its reply a byte at a time is cut off there (the socket timeout alone
bounds only the wait for each byte). A reply larger than ``max_reply_bytes`` is refused, as is a
reply of the wrong shape and a log-prob that is not a finite number.

Failures raise ``HTTPBackendError`` with a one-line message: a malformed base URL (at
construction), a reply that is not JSON or not a completion, a 4xx other than 429, and 429/5xx,
connection errors and timeouts once ``max_retries`` retries with exponential backoff (honouring a
``Retry-After`` header, capped at ``backoff_max_s``) are spent. The API key is read from the
environment variable named by ``api_key_env`` at each request; it is never stored, logged or put
into an error message.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from worldsmith.policy.backend import Rollouts, SamplingParams

#: The id placed in ``completion_ids`` for a token the server reported only as text.
UNKNOWN_TOKEN = -1
#: HTTP statuses worth retrying: rate limiting and server-side failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_SNIPPET_CHARS = 160


class HTTPBackendError(RuntimeError):
    """A request to the generation server failed; the message is one line."""


class HTTPBackendConfig(BaseModel):
    """Where and how to reach an OpenAI-compatible server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(..., description="Server root, with or without a trailing /v1, e.g. http://127.0.0.1:8000")
    model: str = Field(..., min_length=1, description="The model name the server expects.")
    endpoint: Literal["completions", "chat"] = "completions"
    api_key_env: str | None = Field(None, description="Name of the environment variable holding the API key.")
    timeout_s: float = Field(120.0, gt=0.0, description=(
        "Wall-clock limit of one attempt, seconds, from connecting to the reply's last byte."))
    max_reply_bytes: int = Field(32 * 1024 * 1024, ge=1024, description=(
        "Largest reply body accepted, bytes; a larger one is an error (not retried)."))
    max_retries: int = Field(3, ge=0, le=20)
    backoff_s: float = Field(0.5, ge=0.0, description="First retry delay; doubles each retry (with jitter).")
    backoff_max_s: float = Field(8.0, ge=0.0)
    logprobs: bool = Field(True, description="Ask for per-token log-probs.")
    stop: tuple[str, ...] = ()
    system_prompt: str | None = Field(None, description="Chat endpoint only: a system message first.")
    prompt_suffix: str = Field("", description=(
        "Completions endpoint only: appended to every prompt, e.g. the newline a policy without a chat "
        "template reads after its prompt (``policy.model.format_prompt``)."))
    max_workers: int = Field(4, ge=1, le=256, description="Requests in flight at once.")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Merged into every request body.")


@dataclass
class HTTPRollouts(Rollouts):
    """``Rollouts`` plus the token strings the server reported (one list per row; empty without logprobs)."""

    tokens: list[list[str]] = field(default_factory=list)


@dataclass
class _Reply:
    text: str
    tokens: list[str]
    logprobs: list[float] | None
    finished: bool


def _one_line(text: str, limit: int = _SNIPPET_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def api_root(base_url: str) -> str:
    """The ``.../v1`` root of ``base_url``; raises ``HTTPBackendError`` when it is not an http(s) URL.

    >>> api_root("http://127.0.0.1:8000")
    'http://127.0.0.1:8000/v1'
    >>> api_root("https://host/v1/")
    'https://host/v1'
    """
    parts = urllib.parse.urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise HTTPBackendError(f"bad base URL {_one_line(base_url, 80)!r}: expected http(s)://host[:port][/path]")
    try:
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        raise HTTPBackendError(f"bad base URL {_one_line(base_url, 80)!r}: malformed port") from None
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class _Deadline:
    """Shuts a request's socket down when its wall-clock budget is spent, so that a blocked read
    returns at once however slowly the server sends; ``expired`` says whether that happened."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """A urllib opener whose connections report their sockets to ``deadline`` once connected."""

    class Watched(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    class WatchedTLS(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    class Handler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(Watched, req)

    class TLSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(WatchedTLS, req, context=self._context)

    return urllib.request.build_opener(Handler, TLSHandler)


def _image_content(text: str, image: bytes) -> list[dict[str, Any]]:
    """An OpenAI-style multimodal user content: the text part, then the image as a ``data:`` URL.

    The image must be PNG or JPEG bytes; the media type is taken from its signature."""
    if not isinstance(image, (bytes, bytearray)) or not image:
        raise HTTPBackendError("an image must be non-empty PNG or JPEG bytes")
    if bytes(image[:8]) == b"\x89PNG\r\n\x1a\n":
        media = "image/png"
    elif bytes(image[:3]) == b"\xff\xd8\xff":
        media = "image/jpeg"
    else:
        raise HTTPBackendError("an image must be PNG or JPEG bytes (unrecognised signature)")
    url = f"data:{media};base64," + base64.b64encode(bytes(image)).decode("ascii")
    return [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]


def _finite_logprob(value: Any) -> float:
    """A reported log-prob as a float; anything else (NaN, infinities, text, objects) is refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"log-prob {_one_line(repr(value), 30)} is not a number")
    if not math.isfinite(value):
        raise ValueError(f"log-prob {value!r} is not finite")
    return float(value)


class HTTPBackend:
    """A ``GenerationBackend`` that asks a remote OpenAI-compatible server (see the module doc)."""

    def __init__(self, config: HTTPBackendConfig, sleep=time.sleep) -> None:
        self.config = config
        self.root = api_root(config.base_url)
        path = "completions" if config.endpoint == "completions" else "chat/completions"
        self.url = f"{self.root}/{path}"
        if config.api_key_env is not None and not os.environ.get(config.api_key_env):
            raise HTTPBackendError(f"API key variable {config.api_key_env} is not set or empty")
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HTTPBackend(url={self.url!r}, model={self.config.model!r})"

    @property
    def takes_images(self) -> bool:
        """The chat endpoint sends images as OpenAI image parts; completions take text only."""
        return self.config.endpoint == "chat"

    # public -----------------------------------------------------------------------------------------
    def generate(self, prompts: list[str], params: SamplingParams,
                 images: list[bytes | None] | None = None) -> HTTPRollouts:
        """One completion per prompt, in prompt order. With ``params.seed`` set, row i asks for
        seed ``seed + i`` so that repeated prompts (a GRPO group) still get different samples.

        ``images`` (chat endpoint only): one PNG/JPEG (bytes) or None per prompt; a row with an
        image sends the user turn the OpenAI way, as a text part and an ``image_url`` part holding
        a ``data:`` URL."""
        if not prompts:
            raise ValueError("generate needs at least one prompt")
        if images is not None and len(images) != len(prompts):
            raise HTTPBackendError(f"{len(prompts)} prompts but {len(images)} images")
        if images is not None and any(img is not None for img in images) and self.config.endpoint != "chat":
            raise HTTPBackendError("images need the chat endpoint (endpoint: chat); completions take text only")
        bodies = [self._body(p, params, i) for i, p in enumerate(prompts)]
        for body, image in zip(bodies, images or ()):
            if image is not None:
                body["messages"][-1]["content"] = _image_content(body["messages"][-1]["content"], image)
        if len(bodies) == 1 or self.config.max_workers == 1:
            replies = [self._complete(b) for b in bodies]
        else:
            with ThreadPoolExecutor(max_workers=min(self.config.max_workers, len(bodies))) as pool:
                replies = list(pool.map(self._complete, bodies))
        return self._rollouts(replies)

    # requests ---------------------------------------------------------------------------------------
    def _body(self, prompt: str, params: SamplingParams, row: int) -> dict[str, Any]:
        cfg = self.config
        body: dict[str, Any] = {
            "model": cfg.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.top_k > 0:
            body["top_k"] = params.top_k
        if params.seed is not None:
            body["seed"] = int(params.seed) + row
        if cfg.stop:
            body["stop"] = list(cfg.stop)
        if cfg.endpoint == "completions":
            body["prompt"] = prompt + cfg.prompt_suffix
            if cfg.logprobs:
                body["logprobs"] = 1
        else:
            messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
            body["messages"] = [*messages, {"role": "user", "content": prompt}]
            if cfg.logprobs:
                body["logprobs"] = True
        body.update(cfg.extra_body)
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.config.api_key_env is not None:
            key = os.environ.get(self.config.api_key_env, "")
            if not key:
                raise HTTPBackendError(f"API key variable {self.config.api_key_env} is not set or empty")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _scrub(self, text: str) -> str:
        key = os.environ.get(self.config.api_key_env, "") if self.config.api_key_env else ""
        return text.replace(key, "***") if key else text

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        cfg = self.config
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), cfg.backoff_max_s)
            except ValueError:
                pass
        base = min(cfg.backoff_s * (2**attempt), cfg.backoff_max_s)
        return base * (0.5 + random.random() / 2)

    def _post(self, body: dict[str, Any]) -> bytes:
        """The raw reply body of one POST, after retries; raises ``HTTPBackendError``."""
        data = json.dumps(body).encode("utf-8")
        last = "no attempt made"
        retry_after: str | None = None
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self._sleep(self._delay(attempt - 1, retry_after))
                retry_after = None
            request = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
            deadline = _Deadline(self.config.timeout_s)
            try:
                with deadline, _opener(deadline).open(request, timeout=self.config.timeout_s) as response:
                    raw = response.read(self.config.max_reply_bytes + 1)
                if deadline.expired:
                    raise TimeoutError
                if len(raw) > self.config.max_reply_bytes:
                    raise HTTPBackendError(
                        f"{self.url}: reply larger than max_reply_bytes={self.config.max_reply_bytes}")
                return raw
            except urllib.error.HTTPError as exc:
                detail = exc.read(4096).decode("utf-8", "replace") if exc.fp is not None else ""
                last = f"HTTP {exc.code} {exc.reason}: {_one_line(self._scrub(detail))}".rstrip(": ")
                if exc.code not in RETRY_STATUSES:
                    raise HTTPBackendError(f"{self.url}: {last}") from None
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
            except TimeoutError:
                last = f"timed out after {self.config.timeout_s:g} s"
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, TimeoutError):
                    last = f"timed out after {self.config.timeout_s:g} s"
                else:
                    last = f"cannot connect: {_one_line(str(reason))}"
            except (OSError, http.client.HTTPException) as exc:
                last = f"connection failed: {_one_line(type(exc).__name__ + ' ' + str(exc))}"
            if deadline.expired:
                last = f"timed out after {self.config.timeout_s:g} s"
        tries = self.config.max_retries + 1
        raise HTTPBackendError(f"{self.url}: {last} (gave up after {tries} attempt{'s' * (tries > 1)})")

    def _complete(self, body: dict[str, Any]) -> _Reply:
        raw = self._post(body)
        try:
            reply = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            snippet = _one_line(self._scrub(raw[:200].decode("utf-8", "replace")), 60)
            raise HTTPBackendError(f"{self.url}: reply is not JSON (starts {snippet!r})") from None
        try:
            return self._parse(reply)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise HTTPBackendError(
                f"{self.url}: reply is not a {self.config.endpoint} completion ({type(exc).__name__}: {_one_line(str(exc), 60)})"
            ) from None

    def _parse(self, reply: dict[str, Any]) -> _Reply:
        if "error" in reply and "choices" not in reply:
            raise ValueError(f"server error {_one_line(self._scrub(json.dumps(reply['error'])), 80)}")
        choice = reply["choices"][0]
        finished = choice.get("finish_reason") == "stop"
        info = choice.get("logprobs") or None
        tokens: list[str] = []
        logps: list[float] | None = None
        if self.config.endpoint == "completions":
            text = choice["text"]
            if info and info.get("token_logprobs") is not None:
                tokens = [str(t) for t in info.get("tokens") or []]
                logps = [_finite_logprob(v) if v is not None else 0.0 for v in info["token_logprobs"]]
        else:
            text = choice["message"].get("content") or ""
            if info and info.get("content") is not None:
                tokens = [str(item.get("token", "")) for item in info["content"]]
                logps = [_finite_logprob(item["logprob"]) for item in info["content"]]
        if not isinstance(text, str):
            raise TypeError("completion text is not a string")
        if logps is not None and len(tokens) != len(logps):
            tokens = tokens[: len(logps)] + [""] * max(0, len(logps) - len(tokens))
        return _Reply(text=text, tokens=tokens, logprobs=logps, finished=finished)

    # the batch --------------------------------------------------------------------------------------
    @staticmethod
    def _rollouts(replies: list[_Reply]) -> HTTPRollouts:
        b = len(replies)
        width = max((len(r.logprobs) for r in replies if r.logprobs is not None), default=0)
        completion_ids = torch.full((b, width), UNKNOWN_TOKEN, dtype=torch.long)
        completion_mask = torch.zeros((b, width), dtype=torch.bool)
        behaviour = torch.zeros((b, width), dtype=torch.float32)
        for i, r in enumerate(replies):
            if r.logprobs:
                n = len(r.logprobs)
                completion_mask[i, :n] = True
                behaviour[i, :n] = torch.tensor(r.logprobs, dtype=torch.float32)
        return HTTPRollouts(
            prompt_ids=torch.zeros((b, 0), dtype=torch.long),
            prompt_mask=torch.zeros((b, 0), dtype=torch.bool),
            completion_ids=completion_ids,
            completion_mask=completion_mask,
            behaviour_logp=behaviour,
            texts=[r.text for r in replies],
            step_spans=[],
            finished=torch.tensor([r.finished for r in replies], dtype=torch.bool),
            tokens=[list(r.tokens) if r.logprobs is not None else [] for r in replies],
        )
