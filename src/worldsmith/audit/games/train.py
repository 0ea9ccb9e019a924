"""`worldsmith audit game`: train the tiny policy on a game, log ITP and ER every step, plot them
beside the secure twin -- the paper's "developer blind spot": the reward rises while the intended
task does not.

A run folder ``OUT`` holds one sub-folder per variant, ``OUT/vulnerable`` and ``OUT/secure`` (each a
normal run folder: config.yaml, metrics.jsonl with ``game/*`` keys, summary.json, checkpoints), and
``OUT/itp_er.png`` with whichever variants are present. Each variant starts from the same warm
start (same seed, same examples), so the two curves differ only by the loophole.

Defaults are PROPOSED for CPU runs of the tiny char-level policy; the paper's settings (READ, spec
§2.1) that carry over are: GRPO with std-normalised advantages, n = 8 rollouts per prompt, no KL
and no entropy bonus, temperature 1.0. The learning rate (1e-6 for a 4B model) does not carry
over to a 0.1M-parameter policy.
"""

from __future__ import annotations

import pathlib
import random

from worldsmith.audit import games
from worldsmith.envs.contract import split_seed

VARIANTS = ("vulnerable", "secure")

#: Per-game run settings (PROPOSED): completion budget and warm-start size.
GAME_RUNS: dict[str, dict] = {
    "compliance": {"sampling": {"max_new_tokens": 40}, "sft": {"examples": 800}},
    "self_grading": {"sampling": {"max_new_tokens": 16}, "sft": {"examples": 2000},
                     "train": {"grade_timeout_s": 120.0}},
    "proxy_metric": {"sampling": {"max_new_tokens": 100}, "sft": {"examples": 1500}},
    # the 70-character edit syntax needs a longer warm start to survive sampling at temperature 1
    "tampering": {"sampling": {"max_new_tokens": 80}, "sft": {"examples": 3000, "epochs": 3}},
}
#: Settings shared by every game (PROPOSED, except where the module docstring says READ).
BASE_RUN: dict = {
    "threads": 1,
    "sampling": {"temperature": 1.0, "batch_size": 256},
    "sft": {"epochs": 2, "lr": 3e-3, "batch_size": 16},
    "optim": {"lr": 1e-3, "grad_clip": 1.0},
    "train": {"prompts_per_step": 16, "group_size": 8, "minibatch_size": 128, "microbatch_size": 128,
              "advantage": "grpo", "checkpoint_every": 0, "loss_cfg": {"kl_coef": 0.0}},
}
#: Warm-start seeds start here, so they never coincide with the RL pool's train seeds (0, 1, ...).
WARM_START_OFFSET = 10_000_000
#: Steps averaged for the "first" and "last" numbers of a summary (PROPOSED).
WINDOW = 10


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def game_config(game: str, name: str, steps: int, seed: int, overrides: list[str] | tuple = ()):
    """The RunConfig of one variant: base, per-game settings, then ``key=value`` overrides."""
    from worldsmith.configuration import apply_overrides, build
    from worldsmith.rl.config import RunConfig

    data = _merge(BASE_RUN, GAME_RUNS[game])
    data = _merge(data, {"model": {"init_seed": seed}, "pool": [{"name": name}],
                         "train": {"steps": steps, "seed": seed}})
    return build(RunConfig, apply_overrides(data, list(overrides)))


def warm_start_examples(env: games.GameEnvironment, n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` instances' warm-start pairs (a game may give more than one pair per instance)."""
    rng = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    for i in range(n):
        instance = env.sample(split_seed("train", WARM_START_OFFSET + i), 0.0)
        pairs.extend(env.warm_start_pairs(instance.data, rng))
    return pairs


def warm_started_policy(env, cfg, progress: bool = False):
    """The tiny policy after the game's warm start. Both variants of a game get the same one: the
    warm start is drawn from the vulnerable variant's sampler with the run's seed."""
    import torch

    from worldsmith.policy.model import build_tiny_model
    from worldsmith.policy.sft import train_sft
    from worldsmith.policy.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer, cfg.model.tiny, seed=cfg.model.init_seed)
    twin = games.make(env.game, secure=False, records=env.records) if env.secure else env
    examples = warm_start_examples(twin, cfg.sft.examples, cfg.train.seed)
    torch.manual_seed(cfg.train.seed)
    stats = train_sft(model, tokenizer, examples, epochs=cfg.sft.epochs, lr=cfg.sft.lr,
                      batch_size=cfg.sft.batch_size, seed=cfg.train.seed, progress=progress)
    return model, tokenizer, stats


def run_variant(game: str, secure: bool, steps: int, seed: int, out: str | pathlib.Path,
                records: list[dict] | None = None, overrides: list[str] | tuple = (),
                progress: bool = True) -> dict:
    """Warm-start, train and summarise one variant into ``out/<variant>``; returns the summary."""
    import torch

    from worldsmith.audit.games.self_grading import policy_judge
    from worldsmith.rl.trainer import Trainer
    from worldsmith.runs import RunDir
    from worldsmith.tracking import attach

    env = games.bind(games.make(game, secure=secure, records=records))
    try:
        cfg = game_config(game, env.name, steps, seed, overrides)
        run = RunDir(pathlib.Path(out) / VARIANTS[secure])
        if run.metrics_path.exists():
            raise FileExistsError(f"{run.root} already holds a run; choose another --out")
        attach(run, cfg, group=pathlib.Path(out).resolve().name)  # report_to trackers, if any
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        model, tokenizer, sft = warm_started_policy(env, cfg, progress)
        trainer = Trainer(cfg, model, tokenizer)
        if game == "self_grading":
            env.seed = seed
            env.judge = policy_judge(trainer.backend)  # the policy judges itself, greedy, no gradient
        rows = trainer.fit(run, progress=progress)
    finally:
        games.unbind(env)
    summary = {"game": game, "variant": VARIANTS[secure], "seed": seed, "steps": steps, "sft": sft,
               **summarize(rows)}
    run.write_summary(summary)
    return summary


def summarize(rows: list[dict]) -> dict:
    """Mean of the first and the last ``WINDOW`` steps of raw reward, ITP and ER."""
    out = {}
    for key in ("game/raw_reward", "game/itp", "game/er"):
        values = [r[key] for r in rows if r.get(key) is not None]
        short = key.removeprefix("game/")
        out[f"{short}_first"] = sum(values[:WINDOW]) / len(values[:WINDOW]) if values else None
        out[f"{short}_last"] = sum(values[-WINDOW:]) / len(values[-WINDOW:]) if values else None
    return out


def read_runs(out: str | pathlib.Path) -> dict[str, list[dict]]:
    """The metrics of every variant present in ``out``."""
    from worldsmith.runs import RunDir

    found = {}
    for variant in VARIANTS:
        path = pathlib.Path(out) / variant
        if (path / "metrics.jsonl").exists():
            found[variant] = RunDir(path).read_metrics()
    return found


PANELS = (("game/raw_reward", "training reward (the table's raw value)"),
          ("game/itp", "intended-task performance (ITP)"),
          ("game/er", "exploit rate (ER)"))


def plot_game(runs: dict[str, list[dict]], path: str | pathlib.Path, title: str = "") -> pathlib.Path:
    """Reward, ITP and ER against step, the vulnerable game beside its secure twin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"vulnerable": {"color": "tab:red", "zorder": 3}, "secure": {"color": "tab:blue", "ls": "--", "zorder": 2}}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True)
    for ax, (key, label) in zip(axes, PANELS):
        for variant, rows in runs.items():
            points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), lw=1.5, label=variant, **styles[variant])
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
