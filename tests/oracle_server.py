"""``OracleServerDouble``: a test double of an OpenAI-compatible model server that knows the answers.

It serves ``/v1/completions`` and ``/v1/chat/completions`` (plain JSON, or server-sent events ending
in ``data: [DONE]`` when the request says ``stream``) on 127.0.0.1 and answers each known problem
right when its identity is even and wrong otherwise (``answers_right``), so the accuracy a client
should measure is known exactly. A completions prompt counts as known only with the newline a
worldsmith policy without a chat template reads after its prompt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from local_server import LocalServerDouble, QuietHandler

from worldsmith import envs


def answers_right(inst: envs.Instance) -> bool:
    """The double's rule: right on problems with an even identity, wrong on the others."""
    return inst.problem_id % 2 == 0


def reply_text(inst: envs.Instance | None) -> str:
    if inst is None:
        return "I do not know"
    return f"<answer>{inst.reference if answers_right(inst) else inst.reference + '1'}</answer>"


class _OracleHandler(QuietHandler):
    server: OracleServerDouble

    def do_GET(self):  # noqa: N802  (the http.server naming)
        if self.path.rstrip("/") == "/v1/models":
            return self.send(200, {"object": "list", "data": [{"id": "oracle", "object": "model"}]})
        return self.send(404, {"error": {"message": "not found"}})

    def do_POST(self):  # noqa: N802
        body = self.read_json()
        srv = self.server
        with srv.lock:
            srv.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if srv.key and self.headers.get("Authorization") != f"Bearer {srv.key}":
            return self.send(401, {"error": {"message": "bad key"}})
        chat = self.path == "/v1/chat/completions"
        if self.path == "/v1/completions":
            prompt = body["prompt"]
            known = srv.by_prompt.get(prompt[:-1]) if prompt.endswith("\n") else None
        elif chat:
            users = [m for m in body["messages"] if m.get("role") == "user"]
            content = users[-1]["content"] if users else ""
            if isinstance(content, list):  # content parts
                content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
            known = srv.by_prompt.get(content)
        else:
            return self.send(404, {"error": {"message": "not found"}})
        text = reply_text(known)
        usage = {"prompt_tokens": 10, "completion_tokens": len(text), "total_tokens": 10 + len(text)}
        if body.get("stream"):
            return self._stream(text, chat, usage)
        choice = {"index": 0, "finish_reason": "stop"}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        return self.send(200, {"id": "cmpl-oracle", "object": "chat.completion" if chat else "text_completion",
                               "created": int(time.time()), "model": body.get("model", "oracle"),
                               "choices": [choice], "usage": usage})

    def _stream(self, text: str, chat: bool, usage: dict) -> None:
        base = {"id": "cmpl-oracle", "object": "chat.completion.chunk" if chat else "text_completion",
                "created": int(time.time()), "model": "oracle"}
        if chat:
            chunks = [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None},
                      {"index": 0, "delta": {"content": text}, "finish_reason": None},
                      {"index": 0, "delta": {}, "finish_reason": "stop"}]
        else:
            chunks = [{"index": 0, "text": text, "finish_reason": None}, {"index": 0, "text": "", "finish_reason": "stop"}]
        events = [{**base, "choices": [c]} for c in chunks] + [{**base, "choices": [], "usage": usage}]
        data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class OracleServerDouble(LocalServerDouble):
    """A test double of an OpenAI-compatible server that knows ``instances``' references."""

    def __init__(self, instances: Iterable[envs.Instance], key: str | None = None) -> None:
        super().__init__(_OracleHandler)
        self.key = key
        self.requests: list[dict] = []
        self.by_prompt = {inst.prompt: inst for inst in instances}
