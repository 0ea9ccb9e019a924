"""One-object pictures for teaching and testing perception: "What colour is the shape?"

A picture is a white 128x128 canvas with one coloured object, drawn in the image environments'
palette, so the picture is the only source of the answer (chance 1/6). Layouts:

- ``fill``: the whole canvas is the colour;
- ``object``: a 16-pixel square in one of the 16 cells of a 4x4 grid (the environments' object size
  and placement);
- ``curriculum``: a square, circle or triangle of a given side anywhere on the canvas.

``perception_pretrain`` teaches a vision-language policy to read one object's colour with a
curriculum whose objects shrink from the whole canvas to ``end_side`` pixels over the first three
quarters of the steps: a small model that cannot find a 16-pixel object from the start learns to
while the object shrinks (docs/vision.md, the perception test).
"""

from __future__ import annotations

import random

from worldsmith.vision.envs import COLOURS
from worldsmith.vision.images import png_bytes

QUESTION = "What colour is the shape?"
LAYOUTS = ("fill", "object", "curriculum")


def picture(colour: str, layout: str, rng: random.Random, side: int = 16) -> bytes:
    """PNG bytes of one picture of ``layout`` (see the module doc)."""
    from PIL import Image, ImageDraw

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    canvas = Image.new("RGB", (128, 128), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    fill = COLOURS[colour]
    if layout == "fill":
        draw.rectangle([0, 0, 127, 127], fill=fill)
    elif layout == "object":
        x, y = rng.randrange(4) * 32 + 8, rng.randrange(4) * 32 + 8
        draw.rectangle([x, y, x + 15, y + 15], fill=fill)
    else:
        side = max(2, min(128, side))
        x, y = rng.randrange(129 - side), rng.randrange(129 - side)
        box = [x, y, x + side - 1, y + side - 1]
        shape = rng.choice(("square", "circle", "triangle"))
        if shape == "square":
            draw.rectangle(box, fill=fill)
        elif shape == "circle":
            draw.ellipse(box, fill=fill)
        else:
            draw.polygon([(x + side // 2, y), (x, y + side - 1), (x + side - 1, y + side - 1)], fill=fill)
    return png_bytes(canvas)


def side_at(step: int, steps: int, end_side: int = 16) -> int:
    """The curriculum's object side at ``step``: 128 pixels down to ``end_side`` over 3/4 of ``steps``."""
    shrink = max(1, int(0.75 * steps))
    return max(end_side, round(128 - (128 - end_side) * step / shrink))


def perception_pretrain(policy, steps: int, batch_size: int = 16, lr: float = 2e-3, seed: int = 0,
                        end_side: int = 12, progress: bool = True) -> dict:
    """Teach ``policy`` (a ``VisionPolicy``) to answer ``QUESTION`` about one object whose side shrinks
    from 128 to ``end_side`` pixels; the supervised loss on ``<answer>colour</answer>``. Returns
    ``{"steps", "final_loss", "seconds"}`` (final: the mean over the last tenth of the steps)."""
    from worldsmith.vision.vlm import supervise, tenth_means

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    rng = random.Random(seed)
    names = sorted(COLOURS)

    def batch(step: int):
        colours = [rng.choice(names) for _ in range(batch_size)]
        side = side_at(step, steps, end_side)
        return ([QUESTION] * batch_size, [picture(c, "curriculum", rng, side) for c in colours],
                [f"<answer>{c}</answer>" for c in colours])

    losses, seconds = supervise(policy, batch, steps, lr, desc="perception", progress=progress,
                                postfix=lambda step: {"side": side_at(step, steps, end_side)})
    return {"steps": steps, "final_loss": tenth_means(losses)[1], "seconds": seconds}
