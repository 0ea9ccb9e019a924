"""Per-step metrics that environments compute over their share of a batch.

An environment may define ``batch_metrics(instances, responses, scores) -> dict[str, float]``
(optional; the vulnerability games use it for ITP and exploit rate). The trainer calls it once per
environment present in the step's batch, with that environment's instances, response texts and raw
grading results (Scores, or the exceptions/timeouts ``safe_grade`` returned), and logs the returned
keys as they are, so an environment namespaces its own keys (``game/itp``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def environment_metrics(env_of: Mapping[str, object], instances: Sequence, responses: Sequence[str],
                        scores: Sequence[object]) -> dict[str, float]:
    """Merge every environment's ``batch_metrics`` over its items; a hook that raises is counted
    as ``env_metrics/errors`` instead of stopping training."""
    items: dict[str, list[int]] = {}
    for i, inst in enumerate(instances):
        items.setdefault(inst.env, []).append(i)
    out: dict[str, float] = {}
    for name, idx in items.items():
        hook = getattr(env_of.get(name), "batch_metrics", None)
        if not callable(hook):
            continue
        try:
            out.update(hook([instances[i] for i in idx], [responses[i] for i in idx], [scores[i] for i in idx]))
        except Exception:
            out["env_metrics/errors"] = out.get("env_metrics/errors", 0.0) + 1.0
    return out
