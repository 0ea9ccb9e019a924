"""Does training in admitted environments help on them? The EvoEnv loop against a control.

For each seed: the treatment is `worldsmith synth configs/synth_corpus.yaml` (the shipped corpus as
generator, the tiny SFT-warm-started policy as solver); the control is the same run with an empty
corpus, so the pool stays the ten seeds. Both start from the same warm-started policy. Held-out
accuracy (eval-split seeds, in the sandbox) is measured on the programs the treatment admitted, for
the starting policy, the treatment's final policy and the control's final policy, and on the seed
environments for both final policies.

Prints one JSON line: per seed and the means, with ``gain_vs_control`` = treatment - control on the
admitted programs.

    .venv/bin/python benchmarks/synth_learning.py [--seeds 0 1 2] [--steps 30] [--instances 128]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--instances", type=int, default=128, help="held-out instances per program")
    parser.add_argument("--out", default=None, help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args()

    from worldsmith.configuration import load
    from worldsmith.policy.model import load_policy
    from worldsmith.recipes import synth_run
    from worldsmith.synth.config import SynthConfig
    from worldsmith.synth.loop import evaluate_programs

    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="synth_learning_"))
    empty = base / "empty_corpus"
    empty.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for seed in args.seeds:
        common = [f"train.seed={seed}", f"model.init_seed={seed}", f"train.steps={args.steps}",
                  f"eval.instances={args.instances}", "train.checkpoint_every=0"]
        treat_cfg = load(SynthConfig, ROOT / "configs" / "synth_corpus.yaml", common)
        control_cfg = load(SynthConfig, ROOT / "configs" / "synth_corpus.yaml", [*common, f"synth.corpus={empty}"])
        treat = synth_run(treat_cfg, base / f"treatment_{seed}", progress=False)
        control = synth_run(control_cfg, base / f"control_{seed}", progress=False)
        on = treat["eval_admitted"]
        row = {"seed": seed, "admitted": [c["name"] for c in treat["admitted_or_retired"]],
               "seed_envs": {"treatment": treat["after"]["accuracy_sampled"],
                             "control": control["after"]["accuracy_sampled"]}}
        if on["programs"]:
            policy, tokenizer = load_policy(base / f"control_{seed}" / "policy", progress=False)
            ctrl = evaluate_programs(treat_cfg, policy, tokenizer, base / f"treatment_{seed}" / "archive.sqlite",
                                     on["programs"])
            for key in ("accuracy_sampled", "accuracy_greedy"):
                row[key] = {"start": on["before"][key], "treatment": on["after"][key], "control": ctrl[key]}
            row["gain_vs_control"] = on["after"]["accuracy_sampled"] - ctrl["accuracy_sampled"]
            row["per_program"] = {k: {"treatment": v["accuracy_sampled"],
                                      "control": ctrl["per_program"].get(k, {}).get("accuracy_sampled"),
                                      "start": on["before"]["per_program"].get(k, {}).get("accuracy_sampled")}
                                  for k, v in on["after"]["per_program"].items()}
        per_seed.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    with_programs = [r for r in per_seed if "gain_vs_control" in r]

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    print(json.dumps({
        "benchmark": "synth_learning",
        "steps": args.steps,
        "instances_per_program": args.instances,
        "seeds": args.seeds,
        "mean_on_admitted_sampled": {
            arm: mean([r["accuracy_sampled"][arm] for r in with_programs]) for arm in ("start", "treatment", "control")},
        "mean_gain_vs_control": mean([r["gain_vs_control"] for r in with_programs]),
        "mean_seed_envs_sampled": {
            arm: mean([r["seed_envs"][arm] for r in per_seed]) for arm in ("treatment", "control")},
        "per_seed": per_seed,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
