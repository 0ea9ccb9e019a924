"""Runnable recipes behind the CLI: build or load a policy, warm-start it, train, evaluate.

Each recipe writes a run folder (DESIGN.md, "Runs"): ``config.yaml``, ``metrics.jsonl``,
``summary.json``, ``checkpoints/``, ``policy/`` (a normal HF folder) and PNG plots.
"""

from __future__ import annotations

import pathlib
import time

import torch

from worldsmith import tracking
from worldsmith.configuration import ConfigError, dump, flatten
from worldsmith.distributed import main_first, on_main
from worldsmith.eval.runner import evaluate
from worldsmith.policy.hf_backend import HFBackend, is_processor
from worldsmith.policy.model import build_tiny_model, load_policy, save_policy
from worldsmith.policy.sft import sft_examples, train_sft
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.report.plots import plot_training
from worldsmith.rl.config import RunConfig
from worldsmith.rl.trainer import Trainer
from worldsmith.runs import RunDir


def build_policy(cfg: RunConfig, run: RunDir, progress: bool = True):
    """The starting policy: ``run/policy_init`` when an earlier attempt saved it (resume), else a
    local HF model (``model.path``), a cached base policy (``model.base``, built on first use) or the
    tiny model, warm-started with SFT when ``sft.examples``."""
    saved = run.root / "policy_init"
    if saved.is_dir():
        return load_policy(saved, progress=progress)
    if cfg.model.path or cfg.model.base:
        if cfg.model.base:
            from worldsmith.base import base_policy, preset

            try:
                recipe = preset(cfg.model.base)
                if cfg.model.base_seed is not None:
                    recipe = recipe.model_copy(update={"seed": cfg.model.base_seed})
                source = str(base_policy(recipe, progress=progress)[2])
            except ConfigError as exc:
                raise ConfigError(f"model.base: {exc}") from None
        else:
            source = cfg.model.path
        model, tokenizer = load_policy(source, lora=cfg.model.lora, progress=progress)
        context = getattr(model.config, "max_position_embeddings", None)
        if context and cfg.sampling.max_new_tokens >= context:
            raise ConfigError(f"sampling.max_new_tokens = {cfg.sampling.max_new_tokens} leaves no room for the "
                              f"prompt in the context of {source} ({context} tokens)")
    else:
        tokenizer = build_char_tokenizer()
        model = build_tiny_model(tokenizer, cfg.model.tiny, seed=cfg.model.init_seed)
    sft_metrics = None
    if cfg.sft.examples and is_processor(tokenizer):
        raise ConfigError("sft.examples: the warm start takes text only, and this policy is a vision-language "
                          "model; warm-start it with `worldsmith vision warmstart` and set model.path")
    if cfg.sft.examples:
        specs = [(e.name, e.difficulty, e.weight) for e in cfg.pool]
        examples = sft_examples(specs, cfg.sft.examples, split="train", seed=cfg.train.seed,
                                with_steps=cfg.sft.with_steps)
        sft_metrics = train_sft(model, tokenizer, examples, epochs=cfg.sft.epochs, lr=cfg.sft.lr,
                                batch_size=cfg.sft.batch_size, seed=cfg.train.seed, progress=progress)
    save_policy(model, tokenizer, saved)
    if sft_metrics is not None:
        (run.root / "sft.json").write_text(__import__("json").dumps(sft_metrics, indent=2))
    return model, tokenizer


def eval_tasks(cfg: RunConfig) -> list[tuple[str, float]]:
    """The (environment, difficulty) tasks a run is evaluated on: ``eval.tasks``, else the pool's."""
    if cfg.eval.tasks is not None:
        return [(t.env, t.difficulty) for t in cfg.eval.tasks]
    return [(p.name, p.difficulty) for p in cfg.pool]


def eval_policy(cfg: RunConfig, model, tokenizer, progress: bool = True, seed: int | None = None) -> dict:
    backend = HFBackend(model, tokenizer, batch_size=cfg.sampling.batch_size)
    e = cfg.eval
    return evaluate(backend, eval_tasks(cfg), instances=e.instances,
                    samples=e.samples, temperature=e.temperature, max_new_tokens=cfg.sampling.max_new_tokens,
                    greedy=e.greedy, seed=cfg.train.seed if seed is None else seed, progress=progress)


def headline(summary: dict) -> dict:
    """The few numbers a person reads first from an evaluation summary."""
    o = summary["overall"]
    return {"accuracy_greedy": summary["accuracy_greedy"], "accuracy_sampled": summary["accuracy_sampled"],
            f"pass@{summary['k']}": o["pass@k"], f"maj@{summary['k']}": o["maj@k"], "problems": o["problems"],
            "step_validity": o.get("step_validity")}


def open_run(cfg: RunConfig, out: str | pathlib.Path, resume: bool) -> RunDir:
    """Seed torch, set its threads, and open the run folder (refusing one that holds a run unless
    resuming); writes the resolved config. With several processes the main one checks and
    prepares the folder, and its verdict holds for all."""
    torch.manual_seed(cfg.train.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = RunDir(out)
    on_main(lambda: _prepare_run(cfg, run, resume))
    tracking.attach(run, cfg)  # report_to: trackers get each metrics row; only a process that logs starts them
    return run


def _prepare_run(cfg: RunConfig, run: RunDir, resume: bool) -> None:
    left = [name for name in RUN_ARTEFACTS if (run.root / name).exists()]
    if not resume and left:
        raise FileExistsError(f"{run.root} already holds a run ({left[0]}); pass --resume to continue it or "
                              "choose another --out")
    if resume and (run.root / "config.yaml").is_file():
        _same_model(cfg, run.root / "config.yaml")
    if resume and run.latest_checkpoint() is None:
        _start_over(run)
    dump(cfg, run.root / "config.yaml")


#: What a run leaves in its folder, from its first moments on: a new run never starts among them.
RUN_ARTEFACTS = ("config.yaml", "policy_init", "sft.json", "eval_before.json", "metrics.jsonl", "checkpoints",
                 "funnel.jsonl", "archive.sqlite", "policy", "summary.json")


def _start_over(run: RunDir) -> None:
    """A run resumed without a checkpoint starts over from nothing: what the dead run left (its warm
    start included, whose random draws the fresh run must make again) would make it another run."""
    import shutil

    for name in RUN_ARTEFACTS:
        if name == "config.yaml":
            continue
        path = run.root / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for extra in ("archive.sqlite-wal", "archive.sqlite-shm"):
        (run.root / extra).unlink(missing_ok=True)


def _same_model(cfg: RunConfig, saved_path: pathlib.Path) -> None:
    """Refuse to resume a run whose policy was built from another ``model`` section (the saved
    weights would not be the configured model)."""
    import yaml

    try:
        saved = (yaml.safe_load(saved_path.read_text()) or {}).get("model") or {}
    except (yaml.YAMLError, AttributeError):
        raise FileExistsError(f"{saved_path}: not a readable run config; cannot resume this folder") from None
    old, new = flatten(saved), flatten(cfg.model.model_dump(mode="json"))
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise FileExistsError(f"--resume: the run in {saved_path.parent} was built with model.{key} = "
                                  f"{old.get(key)!r}, not {new.get(key)!r}; resume it with its own config")


def train_run(cfg: RunConfig, out: str | pathlib.Path, resume: bool = False, progress: bool = True,
              evaluate_before: bool = False) -> dict:
    """Build (or resume) a run, train it, evaluate on held-out seeds, write summary and plot."""
    run = open_run(cfg, out, resume)
    started = time.perf_counter()
    # the main process builds (and saves) the starting policy; the others then load the same one
    model, tokenizer = main_first(lambda: build_policy(cfg, run, progress))
    before = None
    if evaluate_before:
        before = on_main(lambda: _evaluate_before(cfg, run, model, tokenizer, progress))
    ref = None
    if cfg.train.loss_cfg.kl_coef > 0:
        ref, _ = load_policy(run.root / "policy_init")
    trainer = Trainer(cfg, model, tokenizer, ref_model=ref)
    resumed_from = trainer.step_index if resume and trainer.resume(run) else None
    def periodic_eval(trainer: Trainer, row: dict) -> None:
        every = cfg.train.eval_every
        if every and (row["step"] + 1) % every == 0 and row["step"] + 1 < cfg.train.steps:
            result = eval_policy(cfg, trainer.acc.unwrap_model(trainer.model), tokenizer, progress=False)
            row["eval/accuracy_sampled"] = result["accuracy_sampled"]
            row["eval/accuracy_greedy"] = result["accuracy_greedy"]

    rows = trainer.fit(run, progress=progress, on_step=periodic_eval)
    if not trainer.acc.is_main_process:
        return {}  # the main process evaluates and writes the summary
    policy = trainer.acc.unwrap_model(trainer.model)
    save_policy(policy, tokenizer, run.root / "policy")
    after = eval_policy(cfg, policy, tokenizer, progress)
    all_rows = run.read_metrics()
    held_out = [(0, before["accuracy_sampled"])] if before else []
    held_out.append((trainer.step_index, after["accuracy_sampled"]))
    plot_training(all_rows, run.root / "training.png", held_out=held_out,
                  title=f"worldsmith GRPO ({', '.join(p.name for p in cfg.pool)})")
    phases = {k.removeprefix("time/"): sum(r.get(k, 0.0) for r in all_rows) / max(1, len(all_rows))
              for k in all_rows[0] if k.startswith("time/")} if all_rows else {}
    summary = {
        "tasks": [{"env": env, "difficulty": d} for env, d in eval_tasks(cfg)],
        "before": headline(before) if before else None,
        "after": headline(after),
        "steps": trainer.step_index,
        "resumed_from": resumed_from,
        "seconds": time.perf_counter() - started,
        "seconds_per_step_by_phase": phases,
        "final_train_reward": rows[-1]["reward/mean"] if rows else None,
        "eval_before": before,
        "eval_after": after,
    }
    run.write_summary(summary)
    return summary


def _evaluate_before(cfg: RunConfig, run: RunDir, model, tokenizer, progress: bool) -> dict:
    """The starting policy's evaluation, kept in ``eval_before.json`` (reused on resume)."""
    import json

    before_path = run.root / "eval_before.json"
    if before_path.exists():
        return json.loads(before_path.read_text())
    before = eval_policy(cfg, model, tokenizer, progress)
    before_path.write_text(json.dumps(before, indent=2))
    return before


#: The quickstart's task: decision_chain at depths 6 to 8 (7 +- 1; half the problems at 7), depths
#: the base was trained on and the deepest of them the ones it gets wrong most; the eval split of
#: each holds far more than 1,000 distinct problems (90^H problems at depth H). Training on a range
#: of depths keeps the policy from fitting one answer length.
QUICKSTART_DEPTHS = (6, 7, 8)


def quickstart_config(seed: int = 0) -> RunConfig:
    """The embedded default run: the ``cpu`` base policy (built on first use, seeded by ``seed``),
    then GRPO on ``decision_chain`` at depths ``QUICKSTART_DEPTHS``, evaluated on unseen problems of
    each depth.

    Training and evaluation problems are disjoint (``problem_split``): the evaluation is on
    problems no training seed draws.
    """
    from worldsmith.configuration import build
    from worldsmith.envs.decision_chain import depth_difficulty

    low, high = (depth_difficulty(d) for d in (QUICKSTART_DEPTHS[0], QUICKSTART_DEPTHS[-1]))
    return build(RunConfig, {
        "threads": 2,
        "model": {"base": "cpu", "base_seed": seed},
        "pool": [{"name": "decision_chain", "difficulty": (low + high) / 2, "spread": (high - low) / 2}],
        "sampling": {"max_new_tokens": 72, "temperature": 1.0},
        "optim": {"lr": 1e-4, "grad_clip": 1.0},
        "train": {"steps": 150, "prompts_per_step": 16, "group_size": 8, "minibatch_size": 128,
                  "microbatch_size": 128, "checkpoint_every": 25, "seed": seed},
        "eval": {"tasks": [{"env": "decision_chain", "difficulty": depth_difficulty(d)} for d in QUICKSTART_DEPTHS],
                 "instances": 512, "samples": 4, "temperature": 1.0},
    })


def synth_run(cfg, out: str | pathlib.Path, resume: bool = False, progress: bool = True) -> dict:
    """Build (or resume) an EvoEnv run in ``out``: warm-start the policy (``sft``, on the seed
    environments), train with the generator and solver roles, evaluate on held-out seeds of the
    seed environments, and write the funnel plot, training plot and summary."""
    from worldsmith.synth.archive import Archive, restore_snapshot
    from worldsmith.synth.funnel import draw_funnel
    from worldsmith.synth.generator import GeneratorRole, archive_snapshot
    from worldsmith.synth.loop import check_context, evaluate_programs, synth_trainer

    run = open_run(cfg, out, resume)
    latest = run.latest_checkpoint() if resume else None  # without one, open_run started the run over
    if latest is not None and archive_snapshot(latest).exists():  # the archive as it was at that step
        restore_snapshot(archive_snapshot(latest), run.root / "archive.sqlite")
    started = time.perf_counter()
    model, tokenizer = build_policy(cfg, run, progress)
    check_context(cfg, model, tokenizer)
    ref = load_policy(run.root / "policy_init", progress=progress)[0] if cfg.train.loss_cfg.kl_coef > 0 else None
    with Archive(run.root / "archive.sqlite") as archive:
        trainer = synth_trainer(cfg, model, tokenizer, archive, run, ref_model=ref)
        role = trainer.method(GeneratorRole.name)
        resumed_from = trainer.step_index if resume and trainer.resume(run) else None
        trainer.fit(run, progress=progress)
        policy = trainer.acc.unwrap_model(trainer.model)
        save_policy(policy, tokenizer, run.root / "policy")
        counts = dict(role.funnel.counts)
        draw_funnel(counts, run.root / "funnel.png", skipped=() if role.funnel.reviewing else ("passed_review",),
                    title=f"EvoEnv admission funnel, {trainer.step_index} steps ({cfg.synth.proposer} proposer)")
        archive_counts = archive.counts()
        pool = {name: {"id": info["id"], "since": info["since"],
                       "difficulty": trainer.pool.difficulties()[name],
                       "pass_rate": trainer.pool.pass_rates()[name]}
                for name, info in role.admitted.items()}
        admitted = [{"id": c.id, "name": c.name, "accuracy": c.accuracy, "difficulty_reward": c.difficulty_reward,
                     "status": c.status} for c in archive.list() if c.status in ("admitted", "retired")]
    after = eval_policy(cfg, policy, tokenizer, progress)
    programs = [c["id"] for c in admitted]
    initial = load_policy(run.root / "policy_init", progress=progress)[0].to(next(policy.parameters()).device)
    on_admitted = {"programs": programs,
                   "difficulty": cfg.synth.funnel.calibration.difficulty,
                   "before": evaluate_programs(cfg, initial, tokenizer, run.root / "archive.sqlite", programs, progress),
                   "after": evaluate_programs(cfg, policy, tokenizer, run.root / "archive.sqlite", programs, progress)}
    rows = run.read_metrics()
    plot_training(rows, run.root / "training.png", title=f"worldsmith synth ({cfg.synth.proposer} proposer)")
    summary = {
        "after": headline(after),
        "steps": trainer.step_index,
        "resumed_from": resumed_from,
        "seconds": time.perf_counter() - started,
        "funnel": counts,
        "archive": archive_counts,
        "pool": pool,
        "admitted_or_retired": admitted,
        "isolation": role.funnel.isolation,
        "eval_after": after,
        "eval_admitted": on_admitted,
    }
    run.write_summary(summary)
    return summary
