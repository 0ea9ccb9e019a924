"""GRPO vs Mixed-CUTS vs MSSR vs G2RL from a saturated SFT start, over three seeds, on CPU.

For each seed, the tiny char-level model is warm-started with SFT on ``arithmetic_chain`` at
difficulty 0 (CUTS targets the saturated regime: raise ``--sft-examples`` / ``--sft-epochs`` until
the reported ``sft_start`` figures are high; 4000 x 2 gave greedy 0.50, pass@1 0.31 for seed 0),
then each method trains a copy for the same number of steps with the same number of completions per
step:

- grpo:       group 16, plain sampling
- mixed_cuts: group 16 = 8 standard + 8 CUTS (K=5, delta=0.03, warmup 5), one GRPO advantage
- mssr:       group 1 with 16x the prompts, the mssr estimator (tracker, init pass, shaping),
              KL loss 0.01 against the SFT policy (the tracker's forgetting rate needs the KL)
- g2rl:       group 16, G2RL shaping (multiplicative map, lambda 1) then GRPO

Each trained policy is evaluated on held-out instances: greedy accuracy, sampled pass@1, pass@k
and maj@k (k = samples), the last steps' training entropy, the fraction of groups whose rewards
all agree (no learning signal; not defined for MSSR's single rollouts), the completions generated
in training (MSSR's initialisation pass not included) and wall time. Prints one JSON line with the
mean and population std over seeds of each figure, per method, and the machine; progress goes to
stderr. ``--quick`` runs a short version.

    .venv/bin/python benchmarks/exploration_ablation.py --quick
    .venv/bin/python benchmarks/exploration_ablation.py --seeds 0,1,2 --steps 60
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import tempfile
import time

import torch

from worldsmith.configuration import build
from worldsmith.eval.runner import evaluate
from worldsmith.policy.hf_backend import HFBackend
from worldsmith.policy.model import build_tiny_model
from worldsmith.policy.sft import sft_examples, train_sft
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl.config import RunConfig
from worldsmith.rl.trainer import Trainer
from worldsmith.runs import RunDir

ENV, DIFFICULTY, GROUP = "arithmetic_chain", 0.0, 16


def method_config(method: str, seed: int, steps: int, prompts: int, max_new_tokens: int) -> dict:
    train = {"steps": steps, "prompts_per_step": prompts, "group_size": GROUP, "checkpoint_every": 0,
             "minibatch_size": prompts * GROUP, "microbatch_size": prompts * GROUP, "seed": seed}
    sampling = {"max_new_tokens": max_new_tokens, "temperature": 1.0}
    if method == "mixed_cuts":
        sampling |= {"cuts": {"enabled": True}, "mixed_plan": {"standard": GROUP // 2, "cuts": GROUP // 2}}
    elif method == "mssr":
        train |= {"group_size": 1, "prompts_per_step": prompts * GROUP, "advantage": "mssr",
                  "loss_cfg": {"kl_coef": 0.01}}
    elif method == "g2rl":
        train |= {"shaping": {"g2rl": {"enabled": True}}}
    elif method != "grpo":
        raise ValueError(f"unknown method {method!r}")
    return {"threads": 1, "pool": [{"name": ENV, "difficulty": DIFFICULTY}], "sampling": sampling,
            "optim": {"lr": 3e-4, "grad_clip": 1.0}, "train": train}


def sft_start(seed: int, examples: int, epochs: int):
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, build(RunConfig, {}).model.tiny, seed=seed)
    data = sft_examples([(ENV, DIFFICULTY, 1.0)], examples, split="train", seed=seed)
    train_sft(model, tok, data, epochs=epochs, lr=3e-3, batch_size=16, seed=seed, progress=False)
    return model, tok


def held_out(model, tok, instances: int, samples: int, max_new_tokens: int, seed: int) -> dict:
    out = evaluate(HFBackend(model, tok), [(ENV, DIFFICULTY)], instances=instances, samples=samples,
                   temperature=1.0, max_new_tokens=max_new_tokens, seed=seed, progress=False)
    o = out["overall"]
    return {"greedy": o["greedy_accuracy"], "pass@1": o["pass@1"], "pass@k": o["pass@k"], "maj@k": o["maj@k"]}


def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (tiny SFT, few steps, small eval)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default="grpo,mixed_cuts,mssr,g2rl")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step (x16 completions)")
    ap.add_argument("--sft-examples", type=int, default=4000)
    ap.add_argument("--sft-epochs", type=int, default=2)
    ap.add_argument("--eval-instances", type=int, default=256)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.prompts, args.sft_examples, args.sft_epochs = 3, 2, 400, 1
        args.eval_instances, args.samples = 32, 4
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    results: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    started = time.perf_counter()
    for seed in seeds:
        torch.manual_seed(seed)
        base, tok = sft_start(seed, args.sft_examples, args.sft_epochs)
        start_eval = held_out(base, tok, args.eval_instances, args.samples, args.max_new_tokens, seed)
        print(f"seed {seed}: SFT start {start_eval}", file=sys.stderr)
        results.setdefault("sft_start", {})
        for k, v in start_eval.items():
            results["sft_start"].setdefault(k, []).append(v)
        for method in methods:
            cfg = build(RunConfig, method_config(method, seed, args.steps, args.prompts, args.max_new_tokens))
            model = copy.deepcopy(base)
            ref = copy.deepcopy(base) if cfg.train.loss_cfg.kl_coef > 0 else None
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                rows = Trainer(cfg, model, tok, ref_model=ref).fit(RunDir(tmp), progress=False)
            seconds = time.perf_counter() - t0
            after = held_out(model, tok, args.eval_instances, args.samples, args.max_new_tokens, seed)
            tail = rows[-max(1, len(rows) // 5):]
            figures = {**after, "train_reward": statistics.fmean(r["reward/mean"] for r in tail),
                       "train_entropy": statistics.fmean(r["entropy"] for r in tail), "seconds": seconds,
                       "generated_completions": float(cfg.train.steps * cfg.train.prompts_per_step
                                                      * cfg.train.group_size)}
            if cfg.train.group_size > 1:  # a single rollout has no group variance to speak of
                figures["zero_variance_groups"] = statistics.fmean(
                    r["groups/zero_variance_fraction"] for r in rows)
            for k, v in figures.items():
                results[method].setdefault(k, []).append(v)
            print(f"seed {seed} {method}: {figures}", file=sys.stderr)
    print(json.dumps({
        "benchmark": "exploration_ablation",
        "env": ENV, "difficulty": DIFFICULTY, "seeds": seeds, "steps": args.steps,
        "completions_per_step": args.prompts * GROUP, "k": args.samples,
        "results": {m: {k: summary(v) for k, v in figs.items()} for m, figs in results.items()},
        "seconds": time.perf_counter() - started,
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu": platform.processor() or platform.machine(), "threads": 1},
    }))


if __name__ == "__main__":
    main()
