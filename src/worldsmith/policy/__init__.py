"""Policies: tokenizers, models, generation backends and supervised warm-start.

This package knows nothing of RL. Names are loaded on first use, so ``import worldsmith.policy``
stays cheap until a model is needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "GenerationBackend": "backend",
    "Rollouts": "backend",
    "SamplingParams": "backend",
    "merge_rollouts": "backend",
    "CUTS": "sampling",
    "cuts_mask": "sampling",
    "cuts_logits": "sampling",
    "cuts_sample": "sampling",
    "build_char_tokenizer": "tokenizer",
    "TinyModelConfig": "model",
    "LoraOptions": "model",
    "build_tiny_model": "model",
    "apply_lora": "model",
    "load_policy": "model",
    "save_policy": "model",
    "format_prompt": "model",
    "encode_prompts": "model",
    "HFBackend": "hf_backend",
    "sequence_logprobs": "hf_backend",
    "sampling_logprobs": "hf_backend",
    "sft_examples": "sft",
    "train_sft": "sft",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
