"""One GRPO step of worldsmith's Trainer against TRL's GRPOTrainer, side by side, on CPU.

Both sides start from identical weights (the tiny char-level model, optionally SFT-warm-started
once and copied), see the same prompts in the same order, sample ``group_size`` completions of at
most ``max_new_tokens`` tokens at temperature 1, get the same reward (the worldsmith environment's
grade of the completion text), use beta = 0, one optimisation pass and one optimizer step per
generation batch, the same learning rate, AdamW and gradient clipping.

Steps strictly alternate: TRL step i runs inside ``trainer.train()``, and worldsmith step i runs
from TRL's ``on_step_end`` callback, outside TRL's timed window. The first step of each side is
discarded as warm-up. Afterwards both policies are evaluated on the same held-out instances.

Prints one JSON line on stdout; progress goes to stderr.

    .venv/bin/python benchmarks/rl_step_vs_trl.py --quick
    .venv/bin/python benchmarks/rl_step_vs_trl.py
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import torch
from extras import require

from worldsmith import envs
from worldsmith.configuration import build
from worldsmith.eval.runner import evaluate
from worldsmith.policy.backend import SamplingParams
from worldsmith.policy.hf_backend import HFBackend, sequence_logprobs
from worldsmith.policy.model import TinyModelConfig, build_tiny_model, encode_prompts, format_prompt
from worldsmith.policy.sft import sft_examples, train_sft
from worldsmith.policy.tokenizer import build_char_tokenizer
from worldsmith.rl.config import RunConfig
from worldsmith.rl.pool import EnvPool
from worldsmith.rl.trainer import PHASES, Trainer

TARGET_RATIO = 0.67


def log(msg: str) -> None:
    print(f"[rl_step_vs_trl] {msg}", file=sys.stderr, flush=True)


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="arithmetic_chain")
    p.add_argument("--difficulty", type=float, default=0.0)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--prompts-per-step", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--steps", type=int, default=8, help="RL steps per side (the first is warm-up)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--sft-examples", type=int, default=8000, help="0 = no warm start")
    p.add_argument("--sft-epochs", type=int, default=4)
    p.add_argument("--sft-lr", type=float, default=5e-3)
    p.add_argument("--eval-instances", type=int, default=256)
    p.add_argument("--threads", type=int, default=1, help="torch threads, the same for both sides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init-seed", type=int, default=0)
    p.add_argument("--compute-repeats", type=int, default=3, help="timed repeats of the model-compute reference")
    p.add_argument("--quick", action="store_true", help="3 steps, 64 eval instances")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.eval_instances = 3, 64
    if args.steps < 2:
        p.error("--steps must be >= 2 (the first step of each side is discarded)")
    return args


# --- shared inputs --------------------------------------------------------------------------------
def base_policy(args: argparse.Namespace, tiny: TinyModelConfig):
    """The starting weights both sides copy: the tiny model, SFT-warm-started when asked."""
    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer, tiny, seed=args.init_seed)
    sft = None
    if args.sft_examples:
        log(f"SFT warm start on {args.sft_examples} examples x {args.sft_epochs} epochs")
        examples = sft_examples([(args.env, args.difficulty, 1.0)], args.sft_examples, split="train", seed=args.seed)
        sft = train_sft(model, tokenizer, examples, epochs=args.sft_epochs, lr=args.sft_lr, batch_size=64,
                        seed=args.seed, progress=False)
        log(f"SFT done: loss {sft['first_loss']:.3f} -> {sft['final_loss']:.3f} in {sft['seconds']:.1f}s")
    return model.eval(), tokenizer, sft


def fresh_copy(model):
    clone = copy.deepcopy(model)
    clone.load_state_dict(model.state_dict())
    return clone.eval()


def worldsmith_config(args: argparse.Namespace, tiny: TinyModelConfig) -> RunConfig:
    b = args.prompts_per_step * args.group_size
    return build(RunConfig, {
        "model": {"tiny": tiny.model_dump(), "init_seed": args.init_seed},
        "pool": [{"name": args.env, "difficulty": args.difficulty}],
        "sampling": {"max_new_tokens": args.max_new_tokens, "temperature": 1.0, "top_k": 0, "top_p": 1.0,
                     "batch_size": b},
        "optim": {"lr": args.lr, "weight_decay": 0.0, "betas": (0.9, 0.999), "schedule": "constant",
                  "warmup_steps": 0, "grad_clip": args.grad_clip},
        "train": {"steps": args.steps, "prompts_per_step": args.prompts_per_step, "group_size": args.group_size,
                  "ppo_epochs": 1, "minibatch_size": b, "microbatch_size": b, "advantage": "grpo",
                  "loss": "ppo_clip", "loss_cfg": {"clip_low": 0.2, "clip_high": 0.2, "aggregation": "token",
                                                   "kl_coef": 0.0},
                  "checkpoint_every": 0, "seed": args.seed},
    })


def train_instances(args: argparse.Namespace) -> list[envs.Instance]:
    """The prompts in training order: ``split_seed("train", i)`` for i = 0, 1, ..."""
    env = envs.get(args.env)
    n = args.steps * args.prompts_per_step
    return [env.sample(envs.split_seed("train", i), args.difficulty) for i in range(n)]


def check_same_prompts(cfg: RunConfig, instances: list[envs.Instance], args: argparse.Namespace) -> None:
    """worldsmith's pool must hand out exactly the prompts, in the order, that TRL's dataset holds."""
    pool = EnvPool(cfg.pool)
    k = args.prompts_per_step
    for step in range(args.steps):
        got = [inst.seed for inst in pool.sample_batch(k, step, cfg.train.seed)]
        want = [inst.seed for inst in instances[step * k : (step + 1) * k]]
        if got != want:
            raise RuntimeError(f"worldsmith's pool and the TRL dataset disagree on the prompts of step {step}")


# --- the model's own compute ----------------------------------------------------------------------
def model_compute(model, tokenizer, instances, args: argparse.Namespace) -> dict:
    """A KV-cached decode of one step's batch with HFBackend plus one forward+backward of the same
    shapes (the rollouts it produced), on a throwaway copy of the starting weights."""
    model = fresh_copy(model)
    b = args.prompts_per_step * args.group_size
    backend = HFBackend(model, tokenizer, batch_size=b)
    prompts = [inst.prompt for inst in instances[: args.prompts_per_step] for _ in range(args.group_size)]
    decode_s, fb_s = [], []
    for r in range(args.compute_repeats + 1):
        params = SamplingParams(args.max_new_tokens, temperature=1.0, seed=1000 + r)
        t0 = time.perf_counter()
        ro = backend.generate(prompts, params)
        t1 = time.perf_counter()
        model.train()
        logp = sequence_logprobs(model, ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask)
        (logp.sum() / ro.completion_mask.sum().clamp_min(1)).backward()
        t2 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        model.eval()
        if r:  # the first repeat is warm-up
            decode_s.append(t1 - t0)
            fb_s.append(t2 - t1)
    return {"decode_s": median(decode_s), "forward_backward_s": median(fb_s),
            "total_s": median(decode_s) + median(fb_s), "repeats": args.compute_repeats}


# --- evaluation -----------------------------------------------------------------------------------
def eval_accuracy(model, tokenizer, args: argparse.Namespace) -> dict:
    backend = HFBackend(model, tokenizer, batch_size=args.prompts_per_step * args.group_size)
    summary = evaluate(backend, [(args.env, args.difficulty)], instances=args.eval_instances, samples=1,
                       temperature=1.0, max_new_tokens=args.max_new_tokens, greedy=True, seed=args.seed,
                       progress=False)
    return {"accuracy_sampled": summary["accuracy_sampled"], "accuracy_greedy": summary["accuracy_greedy"]}


# --- TRL ------------------------------------------------------------------------------------------
def trl_settings(args: argparse.Namespace, out_dir: str) -> dict:
    b = args.prompts_per_step * args.group_size
    return {
        "output_dir": out_dir,
        "per_device_train_batch_size": b,  # counts completions: one generation batch per micro-batch
        "gradient_accumulation_steps": 1,
        "steps_per_generation": 1,  # generation_batch_size = 256 * 1 process * 1 = one optimizer step
        "num_generations": args.group_size,
        "num_iterations": 1,
        "max_completion_length": args.max_new_tokens,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "repetition_penalty": 1.0,
        "beta": 0.0,
        "epsilon": 0.2,
        "loss_type": "dapo",  # token-level mean over the generation batch, like worldsmith's "token"
        "scale_rewards": "group",
        "learning_rate": args.lr,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "adam_beta1": 0.9,
        "adam_beta2": 0.999,
        "adam_epsilon": 1e-8,
        "optim": "adamw_torch",
        "max_grad_norm": args.grad_clip,
        "max_steps": args.steps,
        "shuffle_dataset": False,
        "seed": args.seed,
        "use_vllm": False,
        "use_transformers_continuous_batching": False,
        "gradient_checkpointing": False,
        "bf16": False,
        "fp16": False,
        "use_cpu": True,
        "report_to": "none",
        "save_strategy": "no",
        "logging_strategy": "no",
        "eval_strategy": "no",
        "disable_tqdm": True,
        "log_completions": False,
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,
    }


class GradeByPrompt:
    """TRL reward function: the worldsmith env's grade of each completion, instance looked up by prompt."""

    def __init__(self, env, instances: list[envs.Instance], tokenizer) -> None:
        self.env = env
        self.by_prompt = {format_prompt(tokenizer, inst.prompt): inst for inst in instances}
        self.__name__ = f"worldsmith_{env.name}"
        self.seconds: list[float] = []
        self.mean_reward: list[float] = []
        self.passed: list[float] = []
        self.prompts_seen: list[list[str]] = []

    def __call__(self, prompts, completions, **_) -> list[float]:
        t0 = time.perf_counter()
        self.prompts_seen.append(list(prompts))
        scores = [self.env.grade(self.by_prompt[p], c) for p, c in zip(prompts, completions)]
        self.seconds.append(time.perf_counter() - t0)
        values = [s.value for s in scores]
        self.mean_reward.append(sum(values) / len(values))
        self.passed.append(sum(s.passed for s in scores) / len(scores))
        return values


def timed_method(owner, name: str, sink: list[float]) -> None:
    """Replace ``owner.name`` with a wrapper that appends each call's seconds to ``sink``."""
    original = getattr(owner, name)

    def wrapper(*a, **kw):
        t0 = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            sink.append(time.perf_counter() - t0)

    setattr(owner, name, wrapper)


def run(args: argparse.Namespace) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl import __version__ as trl_version

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tiny = TinyModelConfig()
    b = args.prompts_per_step * args.group_size

    base, tokenizer, sft = base_policy(args, tiny)
    instances = train_instances(args)
    cfg = worldsmith_config(args, tiny)
    check_same_prompts(cfg, instances, args)

    log("accuracy of the starting policy")
    start_acc = eval_accuracy(fresh_copy(base), tokenizer, args)
    log(f"start: {start_acc}")
    log("model-compute reference (KV-cached decode + one forward/backward)")
    compute = model_compute(base, tokenizer, instances, args)
    log(f"model compute: {compute}")

    # worldsmith side
    ws_model = fresh_copy(base)
    ws = Trainer(cfg, ws_model, tokenizer)
    ws_rows: list[dict] = []
    ws_wall: list[float] = []

    # TRL side
    env = envs.get(args.env)
    reward = GradeByPrompt(env, instances, tokenizer)
    dataset = Dataset.from_dict({"prompt": [format_prompt(tokenizer, inst.prompt) for inst in instances]})
    out_dir = tempfile.mkdtemp(prefix="rl_step_vs_trl_")
    settings = trl_settings(args, out_dir)
    grpo_args = GRPOConfig(**settings)
    if grpo_args.generation_batch_size != b or grpo_args.steps_per_generation != 1:
        raise RuntimeError(f"TRL would not take one optimizer step per {b} completions: "
                           f"generation_batch_size={grpo_args.generation_batch_size}, "
                           f"steps_per_generation={grpo_args.steps_per_generation}")
    trl_model = fresh_copy(base)
    trl = GRPOTrainer(model=trl_model, reward_funcs=[reward], args=grpo_args, train_dataset=dataset,
                      processing_class=tokenizer)
    if trl.use_vllm or trl.use_transformers_continuous_batching:
        raise RuntimeError("TRL is not on its plain transformers generate path")
    if trl.beta != 0.0 or trl.ref_model is not None:
        raise RuntimeError("TRL has a KL term or a reference model")
    if list(trl.eos_token_ids) != HFBackend(trl_model, tokenizer).eos_ids:
        raise RuntimeError(f"EOS ids differ: TRL {trl.eos_token_ids}")
    probe = instances[0].prompt
    if tokenizer(text=[format_prompt(tokenizer, probe)])["input_ids"] != encode_prompts(tokenizer, [probe]):
        raise RuntimeError("TRL's prompt tokenization differs from worldsmith's")

    trl_gen_s: list[float] = []
    trl_prep_s: list[float] = []
    trl_target = trl.accelerator.unwrap_model(trl.model)
    timed_method(trl_target, "generate", trl_gen_s)
    timed_method(trl, "_generate_and_score_completions", trl_prep_s)

    class Alternate(TrainerCallback):
        """Times each TRL optimizer step, then runs the matching worldsmith step outside that window."""

        def __init__(self) -> None:
            self.step_s: list[float] = []
            self.optimizer_s: list[float] = []
            self.gap_s: list[float] = []  # TRL's own loop work between steps (logging, data fetch)
            self._begin = self._pre_opt = self._resumed = None

        def on_step_begin(self, a, state, control, **kw):
            self._begin = time.perf_counter()
            if self._resumed is not None:
                self.gap_s.append(self._begin - self._resumed)

        def on_pre_optimizer_step(self, a, state, control, **kw):
            self._pre_opt = time.perf_counter()

        def on_optimizer_step(self, a, state, control, **kw):
            self.optimizer_s.append(time.perf_counter() - self._pre_opt)

        def on_step_end(self, a, state, control, **kw):
            self.step_s.append(time.perf_counter() - self._begin)
            i = len(self.step_s) - 1
            t0 = time.perf_counter()
            row = ws.step(i)
            ws_wall.append(time.perf_counter() - t0)
            ws.step_index = i + 1
            ws_rows.append(row)
            log(f"step {i}: trl {self.step_s[-1]:.3f}s (reward {reward.mean_reward[-1]:.3f}) | "
                f"worldsmith {ws_wall[-1]:.3f}s (reward {row['reward/mean']:.3f})")
            self._resumed = time.perf_counter()

    alt = Alternate()
    trl.add_callback(alt)
    log(f"training {args.steps} alternating steps, {b} completions each")
    try:
        trl.train()
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    if len(alt.step_s) != args.steps or len(ws_rows) != args.steps:
        raise RuntimeError(f"expected {args.steps} steps per side, got trl {len(alt.step_s)}, "
                           f"worldsmith {len(ws_rows)}")
    if len(trl_gen_s) != args.steps:
        raise RuntimeError(f"TRL called model.generate {len(trl_gen_s)} times for {args.steps} steps")
    k = args.prompts_per_step
    for step, seen in enumerate(reward.prompts_seen):
        want = [format_prompt(tokenizer, inst.prompt) for inst in instances[step * k : (step + 1) * k]]
        if sorted(seen) != sorted(p for p in want for _ in range(args.group_size)):
            raise RuntimeError(f"TRL step {step} did not see the prompts worldsmith saw")

    log("evaluating both policies")
    ws_acc = eval_accuracy(ws.acc.unwrap_model(ws.model), tokenizer, args)
    trl_acc = eval_accuracy(trl.accelerator.unwrap_model(trl.model), tokenizer, args)

    keep = slice(1, None)  # drop the warm-up step of each side
    ws_times = [r["time/step"] for r in ws_rows]
    ws_s, trl_s = median(ws_times[keep]), median(alt.step_s[keep])
    phases = {k: statistics.mean(r[f"time/{k}"] for r in ws_rows[keep]) for k in PHASES}
    phases["other"] = statistics.mean(r["time/step"] - sum(r[f"time/{k}"] for k in PHASES) for r in ws_rows[keep])
    trl_prep_other = [p - g - r for p, g, r in zip(trl_prep_s, trl_gen_s, reward.seconds)]
    trl_phases = {
        "generate": statistics.mean(trl_gen_s[keep]),
        "grade": statistics.mean(reward.seconds[keep]),
        "prepare_other": statistics.mean(trl_prep_other[keep]),
        "loss_backward_clip": statistics.mean(s - p - o for s, p, o in
                                              zip(alt.step_s[keep], trl_prep_s[keep], alt.optimizer_s[keep])),
        "optimizer": statistics.mean(alt.optimizer_s[keep]),
    }
    return {
        "benchmark": "rl_step_vs_trl",
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "trl": trl_version,
            "transformers": __import__("transformers").__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "config": {
            "env": args.env,
            "difficulty": args.difficulty,
            "prompts_per_step": args.prompts_per_step,
            "group_size": args.group_size,
            "completions_per_step": b,
            "max_new_tokens": args.max_new_tokens,
            "temperature": 1.0,
            "lr": args.lr,
            "grad_clip": args.grad_clip,
            "beta": 0.0,
            "steps": args.steps,
            "warmup_steps_discarded": 1,
            "sft_examples": args.sft_examples,
            "sft_epochs": args.sft_epochs,
            "sft_lr": args.sft_lr,
            "threads": args.threads,
            "eval_instances": args.eval_instances,
            "eval_samples": 1,
            "seed": args.seed,
            "init_seed": args.init_seed,
            "tiny_model": tiny.model_dump(),
            "parameters": sum(p.numel() for p in base.parameters()),
            "quick": args.quick,
            "trl_settings": {k: v for k, v in settings.items() if k != "output_dir"},
        },
        "schedule": "strict alternation per step: TRL step i (timed on_step_begin -> on_step_end), then "
                    "worldsmith step i (Trainer.step(i), run from TRL's on_step_end callback); first step of "
                    "each side discarded; medians over the rest",
        "worldsmith_s_per_step": ws_s,
        "trl_s_per_step": trl_s,
        "step_time_ratio": ws_s / trl_s,
        "worldsmith_phases": phases,
        "trl_phases": trl_phases,
        "trl_loop_overhead_s": median(alt.gap_s),
        "model_compute_s": compute["total_s"],
        "worldsmith_over_model_compute": ws_s / compute["total_s"],
        "model_compute": compute,
        "step_times": {"worldsmith": ws_times, "trl": alt.step_s},
        "train_reward": {"worldsmith": [r["reward/mean"] for r in ws_rows], "trl": reward.mean_reward},
        "completion_tokens_mean": {"worldsmith": [r["completion_tokens/mean"] for r in ws_rows]},
        "accuracy": {"start": start_acc, "worldsmith": ws_acc, "trl": trl_acc},
        "sft": sft,
        "target_ratio": TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    require("trl", "datasets")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with contextlib.redirect_stdout(sys.stderr):  # TRL's printer callback writes logs to stdout
        result = run(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
