"""The base policy: a small Llama-style model that reasons in steps, built once and cached.

``base_policy(cfg)`` builds the base for a ``BaseConfig`` (or a preset name) or loads it from the
cache when it was built before:

1. a byte-level BPE tokenizer trained with the ``tokenizers`` library on text of the mixture's
   environments (prompts, step traces, answers; train split), every digit its own token;
2. a Llama causal LM of the configured shape, initialised from ``seed``;
3. SFT on a mixture of environments over a range of difficulties, completions with step traces,
   train-split problems only;
4. a quick evaluation on each task's held-out problems (greedy accuracy and sampled pass@1).

The cache folder is ``$WORLDSMITH_CACHE``, else ``$XDG_CACHE_HOME/worldsmith``, else
``~/.cache/worldsmith``; a base lives in ``base/<hash>/`` (an HF policy folder plus ``base.json``),
where the hash is that of the config. A base is built in a temporary folder and renamed into
place, so a crash never leaves a half base that a later run would reuse.

Presets (``PRESETS``): ``cpu``, sized so the build takes a few minutes on 2 CPU cores, and ``gpu``,
a larger one for a GPU machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from pydantic import Field, field_validator

from worldsmith.configuration import Strict
from worldsmith.policy.model import TinyModelConfig

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
ANSWER_TOKENS = ("<answer>", "</answer>")


class BaseError(ValueError):
    """A base that cannot be found or built from what was given (one line)."""


class BaseTask(Strict):
    """One environment of the SFT mixture and the difficulties its examples are drawn at."""

    env: str = Field(description="Registered environment name.")
    difficulties: list[float] = Field(description="Difficulties the examples are spread over (equally).")
    weight: float = Field(1.0, gt=0.0, description="Share of the examples, relative to the other tasks.")

    @field_validator("difficulties")
    @classmethod
    def _in_range(cls, values: list[float]) -> list[float]:
        if not values or any(not 0.0 <= d <= 1.0 for d in values):
            raise ValueError(f"difficulties must be a non-empty list of numbers in [0, 1], got {values}")
        return values


class BaseConfig(Strict):
    """How a base is built; its hash names the cache folder. Defaults: the ``cpu`` preset."""

    tasks: list[BaseTask] = Field(
        default_factory=lambda: [BaseTask(env="arithmetic_chain", difficulties=[0.0, 0.1, 0.2, 0.3]),
                                 BaseTask(env="gcd_euclid", difficulties=[0.0, 0.1], weight=0.5)],
        description="The SFT mixture.")
    vocab_size: int = Field(320, ge=300, description="BPE vocabulary size (byte alphabet, merges, special tokens).")
    tokenizer_examples: int = Field(2000, ge=10, description="Examples the tokenizer is trained on.")
    model: TinyModelConfig = Field(
        default_factory=lambda: TinyModelConfig(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=384,
                                                max_position_embeddings=256),
        description="The Llama shape (about 0.9M parameters for the cpu preset).")
    examples: int = Field(16000, ge=1, description="SFT examples (prompt, step trace, answer).")
    epochs: int = Field(1, ge=1)
    lr: float = Field(3e-3, gt=0.0, le=1.0)
    batch_size: int = Field(32, ge=1)
    with_steps: bool = Field(True, description="Completions carry the environments' step traces.")
    seed: int = Field(0, ge=0, lt=2**63, description="Seeds the tokenizer sample, the weights and the data order.")
    eval_instances: int = Field(200, ge=1, description="Held-out problems per task for the build's evaluation.")
    max_new_tokens: int = Field(48, ge=1, description="Generation budget of the build's evaluation.")

    def digest(self) -> str:
        """The config's hash: the name of its cache folder."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


PRESETS: dict[str, BaseConfig] = {
    "cpu": BaseConfig(),
    "gpu": BaseConfig(
        tasks=[BaseTask(env="arithmetic_chain", difficulties=[0.0, 0.2, 0.4, 0.6]),
               BaseTask(env="gcd_euclid", difficulties=[0.0, 0.2, 0.4]),
               BaseTask(env="sort_composite", difficulties=[0.0, 0.3], weight=0.5)],
        vocab_size=512, tokenizer_examples=8000,
        model=TinyModelConfig(hidden_size=512, num_layers=8, num_heads=8, intermediate_size=1536,
                              max_position_embeddings=512),
        examples=400_000, batch_size=128, lr=1e-3, eval_instances=500, max_new_tokens=96),
}


def resolve(cfg: BaseConfig | str) -> BaseConfig:
    """A config from itself or a preset name (unknown names raise BaseError, one line)."""
    if isinstance(cfg, BaseConfig):
        return cfg
    if cfg not in PRESETS:
        raise BaseError(f"unknown base preset {cfg!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[cfg]


def cache_root() -> Path:
    """Where bases are cached: $WORLDSMITH_CACHE, $XDG_CACHE_HOME/worldsmith or ~/.cache/worldsmith."""
    if os.environ.get("WORLDSMITH_CACHE"):
        return Path(os.environ["WORLDSMITH_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "worldsmith"
    return Path.home() / ".cache" / "worldsmith"


def base_folder(cfg: BaseConfig | str) -> Path:
    return cache_root() / "base" / resolve(cfg).digest()


# --- the tokenizer -------------------------------------------------------------------------------------
def build_base_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts``: any text round-trips
    (``decode(encode(x), skip_special_tokens=True) == x``), every digit is its own token, and
    ``<answer>`` / ``</answer>`` are single tokens. Encoding prepends ``<bos>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    core.decoder = decoders.ByteLevel()
    special = [PAD, BOS, EOS, UNK]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer=trainer)
    core.add_tokens(list(ANSWER_TOKENS))
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, core.token_to_id(BOS))])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   pad_token=PAD, padding_side="left", clean_up_tokenization_spaces=False)


def _specs(cfg: BaseConfig) -> list[tuple[str, float, float]]:
    return [(t.env, d, t.weight / len(t.difficulties)) for t in cfg.tasks for d in t.difficulties]


# --- build, load, list ----------------------------------------------------------------------------------
def base_policy(cfg: BaseConfig | str = "cpu", progress: bool = True, log=print):
    """``(model, tokenizer, folder)`` of the base for ``cfg`` (a config or a preset name): loaded
    from the cache, or built there first. ``log`` receives one line saying which."""
    from worldsmith.policy.model import load_policy

    cfg = resolve(cfg)
    folder = base_folder(cfg)
    if (folder / "base.json").is_file():
        log(f"base {cfg.digest()}: cached at {folder}")
    else:
        log(f"base {cfg.digest()}: building (tokenizer, model, SFT on {len(cfg.tasks)} tasks) into {folder}")
        build_base(cfg, progress=progress)
    model, tokenizer = load_policy(folder, progress=False)
    return model, tokenizer, folder


def build_base(cfg: BaseConfig, progress: bool = True) -> dict:
    """Build the base for ``cfg`` into the cache (replacing nothing: a base that exists is kept);
    returns its record (``base.json``)."""
    import torch

    from worldsmith import envs
    from worldsmith.policy.model import build_tiny_model, save_policy
    from worldsmith.policy.sft import sft_examples, train_sft

    for task in cfg.tasks:
        try:
            envs.get(task.env)
        except KeyError as exc:
            raise BaseError(str(exc)) from None
    started = time.perf_counter()
    threads = torch.get_num_threads()
    folder = base_folder(cfg)
    data = sft_examples(_specs(cfg), cfg.examples, split="train", seed=cfg.seed, with_steps=cfg.with_steps)
    tokenizer = build_base_tokenizer([p + "\n" + c for p, c in data[: cfg.tokenizer_examples]], cfg.vocab_size)
    model = build_tiny_model(tokenizer, cfg.model, seed=cfg.seed)
    sft = train_sft(model, tokenizer, data, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                    seed=cfg.seed, progress=progress)
    built = time.perf_counter() - started
    record = {
        "hash": cfg.digest(),
        "config": cfg.model_dump(mode="json"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab": len(tokenizer),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(built, 1),
        "threads": threads,
        "sft": {k: sft[k] for k in ("first_loss", "final_loss", "steps", "tokens") if k in sft},
        "eval": evaluate_base(model, tokenizer, cfg, progress),
    }
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        save_policy(model, tokenizer, tmp)
        (tmp / "base.json").write_text(json.dumps(record, indent=2) + "\n")
        if not folder.exists():
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def evaluate_base(model, tokenizer, cfg: BaseConfig, progress: bool = False) -> dict:
    """Greedy accuracy and sampled pass@1 on each (task, difficulty)'s held-out problems."""
    from worldsmith.eval.runner import evaluate
    from worldsmith.policy.hf_backend import HFBackend

    specs = [(t.env, d) for t in cfg.tasks for d in t.difficulties]
    out = evaluate(HFBackend(model, tokenizer), specs, instances=cfg.eval_instances, samples=1,
                   max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, progress=progress)
    return {f"{env}@{float(d):g}": {"greedy": stats["greedy_accuracy"], "sampled": stats["pass@1"]}
            for env, by_d in out["per_env_difficulty"].items() for d, stats in by_d.items()}


def list_bases() -> list[dict]:
    """The records of every cached base, newest first."""
    root = cache_root() / "base"
    records = []
    for path in root.glob("*/base.json") if root.is_dir() else []:
        try:
            records.append({**json.loads(path.read_text()), "folder": str(path.parent)})
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda r: r.get("built_at", ""), reverse=True)


def find_base(prefix: str) -> dict:
    """The record of the one cached base whose hash starts with ``prefix`` (BaseError otherwise)."""
    hits = [r for r in list_bases() if r.get("hash", "").startswith(prefix)] if prefix else []
    if len(hits) != 1:
        known = ", ".join(r["hash"] for r in list_bases()) or "none cached"
        what = "no cached base" if not hits else f"{len(hits)} cached bases"
        raise BaseError(f"{what} matches {prefix!r}; cached: {known}")
    return hits[0]
