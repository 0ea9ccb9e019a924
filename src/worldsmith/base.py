"""The base policy: a small model that reasons in steps, built once from a recipe and cached.

A base is the common start of every comparison (docs/learning.md, "The base policy"). Its recipe,
a ``BaseConfig``, says everything that decides its weights:

1. **Examples.** ``sft.examples`` (prompt, completion) pairs from the train split of a weighted
   mixture of environments over a range of difficulties; a completion is the environment's step
   trace, one line per step, then the wrapped answer (``policy.sft.sft_examples``).
2. **Tokenizer.** A byte-level BPE trained with the ``tokenizers`` library on those examples'
   text, every digit its own token (a number is read and written digit by digit, so no merge can
   hide a digit), wrapped as a ``PreTrainedTokenizerFast`` that behaves as the character tokenizer
   does: ``<pad>``/``<bos>``/``<eos>``/``<unk>`` special, ``<answer>``/``</answer>`` added but not
   special, ``<bos>`` prepended, left padding, no chat template. Byte-level means every text
   round-trips: ``decode(encode(x), skip_special_tokens=True) == x``.
3. **Model.** A Llama-style causal LM of the configured shape, initialised from ``seed``.
4. **SFT** on the examples (``policy.sft.train_sft``: AdamW, warm-up then cosine decay, loss on
   completion tokens only).
5. **Quick evaluation**: greedy accuracy on train-split and eval-split instances of each
   mixture entry at its lowest, middle and highest difficulty.

The result is cached by the recipe's hash (``config_hash``) in ``cache_dir()/base/<hash>/``: an HF
folder (``load_policy`` reads it) plus ``base.json`` with the config, the hash, the parameter
count, the build time, the SFT loss curve and the accuracies. A base is built in a hidden folder
beside its place and renamed into place when complete, so an interrupted build leaves nothing that
a later one would reuse.

>>> model, tokenizer, path = base_policy("cpu")          # builds once (minutes), then loads
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from worldsmith.configuration import ConfigError, Strict, apply_overrides, build
from worldsmith.policy.model import TinyModelConfig

#: Bumped whenever the build changes what a given config produces, so old cache entries are not reused.
RECIPE_VERSION = 1
BASE_FILE = "base.json"
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
ANSWER_TOKENS = ("<answer>", "</answer>")


# --- the recipe -------------------------------------------------------------------------------------
class DifficultyRange(Strict):
    """``levels`` evenly spaced difficulties from ``low`` to ``high``, both included."""

    low: float = Field(ge=0.0, le=1.0, description="Easiest difficulty.")
    high: float = Field(ge=0.0, le=1.0, description="Hardest difficulty.")
    levels: int = Field(4, ge=2, le=101, description="How many difficulties, low and high included.")

    @model_validator(mode="after")
    def _ordered(self) -> DifficultyRange:
        if self.high < self.low:
            raise ValueError(f"high {self.high} is below low {self.low}")
        return self


class MixtureEntry(Strict):
    """One environment of the SFT mixture, its difficulties and its share of the examples."""

    env: str = Field(description="A registered environment name.")
    difficulty: float | list[float] | DifficultyRange = Field(
        0.0, description="One difficulty, a list of them, or a range {low, high, levels}; the entry's "
        "examples are spread evenly over them.")
    weight: float = Field(1.0, gt=0.0, description="Share of the examples, relative to the other entries.")

    @field_validator("env")
    @classmethod
    def _known(cls, name: str) -> str:
        from worldsmith.envs.registry import known_name

        return known_name(name)

    @field_validator("difficulty", mode="before")
    @classmethod
    def _one_form(cls, value):
        """A number, a non-empty list of numbers in [0, 1], or a range; one readable error otherwise."""
        from pydantic import ValidationError

        if isinstance(value, DifficultyRange):
            return value
        if isinstance(value, dict):
            try:
                return DifficultyRange.model_validate(value)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                raise ValueError(f"{where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}") from None
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ValueError("the list of difficulties is empty")
        for d in values:
            if isinstance(d, bool) or not isinstance(d, (int, float)):
                raise ValueError(f"a difficulty is a number in [0, 1], a list of them or {{low, high, levels}}; "
                                 f"got {d!r}")
            if not 0.0 <= d <= 1.0:
                raise ValueError(f"difficulty {d} is outside [0, 1]")
        return [float(d) for d in value] if isinstance(value, list) else float(value)

    def levels(self) -> list[float]:
        """The entry's difficulties, sorted, without repeats."""
        d = self.difficulty
        if isinstance(d, DifficultyRange):
            values = [d.low + (d.high - d.low) * i / (d.levels - 1) for i in range(d.levels)]
        else:
            values = d if isinstance(d, list) else [d]
        return sorted({round(v, 6) for v in values})

    def eval_levels(self) -> list[float]:
        """Where the quick evaluation looks: the lowest, middle and highest difficulty."""
        levels = self.levels()
        return sorted({levels[0], levels[len(levels) // 2], levels[-1]})


class TokenizerSection(Strict):
    vocab_size: int = Field(512, ge=262, le=65536, description="Upper bound on the BPE vocabulary (256 byte "
                            "tokens, 4 special and 2 answer tokens included); env text often stops short of it.")
    min_frequency: int = Field(2, ge=1, description="A merge must occur at least this often in the examples.")


class SFTSection(Strict):
    examples: int = Field(24000, ge=1, description="(prompt, completion) pairs drawn from the mixture's train split.")
    epochs: int = Field(1, ge=1, description="Passes over the examples.")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="Peak learning rate (AdamW; warm-up, then cosine decay).")
    batch_size: int = Field(16, ge=1, description="Examples per optimizer step.")
    warmup: float = Field(0.05, ge=0.0, lt=1.0, description="Fraction of the steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    with_steps: bool = Field(True, description="Completions carry the environment's step trace before the answer.")


class EvalSection(Strict):
    instances: int = Field(64, ge=1, description="Instances per split and task for the quick greedy evaluation.")


def _cpu_mixture() -> list[MixtureEntry]:
    # decision_chain at depths 1..8 (difficulty (H - 1) / 15), where a small model learns the step rule
    # and the eval split of every depth from 3 on holds far more than 1,000 distinct problems
    return [
        MixtureEntry(env="decision_chain", difficulty=DifficultyRange(low=0.0, high=7 / 15, levels=8), weight=3.0),
        MixtureEntry(env="arithmetic_chain", difficulty=[0.0, 0.1, 0.2], weight=1.0),
    ]


def _cpu_model() -> TinyModelConfig:
    return TinyModelConfig(arch="llama", hidden_size=192, num_layers=2, num_heads=6, intermediate_size=768,
                           max_position_embeddings=512, tie_word_embeddings=True)


class BaseConfig(Strict):
    """The recipe of a base policy; its defaults are the ``cpu`` preset. Every field enters the hash."""

    tokenizer: TokenizerSection = Field(default_factory=TokenizerSection, description="The BPE tokenizer.")
    model: TinyModelConfig = Field(default_factory=_cpu_model, description="Shape of the Llama-style model.")
    mixture: list[MixtureEntry] = Field(default_factory=_cpu_mixture,
                                        description="Environments of the SFT examples, with difficulties and weights.")
    sft: SFTSection = Field(default_factory=SFTSection, description="Supervised training on step traces.")
    eval: EvalSection = Field(default_factory=EvalSection, description="The quick evaluation stored in base.json.")
    seed: int = Field(0, ge=0, lt=2**63, description="Seeds the examples, the initial weights and the data order.")

    @field_validator("mixture")
    @classmethod
    def _distinct_envs(cls, mixture: list[MixtureEntry]) -> list[MixtureEntry]:
        if not mixture:
            raise ValueError("the mixture needs at least one environment")
        names = [e.env for e in mixture]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"environment {twice[0]!r} appears more than once; list its difficulties in one entry")
        return mixture


#: Named recipes. ``cpu`` fits a 2-core machine in a few minutes; ``gpu`` is for a lent accelerator.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "gpu": {
        "tokenizer": {"vocab_size": 1024},
        "model": {"hidden_size": 512, "num_layers": 8, "num_heads": 8, "intermediate_size": 1536,
                  "max_position_embeddings": 1024},
        "mixture": [
            {"env": "decision_chain", "difficulty": {"low": 0.0, "high": 1.0, "levels": 16}, "weight": 2.0},
            {"env": "arithmetic_chain", "difficulty": {"low": 0.0, "high": 1.0, "levels": 11}, "weight": 3.0},
            {"env": "gcd_euclid", "difficulty": {"low": 0.0, "high": 0.5, "levels": 6}, "weight": 1.0},
            {"env": "fraction_sum", "difficulty": {"low": 0.0, "high": 0.8, "levels": 5}, "weight": 1.0},
            {"env": "topo_order", "difficulty": {"low": 0.0, "high": 0.4, "levels": 5}, "weight": 1.0},
        ],
        "sft": {"examples": 400000, "epochs": 1, "lr": 5e-4, "batch_size": 64},
        "eval": {"instances": 256},
    },
}


def _merge(into: dict, update: dict) -> dict:
    """``update`` laid over ``into``: nested mappings merge key by key, anything else is replaced."""
    out = dict(into)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def preset(name: str) -> BaseConfig:
    """The named recipe; an unknown name is a one-line ``ConfigError``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return build(BaseConfig, PRESETS[name])


def load_config(preset_name: str = "cpu", path: str | os.PathLike | None = None,
                overrides: list[str] = ()) -> BaseConfig:
    """The preset, with the YAML file ``path`` laid over it, then ``key.sub=value`` overrides."""
    import yaml

    data = preset(preset_name).model_dump(mode="json")
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            raise ConfigError(f"{path}: not valid YAML") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = _merge(data, loaded)
    return build(BaseConfig, apply_overrides(data, list(overrides)))


def config_hash(cfg: BaseConfig) -> str:
    """16 hex digits of the SHA-256 of the recipe (canonical JSON) and ``RECIPE_VERSION``."""
    text = json.dumps({"recipe": RECIPE_VERSION, "config": cfg.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- where bases live -------------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$WORLDSMITH_CACHE``, else ``$XDG_CACHE_HOME/worldsmith``, else ``~/.cache/worldsmith``."""
    if os.environ.get("WORLDSMITH_CACHE"):
        return Path(os.environ["WORLDSMITH_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "worldsmith"
    return Path.home() / ".cache" / "worldsmith"


def bases_dir() -> Path:
    return cache_dir() / "base"


def read_info(path: str | os.PathLike) -> dict | None:
    """The ``base.json`` of a base folder, or None when the folder holds no complete base."""
    path = Path(path)
    try:
        info = json.loads((path / BASE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("hash") != path.name or not (path / "config.json").is_file():
        return None
    return info


def list_bases() -> list[dict]:
    """The ``base.json`` of every complete base in the cache, oldest build first."""
    root = bases_dir()
    found = [read_info(p) for p in sorted(root.iterdir())] if root.is_dir() else []
    return sorted((i for i in found if i is not None), key=lambda i: i.get("built_at", ""))


class UnknownBase(LookupError):
    """No base, or more than one, matches a hash prefix; the message is one line."""

    def __str__(self) -> str:
        return str(self.args[0])


def find_base(prefix: str) -> tuple[Path, dict]:
    """The folder and ``base.json`` of the one cached base whose hash starts with ``prefix``."""
    prefix = prefix.strip().lower()
    if not prefix:
        raise UnknownBase("give a hash or the start of one (see `worldsmith base list`)")
    matches = [i for i in list_bases() if i["hash"].startswith(prefix)]
    if not matches:
        raise UnknownBase(f"no base in {bases_dir()} has a hash starting with {prefix!r} "
                          "(see `worldsmith base list`)")
    if len(matches) > 1:
        raise UnknownBase(f"{prefix!r} matches {len(matches)} bases ({', '.join(i['hash'] for i in matches)}); "
                          "give more of the hash")
    return bases_dir() / matches[0]["hash"], matches[0]


# --- the build ----------------------------------------------------------------------------------------
def env_specs(cfg: BaseConfig) -> list[tuple[str, float, float]]:
    """``(env, difficulty, weight)`` per difficulty of every entry; an entry's weight is split
    evenly over its difficulties (the form ``sft_examples`` takes)."""
    specs = []
    for entry in cfg.mixture:
        levels = entry.levels()
        specs.extend((entry.env, d, entry.weight / len(levels)) for d in levels)
    return specs


def sft_examples_for(cfg: BaseConfig, n: int | None = None) -> list[tuple[str, str]]:
    """The first ``n`` (default ``sft.examples``) SFT examples of the recipe, from the train split."""
    from worldsmith.policy.sft import sft_examples

    return sft_examples(env_specs(cfg), cfg.sft.examples if n is None else n, split="train", seed=cfg.seed,
                        with_steps=cfg.sft.with_steps)


def build_tokenizer(texts: list[str], vocab_size: int = 512, min_frequency: int = 2):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts``, one token per digit.

    Same conventions as ``policy.tokenizer.build_char_tokenizer``: ids 0-3 are ``<pad>``,
    ``<bos>``, ``<eos>``, ``<unk>``; ``<answer>`` and ``</answer>`` are added (not special, so they
    survive ``skip_special_tokens=True``); encoding prepends ``<bos>``; padding is on the left.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    pad, bos, eos, unk = SPECIAL_TOKENS
    core = Tokenizer(models.BPE())
    # digits split off one by one first, so no merge can join a digit to anything
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer)
    core.add_tokens(list(ANSWER_TOKENS))
    core.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, core.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=bos, eos_token=eos, unk_token=unk,
                                   pad_token=pad, padding_side="left", clean_up_tokenization_spaces=False)


@contextlib.contextmanager
def _recorded_losses(model, tokenizer, examples, eos_id: int):
    """Record the loss of every training forward pass of ``model`` into the yielded list.

    ``train_sft`` reports only its first and final loss; this hook recomputes each step's loss from
    the logits it produces (the same cross-entropy over completion tokens), finding each row's
    prompt length from its tokens.
    """
    import torch

    from worldsmith.policy.sft import tokenize_examples

    prompt_len = {tuple(p + c): len(p) for p, c in tokenize_examples(tokenizer, examples, eos_id)}
    losses: list[float] = []

    def hook(module, args, kwargs, output):
        if not module.training:
            return
        ids, attn = kwargs["input_ids"], kwargs["attention_mask"]
        logits = output.logits.detach()
        total, count = 0.0, 0
        for row in range(ids.shape[0]):
            n = int(attn[row].sum())
            start = prompt_len.get(tuple(ids[row, :n].tolist()))
            if start is None:
                return  # not one of the examples: leave the curve alone
            pred, target = logits[row, start - 1 : n - 1].float(), ids[row, start:n]
            total += float(torch.nn.functional.cross_entropy(pred, target, reduction="sum"))
            count += n - start
        losses.append(total / max(1, count))

    handle = model.register_forward_hook(hook, with_kwargs=True)
    try:
        yield losses
    finally:
        handle.remove()


def _curve(losses: list[float], points: int = 100) -> list[list[float]]:
    """``[step, mean loss]`` over about ``points`` equal windows of the steps (step = window end)."""
    if not losses:
        return []
    size = max(1, math.ceil(len(losses) / points))
    return [[min(s + size, len(losses)), round(sum(losses[s : s + size]) / len(losses[s : s + size]), 5)]
            for s in range(0, len(losses), size)]


def greedy_answers(model, tokenizer, env_name: str, difficulty: float, split: str, instances: int,
                   max_new_tokens: int, batch_size: int = 64) -> list[tuple[str, bool]]:
    """Greedy answer text to each of ``instances`` instances of ``split``, and whether it passed."""
    from worldsmith import envs
    from worldsmith.policy.backend import SamplingParams
    from worldsmith.policy.hf_backend import HFBackend

    env = envs.get(env_name)
    batch = [env.sample(envs.split_seed(split, i), difficulty) for i in range(instances)]
    out = HFBackend(model, tokenizer, batch_size=batch_size).generate(
        [inst.prompt for inst in batch], SamplingParams(max_new_tokens, temperature=0.0))
    return [(text, env.grade(inst, text).passed) for inst, text in zip(batch, out.texts)]


def greedy_accuracy(model, tokenizer, env_name: str, difficulty: float, split: str, instances: int,
                    max_new_tokens: int, batch_size: int = 64) -> float:
    """Share of ``instances`` instances of ``split`` that greedy decoding solves."""
    answers = greedy_answers(model, tokenizer, env_name, difficulty, split, instances, max_new_tokens, batch_size)
    return sum(ok for _, ok in answers) / len(answers)


@dataclass
class Base:
    """A built or loaded base: the policy, where it lives, its ``base.json``, whether it was reused."""

    model: Any
    tokenizer: Any
    path: Path
    info: dict
    reused: bool


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def build_base(cfg: BaseConfig, *, progress: bool = True, source: str = "custom",
               device: str | None = None) -> Base:
    """Load the cached base of ``cfg``, or build, evaluate and cache it (see the module doc).

    ``source`` names where the recipe came from (a preset name, a file) for ``worldsmith base
    list``; ``device`` defaults to CUDA when there is one. Neither enters the hash.
    """
    from worldsmith.policy.model import load_policy

    digest = config_hash(cfg)
    final = bases_dir() / digest
    info = read_info(final)
    if info is not None:
        _say(progress, f"base {digest}: reusing {final} (built {info.get('built_at', '?')})")
        model, tokenizer = load_policy(final, progress=progress)
        return Base(model, tokenizer, final, info, reused=True)
    _say(progress, f"base {digest}: building in {final}")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{digest}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        model, tokenizer, info = _build(cfg, digest, tmp, progress=progress, source=source, device=device)
        try:
            if final.exists():  # a broken leftover (no complete base.json): replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
        except OSError:
            if read_info(final) is None:
                raise
            # another process finished the same base first: use theirs
            model, tokenizer = load_policy(final, progress=progress)
            info = read_info(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _say(progress, f"base {digest}: built in {info['build_seconds']:.0f} s, {info['params']:,} parameters")
    return Base(model, tokenizer, final, info, reused=False)


def _build(cfg: BaseConfig, digest: str, folder: Path, *, progress: bool, source: str, device: str | None):
    import torch

    from worldsmith.policy.model import build_tiny_model, eos_token_ids, save_policy
    from worldsmith.policy.sft import tokenize_examples, train_sft
    from worldsmith.progress import progress_bar

    started, cpu_started = time.perf_counter(), time.process_time()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    examples = sft_examples_for(cfg)
    tokenizer = build_tokenizer([f"{p}\n{c}" for p, c in examples], cfg.tokenizer.vocab_size,
                                cfg.tokenizer.min_frequency)
    model = build_tiny_model(tokenizer, cfg.model, seed=cfg.seed).to(device)
    eos_id = eos_token_ids(model, tokenizer)[0]
    data = tokenize_examples(tokenizer, examples, eos_id)
    longest = max(len(p) + len(c) for p, c in data)
    context = cfg.model.max_position_embeddings
    if longest > context:
        raise ConfigError(f"model.max_position_embeddings: {context} is shorter than the longest SFT example "
                          f"({longest} tokens); raise it or lower the mixture's difficulties")
    with _recorded_losses(model, tokenizer, examples, eos_id) as losses:
        sft = train_sft(model, tokenizer, examples, epochs=cfg.sft.epochs, lr=cfg.sft.lr,
                        batch_size=cfg.sft.batch_size, seed=cfg.seed, progress=progress,
                        weight_decay=cfg.sft.weight_decay, warmup=cfg.sft.warmup, device=device)
    model.eval()
    sft_seconds = time.perf_counter() - started
    # room for the longest reference completion, and a little more
    max_new_tokens = min(max(len(c) for _, c in data) + 8, context - max(len(p) for p, _ in data))
    tasks = []
    jobs = [(e.env, d, split) for e in cfg.mixture for d in e.eval_levels() for split in ("train", "eval")]
    bar = progress_bar(total=len(jobs), desc="base eval", disable=not progress, leave=False)
    accuracy: dict[tuple[str, float], dict] = {}
    with torch.no_grad():
        for env_name, d, split in jobs:
            acc = greedy_accuracy(model, tokenizer, env_name, d, split, cfg.eval.instances, max_new_tokens)
            accuracy.setdefault((env_name, d), {})[split] = round(acc, 4)
            bar.update(1)
    bar.close()
    for (env_name, d), by_split in accuracy.items():
        tasks.append({"env": env_name, "difficulty": d, "train_greedy": by_split["train"],
                      "eval_greedy": by_split["eval"]})
    save_policy(model, tokenizer, folder)
    params = sum(p.numel() for p in model.parameters())
    info = {
        "hash": digest,
        "recipe_version": RECIPE_VERSION,
        "source": source,
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - started, 1),
        "build_cpu_seconds": round(time.process_time() - cpu_started, 1),
        "sft_seconds": round(sft_seconds, 1),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "params": params,
        "vocab_size": len(tokenizer),
        "longest_example_tokens": longest,
        "sft": {"first_loss": round(sft["first_loss"], 5), "final_loss": round(sft["final_loss"], 5),
                "steps": sft["steps"], "tokens": sft["tokens"], "loss_curve": _curve(losses)},
        "eval": {"instances": cfg.eval.instances, "max_new_tokens": max_new_tokens, "decoding": "greedy",
                 "train_greedy": round(sum(t["train_greedy"] for t in tasks) / len(tasks), 4),
                 "eval_greedy": round(sum(t["eval_greedy"] for t in tasks) / len(tasks), 4),
                 "tasks": tasks},
        "config": cfg.model_dump(mode="json"),
    }
    (folder / BASE_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return model, tokenizer, info


def base_policy(cfg_or_preset: BaseConfig | str = "cpu", progress: bool = True):
    """``(model, tokenizer, path)`` of the base built from a config or a preset name, building it
    the first time and loading it from the cache after that."""
    if isinstance(cfg_or_preset, str):
        cfg, source = preset(cfg_or_preset), cfg_or_preset
    else:
        cfg, source = cfg_or_preset, _preset_named(cfg_or_preset)
    base = build_base(cfg, progress=progress, source=source)
    return base.model, base.tokenizer, base.path


def _preset_named(cfg: BaseConfig) -> str:
    """The preset ``cfg`` equals, else ``"custom"``."""
    for name in PRESETS:
        if preset(name) == cfg:
            return name
    return "custom"
