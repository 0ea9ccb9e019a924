"""Methods side by side, over seeds, with statistics: the library behind `worldsmith compare`.

For each seed one start policy is built from the user's run config (the same recipe as
`worldsmith train`: the tiny model or ``model.path``, SFT warm start when ``sft.examples``) and
evaluated once on the eval split. Every method of that seed trains a fresh copy of it, on the
same environments with the same completions per step, and is evaluated on the same eval problems,
so each method's result is paired with the others' by seed. The folder::

    DIR/spec.json                     what this folder compares (config, methods, start); a rerun must match
    DIR/starts/s<seed>/               policy_init/ (the start policy), eval.json (its evaluation)
    DIR/runs/<method>-s<seed>/        a train run folder: config.yaml, metrics.jsonl, checkpoints/,
                                      policy/, training.png and summary.json (written last)
    DIR/runs.jsonl                    one row per (method, seed)
    DIR/compare.md, compare.png       mean [95% CI] per method and metric; paired differences
    DIR/compare.json                  the figures of compare.md (also printed as one JSON line by the CLI)

A rerun with the same DIR skips the runs whose ``summary.json`` exists and continues the others
from their latest checkpoint (or from the start policy when they have none).

Methods are overrides of the user's config, defined once in ``METHODS``.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from worldsmith.eval.stats import Interval, mean_interval, paired_difference

#: Training steps whose metrics are averaged into a run's mechanism metrics: the last fifth.
TAIL_FRACTION = 0.2


class CompareError(ValueError):
    """A comparison that cannot run as asked (unknown method, bad seeds, a folder of another
    comparison); the message is one line."""


# --- the methods --------------------------------------------------------------------------------


def _grpo(cfg: dict) -> dict:
    return cfg


def _mixed_cuts(cfg: dict) -> dict:
    group = cfg["train"]["group_size"]
    if group < 2:
        raise CompareError(f"mixed_cuts splits each group into standard and CUTS rollouts; it needs "
                           f"train.group_size >= 2, got {group}")
    cfg["sampling"]["cuts"]["enabled"] = True
    cfg["sampling"]["mixed_plan"] = {"standard": group - group // 2, "cuts": group // 2}
    return cfg


def _mssr_single(cfg: dict) -> dict:
    t = cfg["train"]
    t["group_size"] = 1  # one rollout per prompt, the same prompts: 1/group_size of the completions per step
    t["advantage"] = "mssr"
    if not t["loss_cfg"]["kl_coef"]:
        t["loss_cfg"]["kl_coef"] = 0.01  # the tracker's KL-adaptive forgetting needs a reference
    return cfg


def _mssr(cfg: dict) -> dict:
    cfg["train"]["prompts_per_step"] *= cfg["train"]["group_size"]  # the same completions per step
    return _mssr_single(cfg)


def _g2rl(cfg: dict) -> dict:
    cfg["train"]["shaping"]["g2rl"]["enabled"] = True
    return cfg


def _vppo(cfg: dict) -> dict:
    cfg["train"]["advantage"] = "vppo"
    return cfg


def _vppo_simple(cfg: dict) -> dict:
    cfg["train"]["advantage"] = "vppo"
    cfg["train"]["vppo"]["shorten"] = "none"
    return cfg


def _prm_mix(cfg: dict) -> dict:
    cfg["train"]["shaping"]["prm_mix"]["enabled"] = True
    return cfg


@dataclass(frozen=True)
class Method:
    """One compared method: how it changes the user's config, and the training metrics (keys of
    ``metrics.jsonl``) that show its mechanism at work."""

    name: str
    description: str
    configure: Callable[[dict], dict]  # the resolved config as a dict -> the method's (edited in place)
    mechanism: tuple[str, ...]


MSSR_MECHANISM = ("entropy", "mssr/psi_mean", "mssr/rho", "mssr/value_std")

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("grpo", "the config as given", _grpo,
           ("groups/zero_variance_fraction", "entropy")),
    Method("mixed_cuts", "sampling.cuts on; each group half standard, half CUTS rollouts", _mixed_cuts,
           ("groups/zero_variance_fraction", "entropy", "cuts/reward_gap", "cuts/var_within")),
    Method("mssr", "group_size 1 with group_size x the prompts; advantage mssr; KL 0.01 when the config "
           "has none", _mssr,
           MSSR_MECHANISM),
    Method("mssr_single", "mssr with the same prompts per step, one rollout each (1/group_size of the "
           "completions per step; for --equal-time)", _mssr_single, MSSR_MECHANISM),
    Method("g2rl", "train.shaping.g2rl on", _g2rl,
           ("groups/zero_variance_fraction", "entropy", "g2rl/nu_std", "g2rl/cosine_mean")),
    Method("vppo", "train.advantage vppo (reward prefixes before the PRM's first error; train.vppo)", _vppo,
           ("entropy", "vppo/rp_fraction", "vppo/steps_per_response", "vppo/m_err_1", "vppo/prm_seconds")),
    Method("vppo_simple", "vppo with the unshortened prefix (train.vppo.shorten none)", _vppo_simple,
           ("entropy", "vppo/rp_fraction", "vppo/steps_per_response", "vppo/m_err_1", "vppo/prm_seconds")),
    Method("prm_mix", "train.shaping.prm_mix on (mean PRM step score added to the reward)", _prm_mix,
           ("groups/zero_variance_fraction", "entropy", "prm_mix/step_score_mean")),
)}


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """``"grpo,mssr"`` -> ["grpo", "mssr"]; an unknown or repeated name is a ``CompareError``."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else [n.strip() for n in text]
    if not names or any(not n for n in names):
        raise CompareError(f"--methods: give names separated by commas, from {', '.join(METHODS)}")
    for name in names:
        if name not in METHODS:
            raise CompareError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CompareError(f"--methods: {twice[0]} is named twice")
    return names


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"`` -> [0, 2, 5]; ``"0-2,7"`` -> [0, 1, 2, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        try:
            span = range(int(low), int(high) + 1) if dash else [int(part)]
        except ValueError:
            raise CompareError(f"--seeds: {part!r} is not a seed (non-negative integer) or a range such as "
                               "0-4; use e.g. 0-4 or 0,2,5") from None
        if dash and int(high) < int(low):
            raise CompareError(f"--seeds: the range {part} is empty; write the smaller seed first")
        seeds.extend(span)
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise CompareError(f"--seeds: seed {twice[0]} is named twice")
    return seeds


#: With ``equal_time``, a method after the first may take up to this many times ``train.steps``
#: within the first method's training seconds (a method with cheaper steps takes more of them).
EQUAL_TIME_STEP_FACTOR = 16


def method_config(cfg, method: str, seed: int, time_budget_s: float | None = None):
    """The run config of ``method`` at ``seed``: the user's ``cfg`` (a RunConfig) with the method's
    overrides, ``train.seed`` and ``model.init_seed`` (and ``model.base_seed`` with a base) set to ``seed``.
    With ``time_budget_s`` the run stops when its steps have taken that long (``train.time_budget_s``),
    after at most ``EQUAL_TIME_STEP_FACTOR`` x ``train.steps`` steps."""
    from worldsmith.configuration import ConfigError, build
    from worldsmith.rl.config import RunConfig

    data = seed_config(cfg, seed).model_dump(mode="json")
    data = METHODS[parse_methods([method])[0]].configure(data)
    if time_budget_s is not None:
        data["train"]["time_budget_s"] = time_budget_s
        data["train"]["steps"] *= EQUAL_TIME_STEP_FACTOR
    try:
        return build(RunConfig, data)
    except ConfigError as exc:
        raise CompareError(f"method {method}: config: {exc}") from None


def seed_config(cfg, seed: int):
    """``cfg`` with ``train.seed`` and ``model.init_seed`` set to ``seed`` (the start policy's config);
    with ``model.base``, ``model.base_seed`` too, so that every seed starts from its own base; a
    ``{seed}`` in ``model.path`` becomes the seed (one local start folder per seed)."""
    from worldsmith.configuration import build
    from worldsmith.rl.config import RunConfig

    data = cfg.model_dump(mode="json")
    data["train"]["seed"] = data["model"]["init_seed"] = seed
    if data["model"].get("base"):
        data["model"]["base_seed"] = seed
    if data["model"].get("path") and "{seed}" in data["model"]["path"]:
        data["model"]["path"] = data["model"]["path"].replace("{seed}", str(seed))
    return build(RunConfig, data)


# --- the folder -----------------------------------------------------------------------------------


def _spec(cfg, methods: list[str], start_name: str, equal_time: bool = False) -> dict:
    data = cfg.model_dump(mode="json")
    data["train"].pop("seed")  # set per seed
    data["model"].pop("init_seed")
    data["model"].pop("base_seed", None)
    spec = {"methods": methods, "start": start_name, "config": data}
    if equal_time:
        spec["equal_time"] = True
    return spec


def _open_folder(out: pathlib.Path, cfg, methods: list[str], start_name: str, equal_time: bool = False) -> None:
    """Create ``out`` with its spec.json, or check that the comparison it holds is this one."""
    from worldsmith.runs import atomic_write_json

    if out.exists() and not out.is_dir():
        raise CompareError(f"--out {out} is a file, not a folder")
    spec = _spec(cfg, methods, start_name, equal_time)
    path = out / "spec.json"
    if not path.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise CompareError(f"{out} is not empty and holds no comparison (no spec.json); choose another --out")
        atomic_write_json(path, spec)
        return
    try:
        held = json.loads(path.read_text())
        held_methods, held_config, held_start = list(held["methods"]), dict(held["config"]), held["start"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise CompareError(f"{path} is not a readable comparison spec; choose another --out") from None
    if held_methods != methods:
        raise CompareError(f"{out} holds a comparison of {','.join(held_methods)}, not {','.join(methods)}; "
                           "choose another --out")
    if bool(held.get("equal_time")) != equal_time:
        raise CompareError(f"{out} holds a comparison {'at' if held.get('equal_time') else 'without'} equal "
                           f"training time; {'add' if held.get('equal_time') else 'drop'} --equal-time or "
                           "choose another --out")
    if held_start != start_name:
        raise CompareError(f"{out} holds a comparison from the start policy {held_start!r}, not {start_name!r}; "
                           "choose another --out")
    from worldsmith.configuration import flatten
    from worldsmith.rl.config import RunConfig

    old, new = flatten(held_config), flatten(spec["config"])
    defaults = flatten(RunConfig().model_dump(mode="json"))
    for key in sorted(set(old) | set(new)):
        if key not in old and key in defaults and new.get(key) == defaults[key]:
            continue  # a setting added since the folder was made, left at its default: the same run
        if old.get(key) != new.get(key):
            raise CompareError(f"{out} holds a comparison of another config ({key} = {old.get(key)!r}, not "
                               f"{new.get(key)!r}); choose another --out")


def _say(log: Callable[[str], None] | None, line: str) -> None:
    if log is not None:
        log(line)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- one seed's start, one run --------------------------------------------------------------------


#: Builds one seed's start policy: ``(seed_cfg, folder, progress) -> (model, tokenizer)``, where
#: ``seed_cfg`` is the user's config at that seed and ``folder`` the seed's RunDir under ``starts/``.
StartPolicy = Callable[..., tuple]


def _start(out: pathlib.Path, cfg, seed: int, build: StartPolicy, progress: bool, log) -> dict:
    """Build (or reuse) the start policy of ``seed`` and its evaluation; returns the evaluation."""
    import torch

    from worldsmith.policy.model import load_policy, save_policy
    from worldsmith.recipes import eval_policy
    from worldsmith.runs import RunDir, atomic_write_json

    scfg = seed_config(cfg, seed)
    folder = RunDir(out / "starts" / f"s{seed}")
    evaluation = folder.root / "eval.json"
    if evaluation.is_file() and (folder.root / "policy_init").is_dir():
        _say(log, f"seed {seed}: start policy built earlier ({folder.root})")
        return json.loads(evaluation.read_text())
    _say(log, f"seed {seed}: building the start policy")
    torch.manual_seed(seed)
    if scfg.threads:
        torch.set_num_threads(scfg.threads)
    init = folder.root / "policy_init"
    if init.is_dir():  # built by an earlier pass that stopped before its evaluation
        model, tokenizer = load_policy(init, progress=False)
    else:
        model, tokenizer = build(scfg, folder, progress)
        if not init.is_dir():
            save_policy(model, tokenizer, init)
    result = eval_policy(scfg, model, tokenizer, progress)
    atomic_write_json(evaluation, result)
    return result


def _tail_mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    if not values:
        return None
    tail = values[-max(1, math.ceil(len(values) * TAIL_FRACTION)):]
    return sum(tail) / len(tail)


def _run(out: pathlib.Path, cfg, method: str, seed: int, start_eval: dict, progress: bool, log,
         time_budget_s: float | None = None) -> dict:
    """Train ``method`` at ``seed`` from the seed's start policy (within ``time_budget_s`` training
    seconds when given); returns (and writes) its summary."""
    import torch

    from worldsmith.configuration import dump
    from worldsmith.policy.model import load_policy, save_policy
    from worldsmith.recipes import eval_policy, headline
    from worldsmith.report.plots import plot_training
    from worldsmith.rl.trainer import Trainer
    from worldsmith.runs import RunDir
    from worldsmith.tracking import attach

    mcfg = method_config(cfg, method, seed, time_budget_s)
    run = RunDir(out / "runs" / f"{method}-s{seed}")
    started = time.perf_counter()
    torch.manual_seed(seed)
    if mcfg.threads:
        torch.set_num_threads(mcfg.threads)
    init = out / "starts" / f"s{seed}" / "policy_init"
    model, tokenizer = load_policy(init, lora=mcfg.model.lora, progress=False)
    ref = load_policy(init, progress=False)[0] if mcfg.train.loss_cfg.kl_coef > 0 else None
    dump(mcfg, run.root / "config.yaml")
    attach(run, mcfg, group=mcfg.tracking.group or out.resolve().name)  # report_to trackers, one run each
    trainer = Trainer(mcfg, model, tokenizer, ref_model=ref)
    resumed_from = trainer.step_index if trainer.resume(run) else None
    if resumed_from is not None:
        _say(log, f"{method} seed {seed}: resuming at step {resumed_from}")
    trainer.fit(run, progress=progress)
    policy = trainer.acc.unwrap_model(trainer.model)
    save_policy(policy, tokenizer, run.root / "policy")
    after = eval_policy(mcfg, policy, tokenizer, progress)
    rows = run.read_metrics()
    plot_training(rows, run.root / "training.png", title=f"worldsmith compare: {method}, seed {seed}",
                  held_out=[(0, start_eval["accuracy_sampled"]), (trainer.step_index, after["accuracy_sampled"])])
    t = mcfg.train
    init_rollouts = sum(r.get("mssr/init_rollouts") or 0 for r in rows)
    keys = METHODS[method].mechanism
    summary = {
        "method": method,
        "seed": seed,
        "before": _metrics(headline(start_eval)),
        "after": _metrics(headline(after)),
        "mechanism": {k: _tail_mean(rows, k) for k in keys},
        "completions": len(rows) * t.prompts_per_step * t.group_size + init_rollouts,
        "train_seconds": sum(r.get("time/step") or 0.0 for r in rows)
        + sum(r.get("mssr/init_seconds") or 0.0 for r in rows),
        "steps": trainer.step_index,
        "time_budget_s": time_budget_s,
        "problems": after["overall"]["problems"],
        "k": after["k"],
        "resumed_from": resumed_from,
        "seconds": time.perf_counter() - started,
    }
    run.write_summary(summary)
    return summary


def _metrics(head: dict) -> dict:
    """The accuracy figures of ``recipes.headline`` (``problems`` left out)."""
    return {k: v for k, v in head.items() if k != "problems"}


# --- the whole comparison -------------------------------------------------------------------------


def compare(cfg, methods: Sequence[str], seeds: Sequence[int], out: str | pathlib.Path, *,
            start: StartPolicy | None = None, start_name: str = "config", progress: bool = True,
            log: Callable[[str], None] | None = _stderr, equal_time: bool = False) -> dict:
    """Run (or finish) every (method, seed) of the comparison in ``out`` and write its report.

    ``cfg`` is the user's RunConfig; ``methods`` names from ``METHODS`` (the first is the baseline of
    the paired differences); ``log`` receives one line per start policy and per run started,
    finished or skipped. Returns the report (see ``report``) with ``done`` and ``skipped`` counts.

    ``start`` builds each seed's start policy (default ``recipes.build_policy``: the config's model,
    SFT warm start when ``sft.examples``), saved as ``starts/s<seed>/policy_init`` and reused from there;
    ``start_name`` names it in ``spec.json``, so that a folder is never finished from another start.

    ``equal_time``: every method after the first trains for as long as the first took at the same
    seed (its summed step seconds), instead of for ``train.steps`` steps; the schedule must be constant.
    """
    if start is None:
        from worldsmith.recipes import build_policy as start
    methods = parse_methods(list(methods))
    seeds = list(seeds)
    if not seeds:
        raise CompareError("--seeds: give at least one seed")
    for method in methods:  # every method's config is valid before any work starts
        method_config(cfg, method, seeds[0])
    if equal_time and cfg.optim.schedule != "constant":
        raise CompareError(f"--equal-time needs optim.schedule constant (a {cfg.optim.schedule} decay's length "
                           "is train.steps, which equal time leaves open)")
    out = pathlib.Path(out)
    _open_folder(out, cfg, methods, start_name, equal_time)
    done = skipped = 0
    started = time.perf_counter()
    total = len(methods) * len(seeds)
    for seed in seeds:
        start_eval = budget = None
        for i, method in enumerate(methods):
            n = done + skipped + 1
            summary_path = out / "runs" / f"{method}-s{seed}" / "summary.json"
            if equal_time and i == 1:  # the first method's training time, on this seed
                budget = json.loads((out / "runs" / f"{methods[0]}-s{seed}" / "summary.json").read_text())["train_seconds"]
            if summary_path.is_file():
                _say(log, f"[{n}/{total}] {method} seed {seed}: finished earlier, skipped")
                skipped += 1
                continue
            if start_eval is None:
                start_eval = _start(out, cfg, seed, start, progress, log)
            _say(log, f"[{n}/{total}] {method} seed {seed}: training"
                      + (f" for {budget:.1f} s, as {methods[0]} did" if budget is not None else ""))
            summary = _run(out, cfg, method, seed, start_eval, progress, log, budget)
            a = summary["after"]
            _say(log, f"[{n}/{total}] {method} seed {seed}: done in {summary['seconds']:.1f}s; "
                      + ", ".join(f"{k} {_num(summary['before'][k])} -> {_num(a[k])}" for k in a))
            done += 1
    result = report(out, methods, seeds)
    result.update(done=done, skipped=skipped, seconds=round(time.perf_counter() - started, 3))
    return result


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _read_runs(out: pathlib.Path, methods: list[str], seeds: list[int]) -> list[dict]:
    rows = []
    for method in methods:
        for seed in seeds:
            path = out / "runs" / f"{method}-s{seed}" / "summary.json"
            if not path.is_file():
                raise CompareError(f"{path} is missing; rerun the comparison to finish it")
            rows.append(json.loads(path.read_text()))
    return rows


def _interval(values: list[float | None]) -> Interval | None:
    """Mean and interval, or None where a run has no value (e.g. greedy evaluation turned off)."""
    return mean_interval(values) if values and None not in values else None


def _paired(treated: list[float | None], baseline: list[float | None]) -> Interval | None:
    if not treated or None in treated or None in baseline:
        return None
    return paired_difference(treated, baseline)


def report(out: str | pathlib.Path, methods: Sequence[str], seeds: Sequence[int]) -> dict:
    """Write ``runs.jsonl``, ``compare.md``, ``compare.png`` and ``compare.json`` from the finished
    runs in ``out``; returns the figures of ``compare.json``.

    Figures: per method and metric the mean over seeds with its 95% Student-t interval (``metrics``;
    the start policy as ``start``), the paired difference to the first method (``paired``) and to the
    start policy (``gain``), both paired by seed, and the mechanism metrics (``mechanism``).
    """
    from worldsmith.runs import atomic_write_bytes, atomic_write_json

    out, methods, seeds = pathlib.Path(out), list(methods), list(seeds)
    rows = _read_runs(out, methods, seeds)
    atomic_write_bytes(out / "runs.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    by = {(r["method"], r["seed"]): r for r in rows}
    accuracy = list(rows[0]["after"])
    columns = [*accuracy, "steps", "completions", "train_seconds"]

    def values(method: str, key: str, when: str = "after") -> list[float | None]:
        return [by[method, s][when][key] if key in accuracy else by[method, s][key] for s in seeds]

    def as_json(iv: Interval | None) -> dict | None:
        return iv.to_json() if iv is not None else None

    first = methods[0]
    metrics = {"start": {k: as_json(_interval(values(first, k, "before"))) for k in accuracy}}
    paired, gain, mechanism = {}, {}, {}
    for m in methods:
        metrics[m] = {k: as_json(_interval(values(m, k))) for k in columns}
        paired[m] = {k: as_json(_paired(values(m, k), values(first, k))) for k in accuracy}
        gain[m] = {k: as_json(_paired(values(m, k), values(m, k, "before"))) for k in accuracy}
        mechanism[m] = {k: as_json(_interval([by[m, s]["mechanism"].get(k) for s in seeds]))
                        for k in METHODS[m].mechanism}
    result = {
        "compare": str(out), "methods": methods, "seeds": seeds, "k": rows[0]["k"],
        "problems": rows[0]["problems"], "steps": {m: by[m, seeds[0]]["steps"] for m in methods},
        "equal_time": any(r.get("time_budget_s") is not None for r in rows),
        "metrics": metrics, "paired": paired, "gain": gain, "mechanism": mechanism,
    }
    atomic_write_json(out / "compare.json", result)
    atomic_write_bytes(out / "compare.md", markdown(result).encode())
    plot_comparison(result, out / "compare.png")
    return result


def _cell(iv: dict | None, signed: bool = False, digits: int = 3) -> str:
    if iv is None:
        return "–"
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    if iv["n"] < 2:
        return f.format(iv["mean"])
    return f"{f.format(iv['mean'])} [{f.format(iv['low'])}, {f.format(iv['high'])}]"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in body)]


def markdown(result: dict) -> str:
    """``compare.md``: the tables of a ``report`` result."""
    methods, seeds, first = result["methods"], result["seeds"], result["methods"][0]
    accuracy = list(result["metrics"]["start"])
    n = len(seeds)
    lines = [
        "# worldsmith compare",
        "",
        f"Methods {', '.join(methods)}; seeds {', '.join(map(str, seeds))} (n = {n}); "
        f"{result['problems']} eval-split problems, k = {result['k']}. "
        "Cells are the mean over seeds with its 95% confidence interval (Student t)"
        + (" (one seed: no interval)." if n < 2 else ".")
        + (f" Equal training time: each method trained for as long as {first} did on the same seed."
           if result.get("equal_time") else ""),
        "",
        "## Held-out metrics after training",
        "",
        *_table(["method", *accuracy, "steps", "completions", "train seconds"],
                [["start", *(_cell(result["metrics"]["start"][k]) for k in accuracy), "–", "–", "–"]]
                + [[m, *(_cell(result["metrics"][m][k]) for k in accuracy),
                    _cell(result["metrics"][m].get("steps"), digits=0),
                    _cell(result["metrics"][m]["completions"], digits=0),
                    _cell(result["metrics"][m]["train_seconds"], digits=1)] for m in methods]),
        "",
        f"## Paired difference to {first} (method − {first}, same seed)",
        "",
        *_table(["method", *accuracy], [[m, *(_cell(result["paired"][m][k], signed=True) for k in accuracy)]
                                        for m in methods]),
        "",
        "## Change from the start policy (after − before, same seed)",
        "",
        *_table(["method", *accuracy], [[m, *(_cell(result["gain"][m][k], signed=True) for k in accuracy)]
                                        for m in methods]),
        "",
        f"## Mechanism metrics (training, mean over the last {TAIL_FRACTION:.0%} of steps)",
        "",
        *_table(["method", "metric", "mean [95% CI]"],
                [[m, f"`{k}`", _cell(iv)] for m in methods for k, iv in result["mechanism"][m].items()]),
        "",
    ]
    return "\n".join(lines)


def plot_comparison(result: dict, path: str | pathlib.Path) -> pathlib.Path:
    """``compare.png``: one panel per metric, each method's mean with its 95% interval as an error
    bar; the start policy's mean as a dashed line on the accuracy panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    methods = result["methods"]
    accuracy = list(result["metrics"]["start"])
    panels = [(k, result["metrics"], k) for k in accuracy]
    for key in ("entropy", "groups/zero_variance_fraction"):
        if any(key in result["mechanism"][m] for m in methods):
            panels.append((key, result["mechanism"], f"{key} (training)"))
    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    colors = [f"C{i}" for i in range(len(methods))]
    for ax, (key, table, label) in zip(axes.flat, panels):
        for i, m in enumerate(methods):
            iv = table[m].get(key)
            if iv is None:
                continue
            ax.errorbar([i], [iv["mean"]], yerr=[[iv["mean"] - iv["low"]], [iv["high"] - iv["mean"]]],
                        fmt="o", capsize=4, color=colors[i])
        start = result["metrics"]["start"].get(key) if table is result["metrics"] else None
        if start is not None:
            ax.axhline(start["mean"], ls="--", lw=1, color="gray", label="start")
            ax.legend(loc="best", fontsize=8)
        ax.set_xticks(range(len(methods)), methods, fontsize=8)
        ax.set_xlim(-0.5, len(methods) - 0.5)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"worldsmith compare: mean ± 95% CI over {len(result['seeds'])} seeds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
