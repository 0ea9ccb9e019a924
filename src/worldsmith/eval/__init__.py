"""Evaluation: pass@k, maj@k and per-environment summaries (pure Python, no torch)."""

from worldsmith.eval.metrics import EvalRecord, maj_at_k, pass_at_k, summarise

__all__ = ["EvalRecord", "maj_at_k", "pass_at_k", "summarise"]
