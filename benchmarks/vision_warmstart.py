"""Does the tiny VLM learn to use the picture? Warm-start (supervised) on rendered scenes, then
held-out accuracy with the image and with the image removed, over seeds.

For each seed: build the tiny LLaVA (``worldsmith.vision.vlm.build_tiny_vlm``), fine-tune it on
``--train`` train-split instances of ``--env`` (target: ``<answer>reference</answer>``), and
evaluate greedy accuracy on ``--eval`` eval-split instances (unseen problems), with the image and
with the image removed (``verify.image_ablation``). Prints one JSON line: per-seed numbers, the
mean and 95% interval of each accuracy over seeds, and the paired interval of the image's gain.

    PYTHONPATH=src python benchmarks/vision_warmstart.py --env vis_relation --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import torch

from worldsmith import envs
from worldsmith.envs.contract import split_seed
from worldsmith.eval.stats import mean_interval, paired_difference
from worldsmith.vision.images import from_b64
from worldsmith.vision.verify import image_ablation
from worldsmith.vision.vlm import TinyVLMConfig, VisionPolicy, build_tiny_vlm


def run_seed(args: argparse.Namespace, seed: int) -> dict:
    env = envs.get(args.env)
    torch.manual_seed(seed)
    model, processor = build_tiny_vlm(TinyVLMConfig(image_size=args.image_size), seed=seed)
    policy = VisionPolicy(model, processor)
    train = [env.sample(split_seed("train", seed * 100_000 + i), args.difficulty) for i in range(args.train)]
    held = [env.sample(split_seed("eval", i), args.difficulty) for i in range(args.eval)]
    before = image_ablation(env, held[: args.eval // 4], policy.answer_fn(max_new_tokens=12))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    rng = random.Random(seed)
    model.train()
    started = time.time()
    for step in range(args.steps):
        batch = rng.sample(train, args.batch)
        logp, mask = policy.sequence_logprobs([b.prompt for b in batch],
                                              [from_b64(b.data["image"]["png_b64"]) for b in batch],
                                              [env.wrap(b.reference) for b in batch])
        loss = -logp.sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % max(1, args.steps // 5) == 0:
            print(f"seed {seed} step {step}/{args.steps} loss {loss.item():.3f} {time.time() - started:.0f}s",
                  file=sys.stderr)
    model.eval()
    warm = image_ablation(env, held, policy.answer_fn(max_new_tokens=12)) if args.rl_steps else None
    if args.rl_steps:
        rl_phase(args, env, policy, train, rng)
        model.eval()
    after = image_ablation(env, held, policy.answer_fn(max_new_tokens=12))
    majority = max(set(h.reference for h in train), key=[h.reference for h in train].count)
    if warm is not None:
        print(f"seed {seed} warm-start held-out accuracy {warm['accuracy_with_image']:.3f}, after RL "
              f"{after['accuracy_with_image']:.3f}", file=sys.stderr)
    return {"seed": seed, "before_with_image": before["accuracy_with_image"],
            "warm_with_image": warm["accuracy_with_image"] if warm else None,
            "with_image": after["accuracy_with_image"], "without_image": after["accuracy_without_image"],
            "majority_answer_accuracy": sum(h.reference == majority for h in held) / len(held),
            "train_seconds": round(time.time() - started, 1)}


def rl_phase(args: argparse.Namespace, env, policy: VisionPolicy, train: list, rng: random.Random) -> None:
    """On-policy group-relative policy gradient (GRPO with one update per batch, so the clipped
    ratio is 1): ``--rl-prompts`` prompts x ``--group`` sampled completions per step, reward = the
    environment's grade, advantages normalised within each group."""
    opt = torch.optim.AdamW(policy.model.parameters(), lr=args.rl_lr)
    started = time.time()
    for step in range(args.rl_steps):
        batch = rng.sample(train, args.rl_prompts)
        prompts = [b.prompt for b in batch for _ in range(args.group)]
        pngs = [from_b64(b.data["image"]["png_b64"]) for b in batch for _ in range(args.group)]
        policy.model.eval()
        texts = policy.generate(prompts, pngs, max_new_tokens=12, temperature=1.0, seed=rng.randrange(2**31))
        rewards = torch.tensor([env.grade(batch[i // args.group], text).value for i, text in enumerate(texts)])
        grouped = rewards.view(-1, args.group)
        adv = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, unbiased=False, keepdim=True) + 1e-6)).flatten()
        if adv.abs().sum() == 0:
            continue
        policy.model.train()
        logp, mask = policy.sequence_logprobs(prompts, pngs, texts)
        loss = -((adv.unsqueeze(1) * logp).sum() / mask.sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % max(1, args.rl_steps // 5) == 0:
            print(f"  rl step {step}/{args.rl_steps} reward {rewards.mean():.3f} {time.time() - started:.0f}s",
                  file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="vis_relation")
    p.add_argument("--difficulty", type=float, default=0.0)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--train", type=int, default=512)
    p.add_argument("--eval", type=int, default=64)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--rl-steps", type=int, default=0, help="RL steps after the warm start (0 = none)")
    p.add_argument("--rl-prompts", type=int, default=8)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--rl-lr", type=float, default=1e-3)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [run_seed(args, int(s)) for s in args.seeds.split(",")]
    summary = {}
    if args.rl_steps:
        rl_gain = paired_difference([r["with_image"] for r in rows], [r["warm_with_image"] for r in rows])
        summary["rl_gain_over_warm_start"] = {"mean": rl_gain.mean, "ci95": [rl_gain.low, rl_gain.high]}
    for key in ("with_image", "without_image", "majority_answer_accuracy"):
        ci = mean_interval([r[key] for r in rows])
        summary[key] = {"mean": ci.mean, "ci95": [ci.low, ci.high]}
    gain = paired_difference([r["with_image"] for r in rows], [r["without_image"] for r in rows])
    summary["image_gain"] = {"mean": gain.mean, "ci95": [gain.low, gain.high]}
    print(json.dumps({"benchmark": "vision_warmstart", "env": args.env, "difficulty": args.difficulty,
                      "steps": args.steps, "rl_steps": args.rl_steps, "train": args.train, "eval": args.eval, "seeds": rows, "summary": summary}))


if __name__ == "__main__":
    main()
