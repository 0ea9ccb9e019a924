"""Held-out evaluation: greedy accuracy, sampled pass@1, pass@k and maj@k per environment.

Instances come from the eval split (``split_seed("eval", i)``): problems no training seed can
draw, since the splits partition problems, not only seeds (``envs.contract.problem_split``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from worldsmith import envs
from worldsmith.envs.contract import stable_hash
from worldsmith.eval.metrics import EvalRecord, step_validity, summarise
from worldsmith.policy.backend import GenerationBackend, SamplingParams
from worldsmith.progress import progress_bar
from worldsmith.vision.images import instance_png


def evaluate(
    backend: GenerationBackend,
    specs: Sequence[tuple[str, float]],
    instances: int = 256,
    samples: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 32,
    greedy: bool = True,
    seed: int = 0,
    progress: bool = True,
    environments: Mapping[str, object] | None = None,
) -> dict:
    """Evaluate on ``instances`` held-out instances of each (environment, difficulty).

    ``environments`` maps names to environment objects used instead of the registry (e.g.
    sandboxed programs); those with ``sample_many`` / ``prefetch_grades`` are sampled and graded
    in one call per batch. Returns ``summarise(...)`` plus ``accuracy_greedy`` and
    ``accuracy_sampled`` (the overall greedy accuracy and sampled pass@1) at the top level.
    A backend that takes images (``takes_images``) gets each instance's picture with its prompt.
    """
    records = []
    jobs = [(name, float(d)) for name, d in specs]
    bar = progress_bar(jobs, desc="eval", disable=not progress, dynamic_ncols=True, leave=False)
    for name, difficulty in bar:
        env = environments[name] if environments is not None and name in environments else envs.get(name)
        seeds = [envs.split_seed("eval", i) for i in range(instances)]
        many = getattr(env, "sample_many", None)
        batch = list(many(seeds, difficulty)) if many is not None else [env.sample(s, difficulty) for s in seeds]
        prompts = [inst.prompt for inst in batch]
        pictures = [instance_png(inst.data) for inst in batch] if getattr(backend, "takes_images", False) else None
        prefetch = getattr(env, "prefetch_grades", None)
        greedy_ok: list[bool | None] = [None] * len(batch)
        if greedy:
            out = backend.generate(prompts, SamplingParams(max_new_tokens, temperature=0.0),
                                   **({"images": pictures} if pictures is not None else {}))
            if prefetch is not None:
                prefetch(batch, out.texts)
            greedy_ok = [env.grade(inst, text).passed for inst, text in zip(batch, out.texts)]
        passed: list[list[bool]] = [[] for _ in batch]
        answers: list[list[str | None]] = [[] for _ in batch]
        valid: list[list[bool]] = [[] for _ in batch]
        if samples:
            params = SamplingParams(max_new_tokens, temperature=temperature,
                                    seed=stable_hash("eval", seed, name, difficulty) % 2**62)
            images = {"images": [png for png in pictures for _ in range(samples)]} if pictures is not None else {}
            out = backend.generate([p for p in prompts for _ in range(samples)], params, **images)
            if prefetch is not None:
                prefetch([batch[j // samples] for j in range(len(out.texts))], out.texts)
            for j, text in enumerate(out.texts):
                i = j // samples
                score = env.grade(batch[i], text)
                passed[i].append(score.passed)
                answers[i].append(score.answer)
                ok = step_validity(env, batch[i], text)
                if ok is not None:
                    valid[i].append(ok)
        for i, inst in enumerate(batch):
            records.append(EvalRecord(name, difficulty, inst.seed, greedy_ok[i], tuple(passed[i]), tuple(answers[i]),
                                      tuple(valid[i])))
    summary = summarise(records)
    summary["accuracy_greedy"] = summary["overall"]["greedy_accuracy"]
    summary["accuracy_sampled"] = summary["overall"]["pass@1"]
    summary["step_validity"] = summary["overall"]["step_validity"]
    return summary
