"""Overheads of the exploration methods, each as a ratio measured side by side in one run.

- CUTS: seconds to generate the same batch (256 completions x 32 tokens, EOS disabled so every row
  runs the full budget) with the CUTS processor (warm-up 0: every token constrained) vs standard
  temperature-1 sampling; target ratio <= 1.05.
- G2RL: seconds spent on G2RL proper (features Phi from the old-log-prob pass's hidden states,
  novelty, reward map) as a fraction of one training step that runs that pass anyway; target
  <= 0.05. Also reported: a whole step with G2RL on vs off, since G2RL needs the old-log-prob
  forward (with hidden states) that plain temperature-1 sampling otherwise skips.

Runs alternate (A, B, A, B, ...) and each figure is a median. Prints one JSON line.

    .venv/bin/python benchmarks/exploration_overhead.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from worldsmith import envs
from worldsmith.configuration import build
from worldsmith.policy.backend import SamplingParams
from worldsmith.policy.hf_backend import HFBackend, sequence_logprobs
from worldsmith.policy.model import build_tiny_model
from worldsmith.policy.sampling import CUTS
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl.config import RunConfig
from worldsmith.rl.g2rl import g2rl_features, g2rl_novelty, g2rl_shape
from worldsmith.rl.trainer import Trainer


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, seed=0)
    env = envs.get("arithmetic_chain")
    prompts = [env.sample(envs.split_seed("train", i), 0.0).prompt for i in range(32) for _ in range(8)]

    # --- CUTS generation ---------------------------------------------------------------------
    never = [len(tok) + 1000]  # an id no model can emit: every row runs the whole budget
    backend = HFBackend(model, tok, batch_size=256, eos_ids=never)
    params = SamplingParams(max_new_tokens=32, temperature=1.0, seed=0)
    cuts = CUTS(k=5, delta=0.03, warmup=0)
    plain_s, cuts_s = [], []
    for _ in range(args.repeats):
        plain_s.append(timed(lambda: backend.generate(prompts, params)))
        cuts_s.append(timed(lambda: backend.generate(prompts, params, logits_processor=cuts)))

    # --- G2RL --------------------------------------------------------------------------------
    rollouts = HFBackend(model, tok, batch_size=256).generate(prompts, SamplingParams(16, seed=1))
    rewards = torch.rand(len(prompts))
    groups = torch.arange(32).repeat_interleave(8)
    g2rl_cfg = build(RunConfig, {"train": {"shaping": {"g2rl": {"enabled": True}}}}).train.shaping.g2rl
    head = model.get_output_embeddings().weight

    def features_only():
        with torch.no_grad():
            _, hidden = sequence_logprobs(model, rollouts.prompt_ids, rollouts.prompt_mask, rollouts.completion_ids,
                                          rollouts.completion_mask, return_hidden=True)
        start = time.perf_counter()
        phi = g2rl_features(hidden, head, rollouts.completion_ids, rollouts.completion_mask)
        g2rl_shape(rewards, g2rl_novelty(phi, rewards, groups), groups, g2rl_cfg)
        return time.perf_counter() - start

    def trainer_for(enabled: bool) -> Trainer:
        cfg = build(RunConfig, {"threads": 1, "pool": [{"name": "arithmetic_chain"}],
                                "sampling": {"max_new_tokens": 16},
                                "train": {"steps": 10**6, "prompts_per_step": 32, "group_size": 8,
                                          "checkpoint_every": 0, "shaping": {"g2rl": {"enabled": enabled}}}})
        return Trainer(cfg, build_tiny_model(tok, seed=0), tok)

    on, off = trainer_for(True), trainer_for(False)
    g2rl_s, step_on, step_off = [], [], []
    for i in range(args.repeats):
        g2rl_s.append(features_only())
        step_on.append(on.step(i)["time/step"])
        step_off.append(off.step(i)["time/step"])
    med = statistics.median
    print(json.dumps({
        "benchmark": "exploration_overhead",
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "platform": platform.platform(), "threads": 1},
        "cuts": {"plain_generate_s": med(plain_s), "cuts_generate_s": med(cuts_s),
                 "ratio": med(cuts_s) / med(plain_s), "target_ratio": 1.05,
                 "batch": "256 completions x 32 tokens, CUTS on every token"},
        "g2rl": {"g2rl_s": med(g2rl_s), "step_with_g2rl_s": med(step_on), "step_without_g2rl_s": med(step_off),
                 "fraction_of_step": med(g2rl_s) / med(step_on), "target_fraction": 0.05,
                 "step_ratio_on_off": med(step_on) / med(step_off)},
        "repeats": args.repeats,
    }))


if __name__ == "__main__":
    main()
