"""How VPPO's gain degrades with a worse process reward model: the exact oracle, the oracle with
its first-error index corrupted at a controlled rate, a trained PRM, the policy as its own
generative judge, and the policy's own step likelihood (``LikelihoodPRM``, threshold 0.1).

Builds on a finished ``worldsmith compare`` folder that holds ``grpo`` runs: every variant here
trains VPPO from that folder's start policies (same seeds, same config, same held-out problems),
through ``worldsmith.compare.compare`` with a ``start`` that loads them, one folder per variant
under ``--out``. Reports each variant's held-out sampled pass@1 and its paired difference to the
compare folder's GRPO runs. Prints one JSON line.

    .venv/bin/python benchmarks/vppo_noise.py --base runs/vppo --config configs/vppo_decision.yaml \\
        --seeds 0,1,2 --noise 0,0.5,1 --prm runs/prm --judge --out runs/vppo_noise
"""

from __future__ import annotations

import argparse
import json
import pathlib

from worldsmith.commands import load_run_config
from worldsmith.compare import compare
from worldsmith.eval.stats import mean_interval, paired_difference
from worldsmith.policy.model import load_policy

METRIC = "accuracy_sampled"


def runs_of(folder: pathlib.Path, method: str) -> dict[int, dict]:
    rows = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines() if line.strip()]
    return {r["seed"]: r for r in rows if r["method"] == method}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="a finished compare folder with grpo runs")
    p.add_argument("--config", required=True, help="the compare's config file")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--noise", default="0,0.5,1", help="first-error corruption rates of the oracle ('' for none)")
    p.add_argument("--prm", default=None, help="a `worldsmith prm train` folder (adds a trained-PRM variant)")
    p.add_argument("--judge", action="store_true", help="add the policy judging its own steps")
    p.add_argument("--likelihood", action="store_true",
                   help="add the policy scoring its own steps by their likelihood (first error below 0.1)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    base, out = pathlib.Path(args.base), pathlib.Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = {f"oracle_noise_{x}": [f"train.vppo.prm.noise={x}"] for x in args.noise.split(",") if x}
    if args.prm:
        variants["trained"] = ["train.vppo.prm.kind=trained", f"train.vppo.prm.path={args.prm}"]
    if args.judge:
        variants["self_judge"] = ["train.vppo.prm.kind=judge"]
    if args.likelihood:
        variants["likelihood"] = ["train.vppo.prm.kind=likelihood", "train.vppo.threshold=0.1"]

    def start(cfg, folder, progress):
        return load_policy(base / "starts" / f"s{cfg.train.seed}" / "policy_init", progress=False)

    grpo = runs_of(base, "grpo")
    result = {}
    for name, overrides in variants.items():
        cfg = load_run_config(args.config, overrides)
        compare(cfg, ["vppo"], seeds, out / name, start=start, start_name=f"{base}/starts", progress=False)
        vppo = runs_of(out / name, "vppo")
        after = [vppo[s]["after"][METRIC] for s in seeds]
        baseline = [grpo[s]["after"][METRIC] for s in seeds]
        result[name] = {"pass@1": mean_interval(after).to_json(), "vs_grpo": paired_difference(after, baseline).to_json(),
                        "prm_seconds": sum(vppo[s]["mechanism"].get("vppo/prm_seconds") or 0 for s in seeds) / len(seeds)}
    print(json.dumps({"benchmark": "vppo_noise", "base": str(base), "seeds": seeds, "metric": METRIC,
                      "variants": result}))


if __name__ == "__main__":
    main()
