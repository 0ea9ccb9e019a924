"""Labelled step traces for process reward models, and their ProcessBench-style evaluation.

A labelled trace is an instance, its steps, and the index of the first wrong step (None for a
correct solution). Erroneous traces come from corrupting an environment's reference derivation at
a chosen step: the step's text is perturbed (an integer in it moved by a small nonzero amount, or
the step replaced by another step of the trace, or a digit appended), and kept only when the
environment's own ``check_step`` rejects it, so every label is an oracle label. The later steps
stay as in the reference, so what follows the error may look right: only the first error is
labelled, as in ProcessBench.

Evaluation (``processbench``): on erroneous traces, the share whose predicted first error is the
labelled one; on correct traces, the share predicted error-free; F1 is their harmonic mean.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from worldsmith.envs.contract import Instance, split_seed, stable_hash

_INT = re.compile(r"-?\d+")


@dataclass(frozen=True)
class LabelledTrace:
    instance: Instance
    steps: tuple[str, ...]
    first_error: int | None  # index of the first wrong step; None: every step correct


def _perturb(step: str, others: Sequence[str], rng: random.Random) -> str:
    ints = list(_INT.finditer(step))
    kind = rng.random()
    if ints and kind < 0.7:
        m = rng.choice(ints)
        delta = rng.choice([-3, -2, -1, 1, 2, 3, 10])
        return step[: m.start()] + str(int(m.group()) + delta) + step[m.end() :]
    if others and kind < 0.9:
        return rng.choice(list(others))
    return step + str(rng.randint(0, 9))


def corrupt(env, instance: Instance, at: int, rng: random.Random, tries: int = 20) -> tuple[str, ...] | None:
    """The reference steps of ``instance`` with step ``at`` replaced by a wrong one (checked by
    ``env.check_step``); None when no perturbation in ``tries`` is rejected by the checker."""
    steps = list(env.steps(instance.data) or [])
    if not 0 <= at < len(steps):
        return None
    others = [s for s in steps if s != steps[at]]
    for _ in range(tries):
        wrong = _perturb(steps[at], others, rng)
        if wrong.strip() and wrong != steps[at] and not env.check_step(instance.data, steps[:at], wrong):
            return tuple([*steps[:at], wrong, *steps[at + 1 :]])
    return None


def make_traces(env, n: int, split: str, difficulty: float, seed: int = 0,
                error_share: float = 0.5) -> list[LabelledTrace]:
    """``n`` labelled traces of ``env`` on problems of ``split``: ``error_share`` of them corrupted
    at a step drawn uniformly, the rest the reference derivation."""
    if not env.has_steps():
        raise ValueError(f"{env.name} has no step checker; labelled traces need one")
    out, i = [], 0
    while len(out) < n and i < 20 * n + 100:
        inst = env.sample(split_seed(split, stable_hash("prm-data", seed, i) % 2**40), difficulty)
        rng = random.Random(stable_hash("prm-corrupt", seed, env.name, i))
        i += 1
        steps = tuple(env.steps(inst.data) or [])
        if not steps:
            continue
        if rng.random() < error_share:
            at = rng.randrange(len(steps))
            bad = corrupt(env, inst, at, rng)
            if bad is not None:
                out.append(LabelledTrace(inst, bad, at))
        else:
            out.append(LabelledTrace(inst, steps, None))
    return out


def processbench(predicted: Sequence[int | None], labelled: Sequence[LabelledTrace]) -> dict:
    """ProcessBench figures of predicted first errors against labelled traces."""
    if len(predicted) != len(labelled):
        raise ValueError(f"{len(predicted)} predictions for {len(labelled)} traces")
    wrong = [p == t.first_error for p, t in zip(predicted, labelled) if t.first_error is not None]
    right = [p is None for p, t in zip(predicted, labelled) if t.first_error is None]
    acc_err = sum(wrong) / len(wrong) if wrong else None
    acc_ok = sum(right) / len(right) if right else None
    f1 = (2 * acc_err * acc_ok / (acc_err + acc_ok) if acc_err is not None and acc_ok is not None
          and acc_err + acc_ok > 0 else 0.0 if acc_err is not None and acc_ok is not None else None)
    return {"erroneous": len(wrong), "correct": len(right), "error_accuracy": acc_err,
            "correct_accuracy": acc_ok, "f1": f1}
