"""Policies as plain Hugging Face causal LMs: build a tiny one, load, save, format prompts, LoRA.

A policy folder is an ordinary HF folder (``config.json``, weights, tokenizer files), loadable by
any HF tool. A folder saved from a LoRA-wrapped model with ``merge_lora=False`` instead holds a
peft adapter whose ``base_model_name_or_path`` names a local base folder; ``load_policy`` follows
it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
)

ADAPTER_CONFIG = "adapter_config.json"


class TinyModelConfig(BaseModel):
    """Shape of a tiny randomly initialised policy (for tests, demos and CPU runs)."""

    model_config = ConfigDict(extra="forbid")

    arch: Literal["llama", "qwen2"] = "llama"
    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(256, ge=8)
    max_position_embeddings: int = Field(512, ge=16)
    tie_word_embeddings: bool = True

    @model_validator(mode="after")
    def _heads_divide_the_width(self) -> TinyModelConfig:
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"hidden_size {self.hidden_size} must split into num_heads {self.num_heads} heads "
                             "of an even size (rotary embeddings rotate pairs)")
        return self


class LoraOptions(BaseModel):
    """LoRA adapter settings (peft ``LoraConfig``)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"


def build_tiny_model(
    tokenizer: PreTrainedTokenizerBase, cfg: TinyModelConfig | None = None, seed: int = 0
) -> PreTrainedModel:
    """A randomly initialised Llama or Qwen2 causal LM sized for ``tokenizer``.

    The weights depend only on ``(cfg, seed, len(tokenizer))``; the global torch RNG is left as it
    was.
    """
    cfg = cfg or TinyModelConfig()
    if cfg.hidden_size % cfg.num_heads:
        raise ValueError(f"hidden_size {cfg.hidden_size} is not divisible by num_heads {cfg.num_heads}")
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=cfg.tie_word_embeddings,
    )
    if cfg.arch == "llama":
        config, cls = LlamaConfig(**common), LlamaForCausalLM
    else:
        config, cls = Qwen2Config(**common), Qwen2ForCausalLM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


def apply_lora(model: PreTrainedModel, lora: LoraOptions) -> PreTrainedModel:
    """Wrap ``model`` in a trainable peft LoRA adapter (only the adapter weights train)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
    )
    return get_peft_model(model, config)


def is_peft_model(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def _dtype_kwargs(dtype: torch.dtype | str | None) -> dict:
    if dtype is None:
        return {}
    import transformers

    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    return {key: dtype}


def load_policy(
    path: str | os.PathLike,
    lora: LoraOptions | None = None,
    *,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a local folder (never from a hub). A vision-language
    folder (a ``vision_config`` in its config) gives ``(model, processor)`` instead: the processor
    is the processing class backends and trainers take, and it holds the tokenizer.

    With ``lora``, the loaded model is wrapped in a fresh trainable LoRA adapter. A folder holding
    a saved adapter is loaded as base + adapter (trainable), and ``lora`` is then not applied again.
    ``progress=False`` hides transformers' weight-loading bar; so does a standard error that is not
    a terminal (a log file gets no carriage-return updates).
    """
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hide = not (progress and sys.stderr.isatty())
    if hide:
        hf_logging.disable_progress_bar()
    try:
        return _load_policy(path, lora, dtype, device)
    finally:
        if shown and hide:
            hf_logging.enable_progress_bar()


def _load_policy(path, lora, dtype, device) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"policy folder {str(path)!r} does not exist")
    if not ((path / "config.json").is_file() or (path / ADAPTER_CONFIG).is_file()):
        raise FileNotFoundError(
            f"{str(path)!r} holds no config.json or {ADAPTER_CONFIG}: not a policy folder"
        )
    kwargs = {"local_files_only": True, **_dtype_kwargs(dtype)}
    if is_vision_folder(path):
        return _load_vision_policy(path, lora, device, kwargs)
    tokenizer = load_tokenizer(path)
    if (path / ADAPTER_CONFIG).is_file():
        from peft import PeftModel

        base_path = json.loads((path / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
        if not base_path or not Path(base_path).is_dir():
            raise FileNotFoundError(
                f"LoRA adapter in {str(path)!r} names base {base_path!r}, not a local folder"
            )
        base = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
        model = PeftModel.from_pretrained(base, path, is_trainable=True, local_files_only=True)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if lora is not None:
            model = apply_lora(model, lora)
    if device is not None:
        model = model.to(device)
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def is_vision_folder(path: str | os.PathLike) -> bool:
    """Whether a model folder holds a vision-language model (its config has a ``vision_config``)."""
    config = Path(path) / "config.json"
    try:
        return config.is_file() and "vision_config" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False


def _load_vision_policy(path: Path, lora, device, kwargs):
    """``(model, processor)`` of a local vision-language folder: the processor is the policy's
    processing class (it holds the tokenizer), so backends and trainers feed it images."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"{str(path)!r} holds a vision-language model but no usable processor "
                                f"({type(exc).__name__})") from None
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    if lora is not None:
        model = apply_lora(model, lora)
    if device is not None:
        model = model.to(device)
    tokenizer = processor.tokenizer
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, processor


#: Tokenizer classes that mean "exactly what tokenizer.json says".
_GENERIC_TOKENIZERS = {"TokenizersBackend", "PreTrainedTokenizerFast"}


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained(path)``, except that a folder whose tokenizer_config names a
    generic fast tokenizer gets exactly its tokenizer.json back.

    transformers 5.x picks the tokenizer class from the model type for some models (qwen2 among
    them), which would swap the char tokenizer's pre-tokenizer for Qwen's byte-level one.
    """
    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    config_file = path / "tokenizer_config.json"
    declared = json.loads(config_file.read_text()).get("tokenizer_class") if config_file.is_file() else None
    if declared in _GENERIC_TOKENIZERS and type(tokenizer).__name__ not in _GENERIC_TOKENIZERS:
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    return tokenizer


def _modes_of_open(folder: Path) -> None:
    """Give every file in ``folder`` the mode ``open()`` would (0666 less the umask): some writers
    (safetensors) create theirs 0600."""
    umask = os.umask(0)
    os.umask(umask)
    for file in folder.rglob("*"):
        if file.is_file():
            file.chmod(0o666 & ~umask)


def save_policy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    path: str | os.PathLike,
    *,
    merge_lora: bool = True,
) -> Path:
    """Save model and tokenizer to ``path`` atomically: written beside it, then renamed into place.

    A LoRA-wrapped model is saved merged (a plain HF folder) unless ``merge_lora`` is false, in
    which case only the adapter is written and its base folder must stay where it is.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        to_save = model
        if is_peft_model(model) and merge_lora:
            to_save = copy.deepcopy(model).merge_and_unload()
        from transformers.utils import logging as hf_logging

        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a per-shard bar is noise for small policies
        try:
            to_save.save_pretrained(tmp)
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        tokenizer.save_pretrained(tmp)
        _modes_of_open(tmp)
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> str:
    """The text fed to the model for ``prompt``: the chat template when there is one, else
    ``prompt + "\\n"``."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt + "\n"


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[list[int]]:
    """Token ids of the formatted prompts, as both generation and SFT feed them to the model.

    Without a chat template the tokenizer adds its own special tokens (e.g. BOS); a chat template
    already writes them into the text, so none are added then.
    """
    texts = [format_prompt(tokenizer, p) for p in prompts]
    add_special = not getattr(tokenizer, "chat_template", None)
    return tokenizer(texts, add_special_tokens=add_special)["input_ids"]


def eos_token_ids(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every token id that ends a completion: the tokenizer's EOS and the model's generation EOS."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(extra, int):
        extra = [extra]
    for i in extra or []:
        if int(i) not in ids:
            ids.append(int(i))
    if not ids:
        raise ValueError("neither the tokenizer nor the model defines an EOS token")
    return ids
