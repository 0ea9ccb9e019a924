"""`worldsmith vision`: look at an image instance, verify a response at three levels, write the
generated preference benchmark.

Registered in ``worldsmith.commands.COMMANDS``; imports nothing heavy until a command runs.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

from worldsmith import commands
from worldsmith.commands import UsageError
from worldsmith.progress import progress_bar


def _image_env(name: str):
    from worldsmith.vision.envs import ImageEnvironment

    env = commands.get_env(name)
    if not isinstance(env, ImageEnvironment):
        raise UsageError(f"{name} is not an image environment (try vis_count, vis_relation, vis_chart, vis_table, "
                         "vis_geometry)")
    return env


def _instance(args: argparse.Namespace):
    from worldsmith.envs.contract import split_seed

    env = _image_env(args.env)
    return env, env.sample(split_seed(args.split, args.index), args.difficulty)


def cmd_show(args: argparse.Namespace) -> int:
    from worldsmith.vision.images import from_b64

    env, inst = _instance(args)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must name a .png file, got {args.out}")
    if not out.parent.is_dir():
        raise UsageError(f"--out: folder {out.parent} does not exist")
    out.write_bytes(from_b64(inst.data["image"]["png_b64"]))
    print(inst.prompt)
    print("--- reference response")
    print(env.reference_response(inst.data))
    print(f"--- image written to {out} ({inst.data['image']['width']}x{inst.data['image']['height']}, "
          f"split {inst.split})", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from worldsmith.sandbox import SandboxUnavailable
    from worldsmith.vision.verify import VerifyConfig, verify

    commands.apply_isolation_flag(args)
    env, inst = _instance(args)
    if args.response == "-":
        response = sys.stdin.read()
    else:
        path = Path(args.response)
        if not path.is_file():
            raise UsageError(f"--response: no file {args.response}")
        response = path.read_text(encoding="utf-8", errors="replace")
    try:
        verdict = verify(env, inst, response, VerifyConfig(lam=args.lam))
    except SandboxUnavailable as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(verdict.to_json()))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from worldsmith.envs import registry
    from worldsmith.envs.contract import split_seed
    from worldsmith.vision.preference import CATEGORIES, SOURCES, make_pair

    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out: folder {out.parent} does not exist")
    pairs = []
    for c, category in progress_bar(list(enumerate(CATEGORIES)), desc="vision bench"):
        sources = [registry.get(name) for name in SOURCES[category]]
        for i in range(args.per_category):
            seed = split_seed(args.split, len(CATEGORIES) * i + c)
            pairs.append(make_pair(sources[i % len(sources)], seed, category, i, args.difficulty))
    with out.open("w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps({"question": p.question, "response_a": p.response_a, "response_b": p.response_b,
                                 "label": p.label, "category": p.category, "detail": p.detail,
                                 "image_png_b64": base64.b64encode(p.image).decode("ascii")}) + "\n")
    print(json.dumps({"pairs": len(pairs), "out": str(out), "categories": list(CATEGORIES)}))
    return 0


def warmstart_target(env, inst, target: str) -> str:
    """What the warm start imitates: the tagged answer (``answer``), the step lines then the tagged
    answer (``steps``), or the whole reference response with its program (``reference``)."""
    if target == "answer":
        return env.wrap(inst.reference)
    if target == "steps":
        return "\n".join([*env.steps(inst.data), env.wrap(inst.reference)])
    return env.reference_response(inst.data)


def cmd_warmstart(args: argparse.Namespace) -> int:
    import torch

    from worldsmith.envs.contract import split_seed
    from worldsmith.policy.model import is_vision_folder, load_policy, save_policy
    from worldsmith.vision.verify import image_ablation
    from worldsmith.vision.vlm import TinyVLMConfig, VisionPolicy, build_tiny_vlm, warm_start

    tasks = commands.env_tasks(args.env or ["vis_relation"], "--env")
    for name, _ in tasks:
        _image_env(name)
    out = Path(args.out)
    if (out / "config.json").exists():
        raise UsageError(f"--out: {out} already holds a policy; choose another folder")
    if not out.parent.is_dir():
        raise UsageError(f"--out: folder {out.parent} does not exist")
    if args.model:
        if not is_vision_folder(args.model):
            raise UsageError(f"--model: {args.model} is not a local vision-language model folder")
        model, processor = load_policy(args.model, progress=False)
    else:
        try:
            cfg = TinyVLMConfig(image_size=args.image_size, vision_layers=args.vision_layers,
                                vision_hidden=args.vision_hidden, text_hidden=args.text_hidden,
                                text_layers=args.text_layers)
            model, processor = build_tiny_vlm(cfg, seed=args.seed)
        except ValueError as exc:
            raise UsageError(f"tiny VLM: {str(exc).splitlines()[0]}") from None
    torch.manual_seed(args.seed)
    policy = VisionPolicy(model, processor)
    per_task = -(-args.examples // len(tasks))
    train, held = [], []
    for t, (name, diff) in enumerate(tasks):
        env = commands.get_env(name)
        train += [(env, env.sample(split_seed("train", args.seed * 1_000_003 + t * per_task + i), diff))
                  for i in range(per_task)]
        held.append((env, [env.sample(split_seed("eval", i), diff) for i in range(args.eval)]))
    targets = [warmstart_target(env, inst, args.target) for env, inst in train]
    perception = None
    if args.perception_steps:
        from worldsmith.vision.perception import perception_pretrain

        perception = perception_pretrain(policy, args.perception_steps, batch_size=args.batch, lr=args.lr,
                                         seed=args.seed, progress=not args.quiet)
    metrics = warm_start(policy, [inst for _, inst in train], targets, steps=args.steps, batch_size=args.batch,
                         lr=args.lr, seed=args.seed, progress=not args.quiet)
    evaluation = {}
    if args.eval:
        for (name, diff), (env, instances) in zip(tasks, held):
            result = image_ablation(env, instances, policy.answer_fn(max_new_tokens=args.max_new_tokens))
            evaluation[f"{name}@{diff:g}"] = result
    save_policy(model, processor, out)
    summary = {"out": str(out), "tasks": [{"env": n, "difficulty": d} for n, d in tasks], "seed": args.seed,
               "examples": len(train), "target": args.target, "perception": perception, **metrics,
               "held_out": evaluation}
    (out / "warmstart.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return 0


def _add_instance_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("env", help="an image environment: vis_count, vis_relation, vis_chart, vis_table, vis_geometry")
    p.add_argument("--index", type=int, default=0, help="item of the split (default 0)")
    p.add_argument("--split", choices=("train", "eval"), default="eval", help="seed split (default eval)")
    p.add_argument("--difficulty", type=commands.difficulty, default=0.5, help="in [0, 1] (default 0.5)")


@commands.register_command("vision")
def register(sub) -> None:
    vis = sub.add_parser("vision", help="image environments: show an instance, verify a response, preference pairs")
    vsub = vis.add_subparsers(dest="vision_command", required=True, parser_class=commands.Parser)
    p = vsub.add_parser("show", help="write an instance's image and print its prompt and reference response")
    _add_instance_args(p)
    p.add_argument("--out", required=True, help="the .png file to write")
    p.set_defaults(func=cmd_show)
    p = vsub.add_parser("verify", help="answer, process and executable checks of a response, with the hybrid reward")
    _add_instance_args(p)
    p.add_argument("--response", required=True, help="file holding the response ('-' reads stdin)")
    p.add_argument("--lam", type=float, default=0.5, help="weight of the process score (default 0.5)")
    commands.add_isolation_flag(p)
    p.set_defaults(func=cmd_verify)
    p = vsub.add_parser("bench", help="write the generated pairwise preference benchmark as JSON lines")
    p.add_argument("--per-category", type=commands.positive_int, default=50, help="pairs per category (default 50)")
    p.add_argument("--split", choices=("train", "eval"), default="eval", help="seed split (default eval)")
    p.add_argument("--difficulty", type=commands.difficulty, default=0.5, help="in [0, 1] (default 0.5)")
    p.add_argument("--out", required=True, help="the .jsonl file to write")
    p.set_defaults(func=cmd_bench)
    p = vsub.add_parser("warmstart", help="supervised warm start of a vision-language policy on rendered scenes "
                        "(train split), saved as a model folder that `worldsmith train` takes as model.path")
    p.add_argument("--out", required=True, help="the policy folder to write")
    p.add_argument("--env", action="append", default=None, metavar="NAME[@DIFFICULTY]",
                   help="image environment to learn from (repeatable; default vis_relation@0)")
    p.add_argument("--model", default=None, help="a local vision-language model folder (default: build the tiny one)")
    p.add_argument("--examples", type=commands.positive_int, default=768, help="train-split instances (default 768)")
    p.add_argument("--steps", type=commands.positive_int, default=300, help="optimizer steps (default 300)")
    p.add_argument("--batch", type=commands.positive_int, default=16, help="examples per step (default 16)")
    p.add_argument("--lr", type=commands.positive_float, default=3e-3, help="AdamW learning rate (default 3e-3)")
    p.add_argument("--seed", type=int, default=0, help="weights, examples and data order (default 0)")
    p.add_argument("--target", choices=("answer", "steps", "reference"), default="answer",
                   help="what to imitate: the tagged answer; the step lines (name = value) then the answer; or "
                   "the whole reference response with its program (default answer)")
    p.add_argument("--perception-steps", type=int, default=0,
                   help="first teach the colour of one object shrinking to 12 px for this many steps (default 0)")
    p.add_argument("--image-size", type=commands.positive_int, default=32, help="tiny VLM: input side (default 32)")
    p.add_argument("--vision-layers", type=commands.positive_int, default=1, help="tiny VLM: vision layers (default 1)")
    p.add_argument("--vision-hidden", type=commands.positive_int, default=32, help="tiny VLM: vision width (default 32)")
    p.add_argument("--text-hidden", type=commands.positive_int, default=64, help="tiny VLM: language width (default 64)")
    p.add_argument("--text-layers", type=commands.positive_int, default=2, help="tiny VLM: language layers (default 2)")
    p.add_argument("--eval", type=int, default=32, help="held-out scenes per task, with and without the image "
                   "(default 32; 0 skips)")
    p.add_argument("--max-new-tokens", type=commands.positive_int, default=16, help="held-out answer budget (default 16)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_warmstart)
