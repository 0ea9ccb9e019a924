"""The agent comparison: one SFT start, then per seed no training, outcome GRPO, rejection-sampling
fine-tuning, unverified step DPO, CSO, and CSO without verification or without the PRM filter,
each evaluated greedily on the same held-out problems (eval split).

- ``rft``: the policy plays ``grpo_steps * grpo_prompts`` training problems 4 times each (GRPO's
  episode budget), and is fine-tuned on its own successful episodes (``RFT_STEPS`` steps at
  ``RFT_LR``, the SFT loss; observations masked).
- ``step_dpo``: CSO's round without the PRM filter and without verification: at every step of a
  failed episode the best-scored alternative that differs from the policy's action is chosen over
  it, the unverified step-level DPO baseline.
- ``cso_noprm``: CSO without the PRM filter (every differing step is verified by a branch).

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

METHODS = ("none", "grpo", "rft", "step_dpo", "cso", "cso_noverify", "cso_noprm")
#: CSO's switches per CSO-family method: (verify, prm_filter).
CSO_VARIANTS = {"cso": (True, True), "cso_noverify": (False, True), "cso_noprm": (True, False),
                "step_dpo": (False, False)}
#: Rejection-sampling fine-tuning (PROPOSED for the tiny CPU policy: the learning rate CSO's DPO
#: uses here, 1e-4, and about three passes over a few dozen kept episodes).
RFT_STEPS = 60
RFT_LR = 1e-4
RFT_SAMPLES = 4


def rft(model, tok, env, difficulty: float, problems: int, seed: int, log=None) -> list[dict]:
    """One round of rejection-sampling fine-tuning (see the module doc); its stats as a one-round list."""
    from worldsmith.agents.policy import ModelAgent
    from worldsmith.envs.contract import stable_hash

    torch.manual_seed(stable_hash("rft-sample", seed) % 2**31)
    insts = instances(env, "train", problems, difficulty, offset=stable_hash("rft", seed) % 10**6)
    episodes = ModelAgent(model, tok, temperature=1.0).run({env.name: env}, [i for i in insts for _ in range(RFT_SAMPLES)])
    stats = fine_tune_on_successes(model, tok, env, episodes, seed)
    if log:
        log(f"rft seed {seed}: fine-tuned on {stats['kept']}/{len(episodes)} successful episodes")
    return [stats]


def fine_tune_on_successes(model, tok, env, episodes: list, seed: int = 0) -> dict:
    """RFT's update: the SFT loss on the episodes that succeeded (none: no update)."""
    kept = [ep for ep in episodes if ep.passed]
    stats = {"collect/episodes": len(episodes), "kept": len(kept)}
    if kept:
        stats.update(sft(model, tok, {env.name: env}, kept, RFT_STEPS, lr=RFT_LR, seed=seed))
    return stats


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
            elif method == "rft":
                train = rft(model, tok, env, difficulty, grpo_steps * grpo_prompts, seed, log)
            elif method in CSO_VARIANTS:
                verify, prm_filter = CSO_VARIANTS[method]
                cfg = CSOConfig(env=env_name, difficulty=difficulty, seed=seed, rounds=cso_rounds,
                                tasks_per_round=cso_tasks, verify=verify, prm_filter=prm_filter)
                train = run_cso(model, tok, env, cfg, log=log)
            # episodes played: GRPO's groups; the collected ones plus one branch per verified candidate
            episodes = (grpo_steps * grpo_prompts * 4 if method == "grpo" else
                        sum(r["collect/episodes"] + r.get("candidates", 0) * CSO_VARIANTS.get(method, (0,))[0]
                            for r in train) if train else 0)
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
        if method in CSO_VARIANTS:
            shares = [r["supervised_share"] for s in seeds for r in results[method][s]["train"]]
            entry["supervised_share"] = sum(shares) / len(shares)
            entry["pairs"] = sum(r["pairs"] for s in seeds for r in results[method][s]["train"]) / len(seeds)
        summary["methods"][method] = entry
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
