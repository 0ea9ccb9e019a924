"""Vision-language policies: the tiny LLaVA built from config generates from images on CPU, the
image changes what it computes, a saved folder loads back through the generic Auto classes, and
the HTTP backend sends images as OpenAI image_url parts to a real local server."""

import base64
import json

import pytest
import torch
from local_server import LocalServerDouble, QuietHandler

from worldsmith import envs
from worldsmith.envs.contract import split_seed
from worldsmith.policy.backend import SamplingParams
from worldsmith.policy.http_backend import HTTPBackend, HTTPBackendConfig, HTTPBackendError
from worldsmith.vision.images import BadImage, from_b64
from worldsmith.vision.vlm import VisionPolicy, build_tiny_vlm, load_vlm

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_tiny_vlm(seed=0)
    return VisionPolicy(model, processor)


def _pngs(n=2):
    env = envs.get("vis_count")
    insts = [env.sample(split_seed("train", i), 0.5) for i in range(n)]
    return insts, [from_b64(i.data["image"]["png_b64"]) for i in insts]


def test_tiny_vlm_generates_from_images_and_the_image_matters(tiny):
    insts, pngs = _pngs()
    prompt = insts[0].prompt
    texts = tiny.generate([prompt, prompt, prompt], [pngs[0], pngs[1], None], max_new_tokens=6, temperature=1.0, seed=3)
    assert len(texts) == 3 and all(isinstance(t, str) and t for t in texts)
    with torch.no_grad():
        logits = [tiny.model(**tiny.encode([prompt], [png])).logits[0, -1] for png in (pngs[0], pngs[1])]
    assert not torch.allclose(logits[0], logits[1])  # the picture reaches the language model
    image_id = tiny.processor.tokenizer.convert_tokens_to_ids("<image>")
    ids = tiny.encode([prompt, prompt], [pngs[0], None])["input_ids"]
    assert (ids[0] == image_id).sum() == 16 and (ids[1] == image_id).sum() == 0
    with pytest.raises(BadImage):
        tiny.generate([prompt], [b"not an image"], max_new_tokens=2)


def test_completion_logprobs_are_differentiable_through_the_vision_tower(tiny):
    insts, pngs = _pngs(1)
    logp, mask = tiny.sequence_logprobs([insts[0].prompt], [pngs[0]], ["<answer>3</answer>"])
    assert mask.sum().item() == 4  # <answer>, 3, </answer>, <eos>
    tiny.model.zero_grad()
    (-(logp.sum())).backward()
    grad = next(p for n, p in tiny.model.named_parameters() if "patch_embedding" in n).grad
    assert grad is not None and grad.abs().sum() > 0
    tiny.model.zero_grad()


def test_saved_tiny_vlm_loads_through_the_auto_classes(tiny, tmp_path):
    insts, pngs = _pngs(1)
    tiny.save(tmp_path / "vlm")
    again = load_vlm(tmp_path / "vlm")
    args = ([insts[0].prompt], [pngs[0]])
    assert again.generate(*args, max_new_tokens=6, temperature=0.0) == tiny.generate(*args, max_new_tokens=6, temperature=0.0)
    with pytest.raises(FileNotFoundError):
        load_vlm(tmp_path / "missing")


class _ChatHandler(QuietHandler):
    def do_POST(self):  # noqa: N802  (the http.server naming)
        body = self.read_json()
        self.server.bodies.append(body)
        content = body["messages"][-1]["content"]
        kinds = [part["type"] for part in content] if isinstance(content, list) else ["string"]
        reply = {"choices": [{"message": {"role": "assistant", "content": "saw " + "+".join(kinds)},
                              "finish_reason": "stop"}]}
        self.send(200, json.dumps(reply).encode())


def test_http_backend_sends_images_as_openai_image_url_parts():
    _, pngs = _pngs(1)
    with LocalServerDouble(_ChatHandler) as server:
        server.bodies = []
        backend = HTTPBackend(HTTPBackendConfig(base_url=server.url, model="m", endpoint="chat", logprobs=False,
                                                max_workers=1))
        out = backend.generate(["q1", "q2"], SamplingParams(max_new_tokens=4), images=[pngs[0], None])
        assert out.texts == ["saw text+image_url", "saw string"]
        part = server.bodies[0]["messages"][-1]["content"][1]["image_url"]["url"]
        assert part.startswith("data:image/png;base64,") and base64.b64decode(part.split(",", 1)[1]) == pngs[0]
        with pytest.raises(HTTPBackendError, match="PNG or JPEG"):
            backend.generate(["q"], SamplingParams(max_new_tokens=4), images=[b"GIF89a..."])
        with pytest.raises(HTTPBackendError, match="images"):
            backend.generate(["q", "r"], SamplingParams(max_new_tokens=4), images=[pngs[0]])
        text_only = HTTPBackend(HTTPBackendConfig(base_url=server.url, model="m", endpoint="completions"))
        with pytest.raises(HTTPBackendError, match="chat endpoint"):
            text_only.generate(["q"], SamplingParams(max_new_tokens=4), images=[pngs[0]])
