"""VPPO's Theorem 1 as an experiment: RL steps until held-out accuracy reaches a target, GRPO vs
VPPO (exact step oracle), as the depth H of ``decision_chain`` grows.

For each seed one start policy is built: the tiny char-level model warm-started with a short SFT
on ``decision_chain`` at every depth in ``--depths`` (so each decision is right most of the time
and a depth-H chain is right about p^H of the time). For each depth and method a copy trains on
depth-H problems; every ``--eval-every`` steps its sampled pass@1 on held-out (eval-split)
problems is measured, and the run stops at the first evaluation at or above ``--target``. A run
that never gets there reports ``None`` (censored at ``--max-steps``). Prints one JSON line with
every run's curve and steps-to-target; ``--plot`` draws steps-to-target against H.

    .venv/bin/python benchmarks/theorem1_depth.py --depths 2,3,4,5 --seeds 0 --max-steps 40 --plot theorem1.png

``--base PATH`` starts every run from a policy folder instead (e.g. a ``worldsmith base`` policy,
which saw depths 1 to 8 in its SFT; deeper chains then test how fast each method extends it):

    .venv/bin/python benchmarks/theorem1_depth.py --base ~/.cache/worldsmith/base/HASH --depths 8,9,10,11 --lr 1e-4

VPPO uses the partial buffer c = 0.1 |o| (with the default c = prompt length the tiny model's
responses, shorter than their prompts, get no reward prefix at all; see docs/process.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from worldsmith.configuration import build
from worldsmith.envs.decision_chain import depth_difficulty
from worldsmith.policy.model import build_tiny_model
from worldsmith.policy.sft import sft_examples, train_sft
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.recipes import eval_policy
from worldsmith.rl.config import RunConfig
from worldsmith.rl.trainer import Trainer
from worldsmith.runs import RunDir


class Reached(Exception):
    pass


def config(depth: int, seed: int, args, method: str | None = None) -> RunConfig:
    pool = [{"name": args.env, "difficulty": depth_difficulty(depth)}]
    train = {"steps": args.max_steps, "prompts_per_step": args.prompts, "group_size": 8,
             "minibatch_size": args.prompts * 8, "microbatch_size": args.prompts * 8, "seed": seed,
             "checkpoint_every": 0, "loss_cfg": {"clip_low": 0.2, "clip_high": 0.28}}
    if method == "vppo":
        train |= {"advantage": "vppo", "vppo": {"shorten": "partial", "partial_share": 0.1,
                                                 "prm": {"noise": args.noise}}}
    return build(RunConfig, {
        "threads": args.threads, "model": {"tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4,
                                          "intermediate_size": 256}, "init_seed": seed},
        "pool": pool, "sampling": {"max_new_tokens": 8 * depth + 24},
        "sft": {"examples": args.sft_examples, "epochs": 1, "lr": 3e-3, "batch_size": 16},
        "optim": {"lr": args.lr}, "train": train,
        "eval": {"instances": args.eval_instances, "samples": 4, "greedy": False},
    })


def build_start(depths: list[int], seed: int, args):
    """The tiny model after SFT on ``decision_chain`` at every depth of ``depths`` (equal shares),
    or the policy folder ``--base``."""
    if args.base:
        from worldsmith.policy.model import load_policy

        model, tokenizer = load_policy(args.base.format(seed=seed), progress=False)
        if args.decision_noise:  # the base learns to err at each level independently
            examples = noisy_decision_examples(depths, args.sft_examples, args.decision_noise, seed, args.env)
            train_sft(model, tokenizer, examples, epochs=1, lr=1e-3, batch_size=16, seed=seed, progress=False)
        return model, tokenizer
    cfg = config(depths[0], seed, args)
    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer, cfg.model.tiny, seed=seed)
    if args.decision_noise:
        examples = noisy_decision_examples(depths, args.sft_examples, args.decision_noise, seed, args.env)
    else:
        specs = [(args.env, depth_difficulty(h), 1.0) for h in depths]
        examples = sft_examples(specs, args.sft_examples, split="train", seed=seed)
    train_sft(model, tokenizer, examples, epochs=1, lr=3e-3, batch_size=16, seed=seed, progress=False)
    return model, tokenizer


def noisy_decision_examples(depths: list[int], n: int, noise: float, seed: int,
                            env_name: str = "decision_chain") -> list[tuple[str, str]]:
    """SFT pairs on train-split problems of ``env_name`` (``decision_chain`` or ``decision_path``;
    depths drawn evenly from ``depths``) whose traces take the wrong digit of each level's pair
    independently with probability ``noise``; every later step and the answer follow the choices
    made. A policy fitted to them errs at each level about ``noise`` of the time at temperature 1,
    independently of the other levels: the start Theorem 1 assumes (a depth-H chain right
    (1 - noise)^H of the time, the first error anywhere along it; at 0.5 a uniform guess per level)."""
    import random

    from worldsmith import envs

    env = envs.get(env_name)
    rng = random.Random(f"decision-noise:{seed}")
    out = []
    for i in range(n):
        inst = env.sample(envs.split_seed("train", i), depth_difficulty(rng.choice(depths)))
        picks = []
        for (a, b), right in zip(inst.data["levels"], env.solve(inst.data)):
            wrong = str(b) if right == str(a) else str(a)
            picks.append(wrong if rng.random() < noise else right)
        trace = "".join(f"{a}|{b}={c}\n" for (a, b), c in zip(inst.data["levels"], picks))
        out.append((inst.prompt, trace + env.wrap("".join(picks))))
    return out


def steps_to_target(start, depth: int, method: str, seed: int, args) -> dict:
    model0, tokenizer = start
    cfg = config(depth, seed, args, method)
    model = copy.deepcopy(model0)
    torch.manual_seed(seed)
    evaluation = eval_policy(cfg, model, tokenizer, progress=False)
    curve = [(0, evaluation["accuracy_sampled"])]
    last = [evaluation]
    reached = 0 if curve[0][1] >= args.target else None
    started = time.perf_counter()
    seen: dict[str, list[float]] = {}
    if reached is None:
        trainer = Trainer(cfg, model, tokenizer)

        def check(trainer, row):
            step = row["step"] + 1
            for key in MECHANISM:
                if isinstance(row.get(key), (int, float)):
                    seen.setdefault(key, []).append(float(row[key]))
            if step % args.eval_every == 0:
                last[0] = eval_policy(cfg, trainer.acc.unwrap_model(trainer.model), tokenizer, progress=False)
                acc = last[0]["accuracy_sampled"]
                curve.append((step, acc))
                print(f"H={depth} {method} seed {seed}: step {step} held-out pass@1 {acc:.3f}", file=sys.stderr, flush=True)
                if acc >= args.target:
                    raise Reached

        with tempfile.TemporaryDirectory() as tmp:
            try:
                trainer.fit(RunDir(tmp), progress=False, on_step=check)
            except Reached:
                reached = curve[-1][0]
    return {"depth": depth, "method": method, "seed": seed, "steps_to_target": reached, "curve": curve,
            "seconds": time.perf_counter() - started, "mechanism": mechanism(seen),
            "final": {key: last[0]["overall"].get(key) for key in FINAL}}


#: What each run keeps of its last evaluation besides the curve's pass@1 (k = the samples per problem).
FINAL = ("pass@1", "pass@k", "maj@k", "step_validity")


#: Training metrics whose means over a run's steps each run records: how many groups carried no
#: outcome signal, the training reward, and how much of an incorrect response VPPO credited.
MECHANISM = ("groups/zero_variance_fraction", "accuracy/train", "vppo/rp_fraction", "vppo/m_err_1")


def mechanism(seen: dict[str, list[float]]) -> dict[str, float]:
    """The mean of each recorded training metric over the steps that logged it, and over the first
    tenth of them (``KEY@first_tenth``: what the start gave each method to learn from)."""
    out = {}
    for key, values in seen.items():
        if values:
            head = values[:max(1, len(values) // 10)]
            out[key] = sum(values) / len(values)
            out[f"{key}@first_tenth"] = sum(head) / len(head)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", default="2,3,4,5")
    p.add_argument("--env", default="decision_chain", choices=["decision_chain", "decision_path"],
                   help="decision_path: each level's right move is fixed but unstated (no rule shared by levels)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--methods", default="grpo,vppo")
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--target", type=float, default=0.5)
    p.add_argument("--thresholds", default="",
                   help="lower held-out pass@1 levels, comma-separated, whose steps are read from the same curves "
                        "(a run goes on until it reaches --target, so each curve passes every lower level first)")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--sft-examples", type=int, default=2000)
    p.add_argument("--eval-instances", type=int, default=64)
    p.add_argument("--noise", type=float, default=0.0, help="VPPO's first-error corruption rate")
    p.add_argument("--decision-noise", type=float, default=0.0,
                   help="build the start from traces that take the wrong digit at each level with this "
                        "probability, independently (the per-step errors Theorem 1 assumes)")
    p.add_argument("--plot", default=None)
    p.add_argument("--plot-curves", default=None, help="a PNG of mean held-out pass@1 against RL step, one panel per depth")
    p.add_argument("--base", default=None, help="a policy folder to start from instead of the SFT'd tiny model; "
                   "'{seed}' in it is replaced by the seed (one base per seed)")
    p.add_argument("--lr", type=float, default=3e-4, help="RL learning rate")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--runs", default=None, help="a JSON-lines file: each finished run is appended to it, and runs "
                   "already in it are not repeated (an interrupted benchmark resumes where it stopped)")
    args = p.parse_args()
    levels = sorted({float(x) for x in args.thresholds.split(",") if x.strip()} | {args.target})
    if not 0 <= args.decision_noise <= 1:
        p.error(f"--decision-noise must be in [0, 1], got {args.decision_noise}")
    if levels[-1] != args.target:
        p.error(f"--thresholds must be at most --target ({args.target})")
    depths = [int(d) for d in args.depths.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    torch.set_num_threads(args.threads)
    settings = {k: getattr(args, k) for k in ("target", "max_steps", "eval_every", "prompts", "sft_examples",
                                              "eval_instances", "noise", "base", "lr")}
    if args.env != "decision_chain":
        settings["env"] = args.env
    if args.decision_noise:
        settings["decision_noise"] = args.decision_noise
    done = {}
    if args.runs and Path(args.runs).exists():
        for line in Path(args.runs).read_text().splitlines():
            run = json.loads(line) if line.strip() else {}
            if run.get("settings") == settings:  # a run made with other settings is not this one
                done[(run["seed"], run["depth"], run["method"])] = run
    runs = []
    for seed in seeds:
        start = None
        for depth in depths:
            for method in methods:
                run = done.get((seed, depth, method))
                if run is None:
                    start = start or build_start(depths, seed, args)
                    run = steps_to_target(start, depth, method, seed, args) | {"settings": settings}
                    if args.runs:
                        with open(args.runs, "a") as f:
                            f.write(json.dumps(run) + "\n")
                runs.append(run)
    summary = summarize(runs, depths, methods, args.max_steps, levels)
    print(json.dumps({"benchmark": "theorem1_depth", "target": args.target, "max_steps": args.max_steps,
                      "depths": depths, "seeds": seeds, "noise": args.noise, "base": args.base, "lr": args.lr,
                      "decision_noise": args.decision_noise, "levels": levels, "summary": summary,
                      "growth": growth(runs, depths, methods, args.max_steps), "runs": runs,
                      "machine": platform.machine()}))
    if args.plot:
        plot(summary, depths, methods, args)
    if args.plot_curves:
        plot_curves(runs, depths, methods, args.plot_curves)


def first_at(curve: list, level: float) -> int | None:
    """The step of the first evaluation at or above ``level``; None if none is."""
    return next((step for step, acc in curve if acc >= level), None)


def summarize(runs: list[dict], depths: list[int], methods: list[str], max_steps: int,
              levels: list[float] | None = None) -> dict:
    """Per depth and method, over seeds: how many reached the target, the steps to it with a run that
    never did counted at ``max_steps`` (so a mean with censored runs is a lower bound), the start's
    and the best held-out pass@1 within the budget; the same steps for every level in ``levels``
    (``steps_to``); the last evaluation's pass@1; and the paired difference of each later method to
    the first (steps, censored at the cap, to the target and to each level; best pass@1; the last pass@1 where no run of the pair
    stopped early; and ``at_common_step``: pass@1 at the last evaluation every run of the depth made,
    of every method and seed, before any of them stopped at the target: a fixed-budget comparison
    read from the same curves)."""
    from worldsmith.eval.stats import mean_interval, paired_difference

    def capped_at(r: dict, level: float) -> int:
        got = first_at(r["curve"], level)
        return max_steps if got is None else got

    def steps_to(rs: list[dict], level: float) -> dict:
        got = [first_at(r["curve"], level) for r in rs]
        return {"steps": got, "reached": sum(g is not None for g in got),
                "capped": mean_interval([capped_at(r, level) for r in rs]).to_json()}

    out: dict = {}
    for d in depths:
        rows = {m: sorted((r for r in runs if r["depth"] == d and r["method"] == m), key=lambda r: r["seed"])
                for m in methods}
        entry: dict = {}
        for m, rs in rows.items():
            if not rs:
                continue
            capped = [max_steps if r["steps_to_target"] is None else r["steps_to_target"] for r in rs]
            entry[m] = {"reached": sum(r["steps_to_target"] is not None for r in rs), "runs": len(rs),
                        "steps": [r["steps_to_target"] for r in rs],
                        "steps_capped": mean_interval(capped).to_json(),
                        "start": mean_interval([r["curve"][0][1] for r in rs]).to_json(),
                        "best": mean_interval([max(a for _, a in r["curve"]) for r in rs]).to_json(),
                        "last": mean_interval([r["curve"][-1][1] for r in rs]).to_json(),
                        "steps_to": {str(level): steps_to(rs, level) for level in levels or []}}
        first = methods[0]
        for m in methods[1:]:
            a, b = rows.get(m, []), rows.get(first, [])
            pairs = [(x, y) for x in a for y in b if x["seed"] == y["seed"]]
            if len(pairs) >= 2:
                def cap(r):
                    return max_steps if r["steps_to_target"] is None else r["steps_to_target"]
                entry[f"{m}-{first}"] = {
                    "steps_capped": paired_difference([cap(x) for x, _ in pairs], [cap(y) for _, y in pairs]).to_json(),
                    "best": paired_difference([max(v for _, v in x["curve"]) for x, _ in pairs],
                                              [max(v for _, v in y["curve"]) for _, y in pairs]).to_json(),
                    "steps_to": {str(level): paired_difference([capped_at(x, level) for x, _ in pairs],
                                                               [capped_at(y, level) for _, y in pairs]).to_json()
                                 for level in levels or []}}
                common = common_step([r for rs in rows.values() for r in rs])
                if common:
                    at = [(dict(x["curve"])[common], dict(y["curve"])[common]) for x, y in pairs]
                    entry[f"{m}-{first}"]["at_common_step"] = {
                        "step": common, **paired_difference([u for u, _ in at], [v for _, v in at]).to_json()}
                if all(x["curve"][-1][0] == y["curve"][-1][0] == max_steps for x, y in pairs):
                    # neither run stopped early: their last evaluations are at the same step
                    entry[f"{m}-{first}"]["last"] = paired_difference([x["curve"][-1][1] for x, _ in pairs],
                                                                      [y["curve"][-1][1] for _, y in pairs]).to_json()
                    for key in FINAL:  # runs made before "final" was recorded are left out of these
                        kept = [(x["final"][key], y["final"][key]) for x, y in pairs
                                if x.get("final", {}).get(key) is not None and y.get("final", {}).get(key) is not None]
                        if len(kept) >= 2:
                            entry[f"{m}-{first}"][f"final_{key}"] = {
                                "seeds": len(kept), **paired_difference([u for u, _ in kept], [v for _, v in kept]).to_json()}
        out[str(d)] = entry
    return out


def common_step(runs: list[dict]) -> int | None:
    """The last evaluation step that every run in ``runs`` made (a run stops at the target, so this is
    where the earliest-stopping run stopped, or the budget); None at step 0 or without runs."""
    if not runs:
        return None
    shared = set.intersection(*({step for step, _ in r["curve"]} for r in runs))
    step = max(shared, default=0)
    return step or None


def growth(runs: list[dict], depths: list[int], methods: list[str], max_steps: int) -> dict:
    """How fast steps-to-target grow with H: per seed, the least-squares slope of the steps (censored
    runs counted at ``max_steps``) against depth, for each method; their mean over seeds, and the
    paired difference of each later method's slope to the first's (negative: grows more slowly).

    The same on a log scale (``log``): the slope of ln(steps) against depth, whose exponential is the
    factor by which the steps multiply per added level (exponential growth has a constant factor,
    linear growth a factor that falls towards 1 as H grows); ``log`` holds the per-seed slopes, their
    mean, the paired difference, and the mean factor exp(mean slope)."""
    import math

    from worldsmith.eval.stats import mean_interval, paired_difference

    def slopes(method: str, f=lambda y: y) -> dict[int, float]:
        out = {}
        for seed in sorted({r["seed"] for r in runs}):
            pts = [(r["depth"], f(max_steps if r["steps_to_target"] is None else r["steps_to_target"]))
                   for r in runs if r["seed"] == seed and r["method"] == method and r["depth"] in depths]
            if len(pts) == len(depths) >= 2:
                mx = sum(x for x, _ in pts) / len(pts)
                my = sum(y for _, y in pts) / len(pts)
                out[seed] = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
        return out

    def report(by: dict[str, dict[int, float]]) -> dict:
        out: dict = {m: {"per_seed": v, "slope": mean_interval(list(v.values())).to_json()}
                     for m, v in by.items() if len(v) >= 2}
        first = methods[0]
        for m in methods[1:]:
            seeds = sorted(set(by[m]) & set(by[first]))
            if len(seeds) >= 2:
                out[f"{m}-{first}"] = paired_difference([by[m][s] for s in seeds],
                                                        [by[first][s] for s in seeds]).to_json()
        return out

    out = report({m: slopes(m) for m in methods})
    log = report({m: slopes(m, lambda y: math.log(max(1, y))) for m in methods})  # a start at the target: 0 steps
    for m in methods:
        if m in log:
            log[m]["factor_per_level"] = math.exp(log[m]["slope"]["mean"])
    out["log"] = log
    return out


def plot(summary: dict, depths: list[int], methods: list[str], args) -> None:
    """Left: steps to each pass@1 level against H (mean and 95% interval over seeds; ringed where some
    run never reached it, counted at the cap). Right: the start's held-out pass@1 and the best one a
    run measured (at most its last evaluation: a run stops at the target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted({float(x) for x in args.thresholds.split(",") if x.strip()} | {args.target})
    styles = ["-", "--", ":", "-."]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for k, method in enumerate(methods):
        colour = colours[k % len(colours)]
        rows = [(d, summary[str(d)][method]) for d in depths if method in summary[str(d)]]
        shift = (k - (len(methods) - 1) / 2) * 0.08
        for n, level in enumerate(reversed(levels)):
            cells = [r["steps_to"][str(level)] for _, r in rows]
            xs = [d + shift + (n - (len(levels) - 1) / 2) * 0.03 for d, _ in rows]
            ys = [c["capped"]["mean"] for c in cells]
            err = [[c["capped"]["mean"] - c["capped"]["low"] for c in cells],
                   [c["capped"]["high"] - c["capped"]["mean"] for c in cells]]
            left.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color=colour, linestyle=styles[n % len(styles)],
                          label=f"{method}, pass@1 >= {level:g}")
            short = [(x, y) for x, y, c in zip(xs, ys, cells) if c["reached"] < len(c["steps"])]
            if short:
                left.plot([x for x, _ in short], [y for _, y in short], marker="o", markersize=11, linestyle="none",
                          markerfacecolor="none", color=colour)
        ys = [r["best"]["mean"] for _, r in rows]
        err = [[r["best"]["mean"] - r["best"]["low"] for _, r in rows], [r["best"]["high"] - r["best"]["mean"] for _, r in rows]]
        right.errorbar([d + shift for d, _ in rows], ys, yerr=err, marker="o", capsize=3, color=colour, label=method)
    start = [(d, summary[str(d)][methods[0]]["start"]["mean"]) for d in depths if methods[0] in summary[str(d)]]
    right.plot([d for d, _ in start], [v for _, v in start], linestyle=":", color="grey", marker="x", label="start")
    left.axhline(args.max_steps, color="grey", linewidth=0.8, linestyle="--")
    left.set_xlabel("depth H")
    left.set_ylabel("RL steps to held-out pass@1 level")
    left.set_title(f"ringed: some seeds never reached it (counted at {args.max_steps})", fontsize=8)
    right.axhline(args.target, color="grey", linewidth=0.8, linestyle="--")
    right.set_xlabel("depth H")
    right.set_ylabel("best held-out pass@1 (a run stops at the target)", fontsize=8)
    for ax in (left, right):
        ax.set_xticks(depths)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)


def mean_curves(runs: list[dict], depth: int, method: str) -> list[tuple[int, dict]]:
    """Held-out pass@1 against RL step for one depth and method: at every evaluation step all of its
    runs made, the mean over seeds with its 95% interval (a run that stopped at the target ends its
    curve there, so later steps are left out rather than averaged over fewer seeds)."""
    from worldsmith.eval.stats import mean_interval

    rs = [r for r in runs if r["depth"] == depth and r["method"] == method]
    if not rs:
        return []
    shared = sorted(set.intersection(*({step for step, _ in r["curve"]} for r in rs)))
    return [(step, mean_interval([dict(r["curve"])[step] for r in rs]).to_json()) for step in shared]


def plot_curves(runs: list[dict], depths: list[int], methods: list[str], path: str) -> None:
    """One panel per depth: each method's mean held-out pass@1 against RL step, with its 95% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 3.6), squeeze=False)
    for ax, depth in zip(axes[0], depths):
        for method in methods:
            curve = mean_curves(runs, depth, method)
            if not curve:
                continue
            steps = [s for s, _ in curve]
            line, = ax.plot(steps, [c["mean"] for _, c in curve], marker=".", label=method)
            ax.fill_between(steps, [c["low"] for _, c in curve], [c["high"] for _, c in curve],
                            color=line.get_color(), alpha=0.2)
        seeds = len({r["seed"] for r in runs if r["depth"] == depth})
        ax.set_title(f"depth {depth}, {seeds} seeds (mean, 95% interval)", fontsize=9)
        ax.set_xlabel("RL step")
        ax.set_ylabel("held-out pass@1")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
