"""What VPPO's process reward model adds to an RL step: GRPO vs VPPO with the exact oracle vs VPPO
with a trained PRM, side by side in one run, from the same policy on the same batches.

Each variant trains a fresh copy of the policy for ``--steps`` steps on ``decision_chain``; the
figure is the mean wall time of a step after the first (``time/step``) and its ratio to GRPO's,
plus the PRM's own share of the step (``vppo/prm_seconds``). Prints one JSON line.

    .venv/bin/python benchmarks/vppo_overhead.py --policy runs/vppo/starts/s0/policy_init --prm runs/prm
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import tempfile

import torch

from worldsmith.configuration import build
from worldsmith.envs.decision_chain import depth_difficulty
from worldsmith.policy.model import load_policy
from worldsmith.rl.config import RunConfig
from worldsmith.rl.trainer import Trainer
from worldsmith.runs import RunDir


def variant(name: str, prm: str | None) -> dict:
    if name == "grpo":
        return {}
    cfg = {"advantage": "vppo", "vppo": {"shorten": "partial", "partial_share": 0.1}}
    if name == "vppo_trained":
        cfg["vppo"]["prm"] = {"kind": "trained", "path": prm}
    return cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", required=True, help="a policy folder (e.g. a compare start policy)")
    p.add_argument("--prm", default=None, help="a `worldsmith prm train` folder (adds vppo_trained)")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--prompts", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(1)
    model0, tokenizer = load_policy(args.policy, progress=False)
    names = ["grpo", "vppo_oracle"] + (["vppo_trained"] if args.prm else [])
    out = {}
    for name in names:
        train = {"steps": args.steps, "prompts_per_step": args.prompts, "group_size": 8, "checkpoint_every": 0,
                 "minibatch_size": args.prompts * 8, "microbatch_size": args.prompts * 8, **variant(name, args.prm)}
        cfg = build(RunConfig, {"threads": 1, "pool": [{"name": "decision_chain", "difficulty": depth_difficulty(args.depth)}],
                                "sampling": {"max_new_tokens": 32}, "train": train})
        torch.manual_seed(0)
        trainer = Trainer(cfg, copy.deepcopy(model0), tokenizer)
        with tempfile.TemporaryDirectory() as tmp:
            rows = trainer.fit(RunDir(tmp), progress=False)
        timed = rows[1:] or rows
        step = sum(r["time/step"] for r in timed) / len(timed)
        prm = sum(r.get("vppo/prm_seconds", 0.0) for r in timed) / len(timed)
        out[name] = {"step_s": round(step, 4), "prm_s": round(prm, 4), "prm_share": round(prm / step, 4),
                     "prm_calls": sum(r.get("vppo/prm_calls", 0.0) for r in timed) / len(timed)}
    for name in names:
        out[name]["ratio_to_grpo"] = round(out[name]["step_s"] / out["grpo"]["step_s"], 3)
    print(json.dumps({"benchmark": "vppo_overhead", "steps": args.steps, "completions_per_step": args.prompts * 8,
                      "variants": out, "machine": platform.machine()}))


if __name__ == "__main__":
    main()
