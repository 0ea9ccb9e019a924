"""Can a vision-language policy read a colour off a picture at all? The smallest perception test.

Each picture is a white 128x128 canvas with one coloured square (six colours) and the question is
always "What colour is the shape?", so the picture is the only source of the answer and chance is
1/6. Two layouts: ``fill`` (the whole canvas is the colour) and ``object`` (a 16-pixel square in
one of the 16 cells of a 4x4 grid, the size and placement of the image environments' objects).
A third layout, ``curriculum``, trains on squares that shrink from the whole canvas to 16 pixels
over the first three quarters of the steps (placed at random), and is evaluated like ``object``.
For each seed the tiny VLM (``--image-size``, ``--vision-layers``, ``--vision-hidden``,
``--text-hidden``) is trained with the supervised loss for ``--steps`` steps of ``--batch``
pictures, then answers ``--eval`` fresh pictures greedily. Prints one JSON line: per layout, the
per-seed accuracy and its mean with a 95% interval.

    PYTHONPATH=src python benchmarks/vision_perception.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import torch

from worldsmith.eval.stats import mean_interval
from worldsmith.vision.images import png_bytes
from worldsmith.vision.perception import side_at
from worldsmith.vision.vlm import TinyVLMConfig, VisionPolicy, build_tiny_vlm

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 60, 220), "yellow": (230, 200, 30),
           "purple": (140, 50, 170), "orange": (240, 140, 20)}
QUESTION = "What colour is the shape?"


def picture(colour: str, layout: str, rng: random.Random, side: int = 16) -> bytes:
    """A white canvas with the whole of it (``fill``) or one ``side``-pixel square coloured: in a
    grid cell for ``object``, anywhere for ``curriculum``."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (128, 128), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if layout == "fill":
        draw.rectangle([0, 0, 127, 127], fill=COLOURS[colour])
    elif layout == "curriculum":
        x, y = rng.randrange(129 - side), rng.randrange(129 - side)
        draw.rectangle([x, y, x + side - 1, y + side - 1], fill=COLOURS[colour])
    else:
        x, y = rng.randrange(4) * 32 + 8, rng.randrange(4) * 32 + 8
        draw.rectangle([x, y, x + 15, y + 15], fill=COLOURS[colour])
    return png_bytes(canvas)


def run(args: argparse.Namespace, layout: str, seed: int) -> float:
    cfg = TinyVLMConfig(image_size=args.image_size, vision_layers=args.vision_layers,
                        vision_hidden=args.vision_hidden, text_hidden=args.text_hidden)
    model, processor = build_tiny_vlm(cfg, seed=seed)
    policy = VisionPolicy(model, processor)
    rng = random.Random(seed)
    names = list(COLOURS)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    model.train()
    for step in range(args.steps):
        colours = [rng.choice(names) for _ in range(args.batch)]
        side = side_at(step, args.steps)
        logp, mask = policy.sequence_logprobs([QUESTION] * args.batch, [picture(c, layout, rng, side) for c in colours],
                                              [f"<answer>{c}</answer>" for c in colours])
        loss = -logp.sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % max(1, args.steps // 4) == 0:
            print(f"{layout} seed {seed} step {step + 1}/{args.steps} loss {loss.item():.3f}", file=sys.stderr)
    model.eval()
    colours = [rng.choice(names) for _ in range(args.eval)]
    shown = "fill" if layout == "fill" else "object"  # the curriculum is evaluated on the small squares
    answers = policy.generate([QUESTION] * args.eval, [picture(c, shown, rng) for c in colours],
                              max_new_tokens=16, temperature=0.0)
    return sum(a == f"<answer>{c}</answer>" for a, c in zip(answers, colours)) / args.eval


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--layouts", default="fill,object")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval", type=int, default=64)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--vision-layers", type=int, default=2)
    p.add_argument("--vision-hidden", type=int, default=64)
    p.add_argument("--text-hidden", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    out = {"benchmark": "vision_perception", "chance": 1 / len(COLOURS), "steps": args.steps, "batch": args.batch,
           "lr": args.lr, "model": {"image_size": args.image_size, "vision_layers": args.vision_layers,
                                    "vision_hidden": args.vision_hidden, "text_hidden": args.text_hidden},
           "layouts": {}}
    for layout in args.layouts.split(","):
        values = [run(args, layout, s) for s in seeds]
        out["layouts"][layout] = {"per_seed": values, "accuracy": mean_interval(values).to_json()}
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
