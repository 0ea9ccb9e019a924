"""A pairwise preference benchmark generated from the image environments.

Each pair is (image, question, two responses, gold label) where the two responses differ in one
verifiable visual or computational detail, so the label is known exactly. Three categories, after
VL-RewardBench's split:

- ``general``: one perceived fact misread (a count, a bar, a cell, a label) and the answer
  following from it;
- ``hallucination``: the rejected response also asserts an object the scene does not contain
  (same answer, so only looking at the image separates the two);
- ``reasoning``: the same readings, a wrong computation (and answer).

Positions are balanced: the chosen response is A for even indices and B for odd ones. Pairs come
from eval seeds by default, so a judge trained on train-seed pairs is scored on unseen scenes.
"""

from __future__ import annotations

import ast
import operator
import random
from collections.abc import Sequence

from worldsmith.envs import registry
from worldsmith.envs.contract import split_seed, stable_hash
from worldsmith.rl.deltarubric import PreferencePair
from worldsmith.vision.envs import COLOURS, SHAPES, ImageEnvironment
from worldsmith.vision.images import from_b64

CATEGORIES = ("general", "hallucination", "reasoning")
#: Environments each category draws from (hallucinated objects need object scenes).
SOURCES = {"general": ("vis_count", "vis_chart", "vis_table", "vis_geometry"),
           "hallucination": ("vis_count", "vis_relation"),
           "reasoning": ("vis_count", "vis_chart", "vis_table", "vis_geometry")}


def _say(facts: Sequence[tuple[str, object]], answer: object, extra: str = "") -> str:
    body = "; ".join(f"{k} = {v}" for k, v in facts)
    return f"{extra}{body}. The answer is {answer}."


def _bump(value: object, rng: random.Random) -> object:
    if isinstance(value, int):
        return value + rng.choice((-2, -1, 1, 2)) if value > 2 else value + rng.choice((1, 2))
    return rng.choice([c for c in COLOURS if c != value])


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Pow: operator.pow}
_CALLS = {"abs": abs, "round": round}


def evaluate(expr: str, values: dict) -> int | float:
    """The value of one of our traces' expressions (names, integers, + - * **, abs, round) over
    ``values``, by walking its syntax tree: traces are ours, yet nothing here runs code."""

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS
                and len(node.args) == 1 and not node.keywords):
            return _CALLS[node.func.id](walk(node.args[0]))
        raise ValueError(f"unsupported expression {ast.dump(node)[:60]}")

    return walk(ast.parse(expr, mode="eval"))


def make_pair(env: ImageEnvironment, seed: int, category: str, index: int, difficulty: float = 0.5) -> PreferencePair:
    """One pair of ``category`` from the instance of ``seed`` (deterministic)."""
    inst = env.sample(seed, difficulty)
    rng = random.Random(stable_hash("preference", env.name, seed, category))
    trace = env.trace(inst.data["scene"])
    facts = [(f.key, f.value) for f in trace]
    good = _say(facts, trace[-1].value)
    question = env.question(inst.data["scene"])
    if category == "hallucination":
        scene = inst.data["scene"]
        present = {(o["colour"], o["shape"]) for o in scene["objects"]}
        absent = [(c, s) for c in sorted(COLOURS) for s in SHAPES if (c, s) not in present]
        colour, shape = rng.choice(absent)
        bad = _say(facts, trace[-1].value, extra=f"I also see a {colour} {shape}. ")
        detail = f"hallucinated {colour} {shape}"
    elif category == "general":
        k = rng.choice([i for i, f in enumerate(trace) if f.stage == "perception"])
        wrong = list(facts)
        wrong[k] = (trace[k].key, _bump(trace[k].value, rng))
        values = {f.var: v for f, (_, v) in zip(trace, wrong)}
        for i, f in enumerate(trace):  # recompute what follows from the misread fact
            if f.expr is not None:
                values[f.var] = evaluate(f.expr, values)
                wrong[i] = (f.key, values[f.var])
        bad = _say(wrong, wrong[-1][1])
        detail = f"misread {trace[k].key}"
    elif category == "reasoning":
        wrong = list(facts)
        wrong[-1] = (trace[-1].key, _bump(trace[-1].value, rng))
        bad = _say(wrong, wrong[-1][1])
        detail = f"wrong {trace[-1].key}"
    else:
        raise ValueError(f"unknown category {category!r}; valid: {', '.join(CATEGORIES)}")
    png = from_b64(inst.data["image"]["png_b64"])
    a, b, label = (good, bad, "A") if index % 2 == 0 else (bad, good, "B")
    return PreferencePair(question, a, b, label, png, category, f"{env.name}: {detail}")


def generate_benchmark(per_category: int, split: str = "eval", difficulty: float = 0.5) -> list[PreferencePair]:
    """``per_category`` pairs of each category, cycling over the category's environments."""
    pairs = []  # the `worldsmith vision bench` command repeats this loop with a progress bar
    for c, category in enumerate(CATEGORIES):
        sources = [registry.get(name) for name in SOURCES[category]]
        for i in range(per_category):
            env = sources[i % len(sources)]
            seed = split_seed(split, len(CATEGORIES) * i + c)  # each category its own scenes
            pairs.append(make_pair(env, seed, category, i, difficulty))
    return pairs
