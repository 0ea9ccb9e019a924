"""The agent comparison: one SFT start, then no training / outcome GRPO / CSO / CSO without
verification per seed, each evaluated greedily on the same held-out problems (eval split).

``compare(...)`` writes ``start.pt`` (the common start, built once), ``<method>/seed_<s>.json``
per run (a rerun skips finished runs) and ``summary.json``: per method the mean success with a 95%
interval over seeds and the paired difference to the start (``worldsmith.eval.stats``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from worldsmith.agents.cso import CSOConfig, run_cso
from worldsmith.agents.registry import get_agent_env
from worldsmith.agents.train import (
    EpisodeGRPO,
    EpisodeGRPOConfig,
    evaluate,
    instances,
    noisy_expert_episodes,
    sft,
)
from worldsmith.eval.stats import mean_interval, paired_difference
from worldsmith.policy.model import TinyModelConfig, build_tiny_model
from worldsmith.policy.tokenizer import build_char_tokenizer

METHODS = ("none", "grpo", "cso", "cso_noverify")


def start_policy(env, out: Path, difficulty: float, sft_steps: int, demos: int, log) -> tuple:
    """The common start: a tiny char-level policy after SFT on expert episodes, cached as
    ``out/start.pt``."""
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, TinyModelConfig(max_position_embeddings=512), seed=0)
    path = out / "start.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model, tok
    episodes = noisy_expert_episodes(env, instances(env, "train", demos, difficulty, offset=10**7), 0.0, 0)
    stats = sft(model, tok, {env.name: env}, episodes, sft_steps, log=log)
    torch.save(model.state_dict(), path)
    (out / "start.json").write_text(json.dumps(stats))
    return model, tok


def compare(env_name: str, seeds: list[int], out: Path, methods=METHODS, difficulty: float = 0.5,
            sft_steps: int = 400, demos: int = 400, eval_problems: int = 40, grpo_steps: int = 8,
            grpo_prompts: int = 4, cso_rounds: int = 1, cso_tasks: int = 48, log=print) -> dict:
    """Run (and resume) the comparison; see the module docstring. Budgets: GRPO plays
    ``grpo_steps * grpo_prompts * 4`` episodes, CSO ``cso_rounds * cso_tasks`` plus its branches."""
    env = get_agent_env(env_name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, tok = start_policy(env, out, difficulty, sft_steps, demos, log)
    start_state = {k: v.clone() for k, v in model.state_dict().items()}
    held_out = instances(env, "eval", eval_problems, difficulty)
    results: dict[str, dict[int, dict]] = {m: {} for m in methods}
    for seed in seeds:
        for method in methods:
            path = out / method / f"seed_{seed}.json"
            if path.exists():
                results[method][seed] = json.loads(path.read_text())
                continue
            model.load_state_dict(start_state)
            torch.manual_seed(seed)
            started = time.perf_counter()
            train: object = None
            if method == "grpo":
                train = EpisodeGRPO(model, tok, env, EpisodeGRPOConfig(steps=grpo_steps, difficulty=difficulty,
                                                                       prompts_per_step=grpo_prompts, seed=seed)).fit(log)
            elif method.startswith("cso"):
                cfg = CSOConfig(env=env_name, difficulty=difficulty, seed=seed, rounds=cso_rounds,
                                tasks_per_round=cso_tasks, verify=method != "cso_noverify")
                train = run_cso(model, tok, env, cfg, log=log)
            episodes = (grpo_steps * grpo_prompts * 4 if method == "grpo" else
                        sum(r["collect/episodes"] + r["candidates"] * (method == "cso") for r in train)
                        if train else 0)
            row = {"method": method, "seed": seed, "train": train, "train_seconds": time.perf_counter() - started,
                   "train_episodes": episodes,
                   "eval": evaluate(model, tok, env, held_out, 12)}
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(row))
            results[method][seed] = row
            log(f"{method} seed {seed}: held-out success {row['eval']['success']:.3f}")
    summary = {"env": env_name, "difficulty": difficulty, "eval_problems": eval_problems, "seeds": seeds,
               "methods": {}}
    base = [results["none"][s]["eval"]["success"] for s in seeds] if "none" in results else None
    for method in methods:
        values = [results[method][s]["eval"]["success"] for s in seeds]
        entry = {"success": mean_interval(values).to_json(), "per_seed": values,
                 "train_episodes": sum(results[method][s]["train_episodes"] for s in seeds) / len(seeds),
                 "train_seconds": sum(results[method][s]["train_seconds"] for s in seeds) / len(seeds)}
        if base is not None and method != "none":
            entry["vs_start"] = paired_difference(values, base).to_json()
        if method.startswith("cso"):
            shares = [r["supervised_share"] for s in seeds for r in results[method][s]["train"]]
            entry["supervised_share"] = sum(shares) / len(shares)
            entry["pairs"] = sum(r["pairs"] for s in seeds for r in results[method][s]["train"]) / len(seeds)
        summary["methods"][method] = entry
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
