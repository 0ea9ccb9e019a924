"""Environments whose instances carry an image rendered with Pillow from an exact scene description.

Every visual fact is known because the picture is drawn from the scene, never the other way round:
``generate`` builds a scene (objects, bars, a table, a figure), draws it, and stores both the scene
and the PNG (base64, ``data["image"]``). The contract is the text-only one (``Environment``): the
prompt names the scene by a short hash (so equal questions about different pictures are different
problems, and problem-identity splits stay exact) and asks for ``name = value`` lines.

Each instance has a *trace*: facts in order, each a ``Fact(key, value, stage, expr)``.
``stage`` is ``"perception"`` (read off the image: a count, a colour, a bar, a cell, a label) or
``"reasoning"`` (computed from earlier facts by ``expr``, a Python expression over their
variable names). The last fact is the answer. From the trace come

- ``steps``: ``"key = value"`` lines, checked in order by ``check_step``;
- ``facts``: key -> fact, used to check any claimed line of a free-form response (vision.verify);
- ``program``: the executable form of the solution (constants for perceived facts, expressions for
  computed ones, ``answer = ...``), run in the sandbox by the executable-level check.

Five environments: ``vis_count`` (counting by colour), ``vis_relation`` (spatial / size relations),
``vis_chart`` (reading and comparing bars), ``vis_table`` (table look-up) and ``vis_geometry``
(lengths, angles and areas with exact integer answers).
"""

from __future__ import annotations

import functools
import json
import random
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from worldsmith.envs.answers import parse_int
from worldsmith.envs.contract import Environment, lerp_int, prompt_of, stable_hash
from worldsmith.envs.registry import register
from worldsmith.vision.images import png_bytes, to_b64

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220),
    "yellow": (235, 200, 20), "purple": (140, 40, 170), "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 6, "medium": 9, "large": 13}
STAGES = ("perception", "reasoning")
#: How a response should state its trace; part of every prompt of these environments.
TRACE_HINT = "Write each fact you read and each value you compute on its own line as name = value."
_KEY_RE = re.compile(r"[^a-z0-9]+")
#: Per thread: whether ``generate`` leaves the picture to ``sample`` (see ``ImageEnvironment.sample``).
_DRAWING = threading.local()
#: How many recent pictures ``ImageEnvironment.image_of`` keeps (about 2 KB each).
IMAGE_CACHE = 4096
_IMAGES: OrderedDict[tuple[str, str], dict] = OrderedDict()
_IMAGES_LOCK = threading.Lock()


@dataclass(frozen=True)
class Fact:
    """One step of a trace: ``key = value`` at a stage; ``expr`` computes a reasoning fact."""

    key: str
    value: int | str
    stage: str
    expr: str | None = None

    @property
    def var(self) -> str:
        return variable(self.key)


def variable(key: str) -> str:
    """The program variable of a fact key: ``"red objects"`` -> ``red_objects``."""
    return _KEY_RE.sub("_", key.strip().lower()).strip("_")


def parse_value(text: str) -> int | str | None:
    """A claimed value: a decimal integer, or one lower-case word; None when neither."""
    text = text.strip()
    number = parse_int(text)
    if number is not None:
        return number
    word = text.lower()
    return word if word.isalpha() and len(word) <= 20 else None


def parse_claim(line: str) -> tuple[str, int | str] | None:
    """``(variable, value)`` of a ``name = value`` line, or None when the line is not one."""
    if not isinstance(line, str) or line.count("=") != 1 or len(line) > 200:
        return None
    name, _, value = line.partition("=")
    var, parsed = variable(name), parse_value(value)
    if not var or parsed is None:
        return None
    return var, parsed


@functools.lru_cache(maxsize=1)
def _font(size: int = 11):
    """Pillow's built-in bitmap font, loaded once (``size`` is nominal: the bitmap font has one).

    The bitmap font draws text about twenty times faster than the scalable one, and every sample
    (every redraw across the problem splits) renders its picture."""
    from PIL import ImageFont

    return ImageFont.load_default_imagefont()


class ImageEnvironment(Environment):
    """Base of the image environments: a scene, its drawing, its trace.

    Subclasses implement ``build(rng, difficulty) -> scene`` (JSON), ``draw(scene, canvas)``,
    ``question(scene) -> str`` and ``trace(scene) -> list[Fact]``.
    """

    oracle = "equality"
    answer_format = "the integer"
    canvas_size: tuple[int, int] = (128, 128)

    # --- what a subclass writes ---------------------------------------------------------------
    def build(self, rng: random.Random, difficulty: float) -> dict:
        raise NotImplementedError

    def draw(self, scene: dict, canvas) -> None:
        raise NotImplementedError

    def question(self, scene: dict) -> str:
        raise NotImplementedError

    def trace(self, scene: dict) -> list[Fact]:
        raise NotImplementedError

    # --- the contract -------------------------------------------------------------------------
    def image_png(self, scene: dict) -> bytes:
        """The PNG of a scene: white canvas, then ``draw``. Deterministic for a Pillow version."""
        from PIL import Image, ImageDraw

        # a palette canvas: the scenes use a handful of colours, and PNG encodes it three times faster
        image = Image.new("P", tuple(scene.get("size", self.canvas_size)), (255, 255, 255))
        self.draw(scene, ImageDraw.Draw(image))
        return png_bytes(image)

    def generate(self, rng: random.Random, difficulty: float) -> dict:
        scene = self.build(rng, difficulty)
        scene.setdefault("size", list(self.canvas_size))
        if getattr(_DRAWING, "deferred", False):
            return {"scene": scene}
        return {"scene": scene, "image": self.image_of(scene)}

    def image_of(self, scene: dict) -> dict:
        """The instance's image entry: the scene's PNG as base64, with its size.

        Recent pictures are kept (``IMAGE_CACHE`` scenes per process): evaluation and the contract
        battery sample the same seeds again and again, and drawing is most of a sample's cost."""
        key = (self.name, json.dumps(scene, sort_keys=True))
        with _IMAGES_LOCK:
            entry = _IMAGES.get(key)
            if entry is not None:
                _IMAGES.move_to_end(key)
                return dict(entry)
        width, height = scene["size"]
        entry = {"png_b64": to_b64(self.image_png(scene)), "width": width, "height": height}
        with _IMAGES_LOCK:
            _IMAGES[key] = entry
            while len(_IMAGES) > IMAGE_CACHE:
                _IMAGES.popitem(last=False)
        return dict(entry)

    def sample(self, seed: int, difficulty: float = 0.0):
        """The framework's ``sample``, drawing the picture once, for the accepted draw only.

        The split rule may redraw a scene several times (on average four times for an eval seed);
        the prompt, reference and split depend on the scene alone, so the picture is drawn after
        the draw is accepted. The instance equals what ``generate`` + the framework would give."""
        _DRAWING.deferred = True
        try:
            inst = super().sample(seed, difficulty)
        finally:
            _DRAWING.deferred = False
        inst.data["image"] = self.image_of(inst.data["scene"])
        return inst

    def scene_tag(self, instance: dict) -> str:
        """A short hash of the scene: the prompt's name for the picture."""
        return f"{stable_hash(self.name, json.dumps(instance['scene'], sort_keys=True)):016x}"[:8]

    def render(self, instance: dict) -> str:
        body = f"Look at the image (scene {self.scene_tag(instance)}). {self.question(instance['scene'])}\n{TRACE_HINT}"
        return prompt_of(body, self.answer_format)

    def solve(self, instance: dict) -> str:
        return str(self.trace(instance["scene"])[-1].value)

    def score(self, instance: dict, answer: str) -> float:
        if not isinstance(answer, str):
            return 0.0
        expected = self.trace(instance["scene"])[-1].value
        if isinstance(expected, int):
            return float(parse_int(answer) == expected)
        return float(answer.strip().lower() == expected)

    def steps(self, instance: dict) -> list[str]:
        return [f"{f.key} = {f.value}" for f in self.trace(instance["scene"])]

    def check_step(self, instance: dict, previous_steps: list[str], step: str) -> bool:
        trace = self.trace(instance["scene"])
        k = len(previous_steps)
        claim = parse_claim(step)
        return k < len(trace) and claim is not None and claim == (trace[k].var, trace[k].value)

    # --- what the verifier uses -----------------------------------------------------------------
    def facts(self, instance: dict) -> dict[str, Fact]:
        """Every checkable fact of the instance by variable name (the trace, answer included)."""
        return {f.var: f for f in self.trace(instance["scene"])}

    def program(self, instance: dict) -> str:
        """The executable form of the reference solution: perceived facts as constants, computed
        facts as expressions over them, and ``answer``."""
        lines = []
        trace = self.trace(instance["scene"])
        for f in trace:
            lines.append(f"{f.var} = {f.expr if f.expr else repr(f.value)}")
        lines.append(f"answer = {trace[-1].var}")
        return "\n".join(lines)

    def reference_response(self, instance: dict) -> str:
        """A complete response at all three levels: the trace, the program, the answer."""
        steps = "\n".join(self.steps(instance))
        return f"{steps}\n<program>\n{self.program(instance)}\n</program>\n{self.wrap(self.solve(instance))}"


# --- drawing helpers -----------------------------------------------------------------------------


def _draw_object(canvas, obj: dict) -> None:
    x, y, r = obj["x"], obj["y"], SIZES[obj["size"]]
    fill = COLOURS[obj["colour"]]
    if obj["shape"] == "circle":
        canvas.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    elif obj["shape"] == "square":
        canvas.rectangle([x - r, y - r, x + r, y + r], fill=fill)
    else:
        canvas.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)


def _place(rng: random.Random, n: int, grid: int = 4, cell: int = 32) -> list[tuple[int, int, int, int]]:
    """``n`` distinct grid cells ``(column, row, x, y)`` with a small jitter inside each cell."""
    cells = rng.sample([(c, r) for r in range(grid) for c in range(grid)], n)
    return [(c, r, c * cell + cell // 2 + rng.randint(-2, 2), r * cell + cell // 2 + rng.randint(-2, 2))
            for c, r in cells]


@register
class VisCount(ImageEnvironment):
    """Count objects of two colours in a scene of coloured shapes and add the counts.

    Difficulty: 3 to 12 objects, 2 to 6 colours. Steps: ``<c1> objects = a``,
    ``<c2> objects = b`` (perception), ``total = a + b`` (reasoning).
    """

    name = "vis_count"
    description = "Count the objects of two colours in a rendered scene and add the counts."

    def build(self, rng: random.Random, difficulty: float) -> dict:
        n = lerp_int(difficulty, 3, 12)
        palette = rng.sample(sorted(COLOURS), lerp_int(difficulty, 2, 6))
        objects = [{"shape": rng.choice(SHAPES), "colour": rng.choice(palette), "size": rng.choice(sorted(SIZES)),
                    "x": x, "y": y} for _, _, x, y in _place(rng, n)]
        asked = rng.sample(palette, 2)
        return {"objects": objects, "asked": asked}

    def draw(self, scene: dict, canvas) -> None:
        for obj in scene["objects"]:
            _draw_object(canvas, obj)

    def question(self, scene: dict) -> str:
        a, b = scene["asked"]
        return f"How many {a} objects and {b} objects are there in total?"

    def trace(self, scene: dict) -> list[Fact]:
        a, b = scene["asked"]
        na = sum(o["colour"] == a for o in scene["objects"])
        nb = sum(o["colour"] == b for o in scene["objects"])
        fa, fb = Fact(f"{a} objects", na, "perception"), Fact(f"{b} objects", nb, "perception")
        return [fa, fb, Fact("total", na + nb, "reasoning", f"{fa.var} + {fb.var}")]


RELATIONS = ("leftmost", "rightmost", "topmost", "bottommost", "largest", "smallest")


@register
class VisRelation(ImageEnvironment):
    """Name the colour of the shape that stands in a spatial or size relation to the others.

    Among the objects of one shape (distinct colours), which is leftmost / rightmost / topmost /
    bottommost / largest / smallest; the extreme is always unique. Difficulty: 3 to 10 objects, 2
    to 4 of the asked shape. Steps: ``<shape>s = k`` (perception, how many candidates),
    ``<relation> <shape> = <colour>`` (perception); the answer is the colour.
    """

    name = "vis_relation"
    description = "Name the colour of the leftmost/topmost/largest/... object of one shape in a rendered scene."
    answer_format = "the colour (one word)"

    def build(self, rng: random.Random, difficulty: float) -> dict:
        n = lerp_int(difficulty, 3, 10)
        k = min(n, lerp_int(difficulty, 2, 4))
        shape = rng.choice(SHAPES)
        others = [s for s in SHAPES if s != shape]
        while True:
            relation = rng.choice(RELATIONS)
            spots = _place(rng, n)
            colours = rng.sample(sorted(COLOURS), k)
            sizes = [rng.choice(sorted(SIZES)) for _ in range(k)]
            objects = [{"shape": shape, "colour": c, "size": s, "x": x, "y": y}
                       for c, s, (_, _, x, y) in zip(colours, sizes, spots[:k])]
            objects += [{"shape": rng.choice(others), "colour": rng.choice(sorted(COLOURS)),
                         "size": rng.choice(sorted(SIZES)), "x": x, "y": y} for _, _, x, y in spots[k:]]
            keys = [self._key(relation, o, spot) for o, spot in zip(objects[:k], spots[:k])]
            if keys.count(max(keys)) == 1:
                rng.shuffle(objects)
                return {"objects": objects, "shape": shape, "relation": relation}

    @staticmethod
    def _key(relation: str, obj: dict, spot: tuple | None = None) -> int:
        column, row = (spot[0], spot[1]) if spot else (obj["x"] // 32, obj["y"] // 32)
        return {"leftmost": -column, "rightmost": column, "topmost": -row, "bottommost": row,
                "largest": SIZES[obj["size"]], "smallest": -SIZES[obj["size"]]}[relation]

    def draw(self, scene: dict, canvas) -> None:
        for obj in scene["objects"]:
            _draw_object(canvas, obj)

    def question(self, scene: dict) -> str:
        return f"Among the {scene['shape']}s, what colour is the {scene['relation']} one?"

    def trace(self, scene: dict) -> list[Fact]:
        shape, relation = scene["shape"], scene["relation"]
        candidates = [o for o in scene["objects"] if o["shape"] == shape]
        best = max(candidates, key=lambda o: self._key(relation, o))
        return [Fact(f"{shape}s", len(candidates), "perception"),
                Fact(f"{relation} {shape}", best["colour"], "perception")]


LETTERS = "ABCDEFGH"


@register
class VisChart(ImageEnvironment):
    """Read two bars of a labelled bar chart and give their difference (larger minus smaller).

    Bars carry their value above them, so reading is exact. Difficulty: 3 to 8 bars, values up to
    9 to 60. Steps: ``<label1> = a``, ``<label2> = b`` (perception), ``difference = |a - b|``.
    """

    name = "vis_chart"
    description = "Read two bars of a rendered bar chart and give the larger minus the smaller."
    canvas_size = (192, 128)

    def build(self, rng: random.Random, difficulty: float) -> dict:
        k = lerp_int(difficulty, 3, 8)
        top = lerp_int(difficulty, 9, 60)
        values = [rng.randint(1, top) for _ in range(k)]
        a, b = rng.sample(range(k), 2)
        return {"labels": list(LETTERS[:k]), "values": values, "asked": [LETTERS[a], LETTERS[b]], "top": top,
                "colour": rng.choice(sorted(COLOURS))}

    def draw(self, scene: dict, canvas) -> None:
        width, height = scene["size"]
        font = _font(10)
        k = len(scene["values"])
        base, span = height - 16, height - 34
        slot = (width - 16) // k
        canvas.line([(8, base), (width - 8, base)], fill=(0, 0, 0))
        for i, (label, value) in enumerate(zip(scene["labels"], scene["values"])):
            x0 = 8 + i * slot + 3
            top = base - round(span * value / scene["top"])
            canvas.rectangle([x0, top, x0 + slot - 6, base], fill=COLOURS[scene["colour"]])
            canvas.text((x0 + 1, top - 12), str(value), fill=(0, 0, 0), font=font)
            canvas.text((x0 + 1, base + 2), label, fill=(0, 0, 0), font=font)

    def question(self, scene: dict) -> str:
        a, b = scene["asked"]
        return f"In the bar chart, what is the larger of bars {a} and {b} minus the smaller?"

    def trace(self, scene: dict) -> list[Fact]:
        a, b = scene["asked"]
        va, vb = (scene["values"][scene["labels"].index(x)] for x in (a, b))
        fa, fb = Fact(a, va, "perception"), Fact(b, vb, "perception")
        return [fa, fb, Fact("difference", abs(va - vb), "reasoning", f"abs({fa.var} - {fb.var})")]


ITEMS = ("apple", "pear", "plum", "fig", "kiwi", "lime", "date", "melon")
COLUMNS = ("price", "stock", "weight", "rating")


@register
class VisTable(ImageEnvironment):
    """Look up two cells of a rendered table (same column) and add them.

    Difficulty: 2 to 7 rows, 2 to 4 columns, values up to 20 to 99. Steps:
    ``<row1> <column> = a``, ``<row2> <column> = b`` (perception), ``sum = a + b`` (reasoning).
    """

    name = "vis_table"
    description = "Look up two cells of a rendered table and add them."
    canvas_size = (192, 128)

    def build(self, rng: random.Random, difficulty: float) -> dict:
        rows = rng.sample(ITEMS, lerp_int(difficulty, 2, 7))
        columns = list(COLUMNS[: lerp_int(difficulty, 2, 4)])
        top = lerp_int(difficulty, 20, 99)
        cells = [[rng.randint(1, top) for _ in columns] for _ in rows]
        r1, r2 = rng.sample(rows, 2)
        return {"rows": rows, "columns": columns, "cells": cells, "asked": [r1, r2, rng.choice(columns)],
                "size": [54 + 42 * len(columns), 16 * (len(rows) + 1) + 8]}

    def draw(self, scene: dict, canvas) -> None:
        font = _font(10)
        width = scene["size"][0]
        col_w = (width - 54) // len(scene["columns"])
        for j, column in enumerate(scene["columns"]):
            canvas.text((50 + j * col_w, 4), column, fill=(0, 0, 0), font=font)
        for i, (row, cells) in enumerate(zip(scene["rows"], scene["cells"])):
            y = 4 + 16 * (i + 1)
            canvas.line([(2, y - 2), (width - 2, y - 2)], fill=(160, 160, 160))
            canvas.text((4, y), row, fill=(0, 0, 0), font=font)
            for j, value in enumerate(cells):
                canvas.text((50 + j * col_w, y), str(value), fill=(0, 0, 0), font=font)

    def question(self, scene: dict) -> str:
        r1, r2, column = scene["asked"]
        return f"In the table, what is the {column} of {r1} plus the {column} of {r2}?"

    def trace(self, scene: dict) -> list[Fact]:
        r1, r2, column = scene["asked"]
        j = scene["columns"].index(column)
        v1, v2 = (scene["cells"][scene["rows"].index(r)][j] for r in (r1, r2))
        f1, f2 = Fact(f"{r1} {column}", v1, "perception"), Fact(f"{r2} {column}", v2, "perception")
        return [f1, f2, Fact("sum", v1 + v2, "reasoning", f"{f1.var} + {f2.var}")]


TRIPLES = ((3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25), (20, 21, 29), (9, 40, 41))
FIGURES = ("rectangle", "right_triangle", "angles", "l_shape")


@register
class VisGeometry(ImageEnvironment):
    """Exact geometry from a labelled diagram: a rectangle's area, a right triangle's hypotenuse,
    a triangle's third angle, an L-shape's area (the outer rectangle minus a corner cut).

    The figure kinds widen with difficulty (rectangle and right triangle at 0; triangle angles and
    the L-shape at 1) and so do the numbers. Labels are drawn on the figure; every answer is an
    integer. Steps: the labels read (perception), then the computed quantities (reasoning).
    """

    name = "vis_geometry"
    description = "Compute an exact length, angle or area from a rendered, labelled geometry diagram."

    def build(self, rng: random.Random, difficulty: float) -> dict:
        lo = lerp_int(difficulty, 0, 2)
        kind = rng.choice(FIGURES[lo: lo + 2])
        scale = lerp_int(difficulty, 3, 12)
        offset = [rng.randint(0, 12), rng.randint(0, 12)]
        if kind == "rectangle":
            return {"kind": kind, "w": rng.randint(2, 3 * scale), "h": rng.randint(2, 3 * scale), "offset": offset}
        if kind == "right_triangle":
            a, b, _ = rng.choice(TRIPLES[: 2 + lerp_int(difficulty, 0, 4)])
            k = rng.randint(1, max(1, scale // 2))
            return {"kind": kind, "a": a * k, "b": b * k, "offset": offset}
        if kind == "angles":
            x = rng.randint(20, 100)
            y = rng.randint(20, 160 - x)
            return {"kind": kind, "A": x, "B": y, "offset": offset}
        big_w, big_h = rng.randint(6, 4 * scale), rng.randint(6, 4 * scale)
        return {"kind": kind, "W": big_w, "H": big_h, "w": rng.randint(1, big_w - 2), "h": rng.randint(1, big_h - 2),
                "offset": offset}

    def draw(self, scene: dict, canvas) -> None:
        font = _font(11)
        ox, oy = scene["offset"]
        ink = (0, 0, 0)
        kind = scene["kind"]
        if kind == "rectangle":
            canvas.rectangle([20 + ox, 30 + oy, 100 + ox, 90 + oy], outline=ink, width=2)
            canvas.text((52 + ox, 92 + oy), str(scene["w"]), fill=ink, font=font)
            canvas.text((4 + ox, 55 + oy), str(scene["h"]), fill=ink, font=font)
        elif kind == "right_triangle":
            pts = [(20 + ox, 100 + oy), (100 + ox, 100 + oy), (20 + ox, 30 + oy)]
            canvas.polygon(pts, outline=ink, width=2)
            canvas.rectangle([20 + ox, 92 + oy, 28 + ox, 100 + oy], outline=ink)
            canvas.text((55 + ox, 102 + oy), str(scene["b"]), fill=ink, font=font)
            canvas.text((2 + ox, 60 + oy), str(scene["a"]), fill=ink, font=font)
            canvas.text((62 + ox, 55 + oy), "?", fill=ink, font=font)
        elif kind == "angles":
            pts = [(15 + ox, 100 + oy), (110 + ox, 100 + oy), (50 + ox, 25 + oy)]
            canvas.polygon(pts, outline=ink, width=2)
            canvas.text((22 + ox, 86 + oy), f"{scene['A']} deg", fill=ink, font=font)
            canvas.text((80 + ox, 86 + oy), f"{scene['B']} deg", fill=ink, font=font)
            canvas.text((46 + ox, 34 + oy), "?", fill=ink, font=font)
        else:
            big = [(15 + ox, 20 + oy), (105 + ox, 20 + oy), (105 + ox, 105 + oy), (15 + ox, 105 + oy)]
            cx, cy = 105 + ox - 35, 20 + oy + 35
            poly = [big[0], (cx, 20 + oy), (cx, cy), (105 + ox, cy), big[2], big[3]]
            canvas.polygon(poly, outline=ink, width=2)
            canvas.line([(cx, 20 + oy), (105 + ox, 20 + oy)], fill=(150, 150, 150))
            canvas.line([(105 + ox, 20 + oy), (105 + ox, cy)], fill=(150, 150, 150))
            canvas.text((45 + ox, 107 + oy), f"W={scene['W']}", fill=ink, font=font)
            canvas.text((0 + ox, 55 + oy), f"H={scene['H']}", fill=ink, font=font)
            canvas.text((cx + 4, 8 + oy), f"w={scene['w']}", fill=ink, font=font)
            canvas.text((cx - 30, cy - 14), f"h={scene['h']}", fill=ink, font=font)

    def question(self, scene: dict) -> str:
        return {"rectangle": "What is the area of the rectangle?",
                "right_triangle": "What is the length of the hypotenuse marked '?'?",
                "angles": "What is the angle marked '?' in degrees?",
                "l_shape": "The shape is a W by H rectangle with a w by h corner cut away. What is its area?",
                }[scene["kind"]]

    def trace(self, scene: dict) -> list[Fact]:
        kind = scene["kind"]
        if kind == "rectangle":
            return [Fact("width", scene["w"], "perception"), Fact("height", scene["h"], "perception"),
                    Fact("area", scene["w"] * scene["h"], "reasoning", "width * height")]
        if kind == "right_triangle":
            a, b = scene["a"], scene["b"]
            c = round((a * a + b * b) ** 0.5)
            return [Fact("leg a", a, "perception"), Fact("leg b", b, "perception"),
                    Fact("hypotenuse", c, "reasoning", "round((leg_a ** 2 + leg_b ** 2) ** 0.5)")]
        if kind == "angles":
            return [Fact("angle a", scene["A"], "perception"), Fact("angle b", scene["B"], "perception"),
                    Fact("angle c", 180 - scene["A"] - scene["B"], "reasoning", "180 - angle_a - angle_b")]
        outer, cut = scene["W"] * scene["H"], scene["w"] * scene["h"]
        return [Fact("outer width", scene["W"], "perception"), Fact("outer height", scene["H"], "perception"),
                Fact("cut width", scene["w"], "perception"), Fact("cut height", scene["h"], "perception"),
                Fact("outer area", outer, "reasoning", "outer_width * outer_height"),
                Fact("cut area", cut, "reasoning", "cut_width * cut_height"),
                Fact("area", outer - cut, "reasoning", "outer_area - cut_area")]


VISION_ENVIRONMENTS = ("vis_count", "vis_relation", "vis_chart", "vis_table", "vis_geometry")
