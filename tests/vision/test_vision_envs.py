"""The image environments: pictures that show their scenes, images as JSON-safe PNG bytes, and the
guarded decoder (missing, corrupt, oversized input). The contract battery runs on them through
tests/envs/test_contract.py, which covers every registered environment."""

import base64
import io
import json

import pytest
from PIL import Image

from worldsmith import envs
from worldsmith.envs.contract import split_seed
from worldsmith.vision import images
from worldsmith.vision.envs import COLOURS, VISION_ENVIRONMENTS, parse_claim


def _components(image: Image.Image, rgb: tuple[int, int, int]) -> int:
    """Connected regions of exactly ``rgb`` (4-neighbour flood fill): a perception oracle that reads
    the picture, not the scene."""
    w, h = image.size
    px = image.load()
    seen: set[tuple[int, int]] = set()
    count = 0
    for y in range(h):
        for x in range(w):
            if (x, y) in seen or px[x, y] != rgb:
                continue
            count += 1
            stack = [(x, y)]
            seen.add((x, y))
            while stack:
                cx, cy = stack.pop()
                for nx, ny in ((cx + 1, cy), (cx - 1, cy), (cx, cy + 1), (cx, cy - 1)):
                    if 0 <= nx < w and 0 <= ny < h and (nx, ny) not in seen and px[nx, ny] == rgb:
                        seen.add((nx, ny))
                        stack.append((nx, ny))
    return count


def test_the_count_picture_shows_the_counted_objects():
    env = envs.get("vis_count")
    for i in range(6):
        inst = env.sample(split_seed("train", i), 0.5)
        picture = images.instance_image(inst.data)
        for colour in inst.data["scene"]["asked"]:
            truth = sum(o["colour"] == colour for o in inst.data["scene"]["objects"])
            assert _components(picture, COLOURS[colour]) == truth
            assert f"{colour} objects = {truth}" in env.steps(inst.data)


@pytest.mark.parametrize("name", VISION_ENVIRONMENTS)
def test_instances_carry_png_bytes_that_survive_json(name):
    env = envs.get(name)
    inst = env.sample(split_seed("eval", 3), 1.0)
    again = json.loads(json.dumps(inst.to_json()))
    png = base64.b64decode(again["data"]["image"]["png_b64"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    picture = images.decode(png)
    assert list(picture.size) == [inst.data["image"]["width"], inst.data["image"]["height"]]
    assert len(picture.getcolors(maxcolors=1 << 16)) > 2  # something is drawn on the white canvas
    assert env.image_png(inst.data["scene"]) == png  # the picture is a function of the scene
    assert inst.split == "eval" and "scene " in inst.prompt


@pytest.mark.parametrize("name", VISION_ENVIRONMENTS)
def test_program_is_the_solution_and_steps_follow_the_trace(name):
    env = envs.get(name)
    inst = env.sample(split_seed("train", 5), 1.0)
    namespace: dict = {}
    exec(env.program(inst.data), {}, namespace)  # our own reference program, not a response
    assert str(namespace["answer"]) == inst.reference
    for step, fact in zip(env.steps(inst.data), env.trace(inst.data["scene"])):
        assert parse_claim(step) == (fact.var, fact.value)
        assert namespace[fact.var] == fact.value


def test_different_scenes_with_the_same_question_are_different_problems():
    env = envs.get("vis_geometry")
    questions: dict[str, set[int]] = {}
    for i in range(40):
        inst = env.sample(split_seed("train", i), 0.0)
        questions.setdefault(env.question(inst.data["scene"]), set()).add(inst.problem_id)
    assert max(len(ids) for ids in questions.values()) > 5


def test_decode_refuses_missing_corrupt_foreign_and_huge_images(monkeypatch):
    png = images.png_bytes(Image.new("RGB", (8, 8), (1, 2, 3)))
    assert images.decode(png).getpixel((0, 0)) == (1, 2, 3)
    assert images.decode(images.to_b64(png)).size == (8, 8)
    cases = {"missing": None, "empty": b"", "not base64": "%%%", "truncated": png[:30],
             "garbage": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64}
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    cases["gif"] = gif.getvalue()
    for label, data in cases.items():
        with pytest.raises(images.BadImage):
            images.decode(data)
        assert label
    big = images.png_bytes(Image.new("RGB", (300, 300)))
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 256 * 256)
    with pytest.raises(images.BadImage, match="exceeds"):
        images.decode(big)
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(images.BadImage, match="larger than"):
        images.decode(big)
    with pytest.raises(images.BadImage, match="missing"):
        images.instance_image({"scene": {}})
