"""Held-out evaluation: greedy accuracy, sampled pass@1, pass@k and maj@k per environment.

Instances come from the eval split (``split_seed("eval", i)``), which no training seed can reach.
"""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm

from worldsmith import envs
from worldsmith.envs.contract import stable_hash
from worldsmith.eval.metrics import EvalRecord, summarise
from worldsmith.policy.backend import GenerationBackend, SamplingParams


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
) -> dict:
    """Evaluate on ``instances`` held-out instances of each (environment, difficulty).

    Returns ``summarise(...)`` plus ``accuracy_greedy`` and ``accuracy_sampled`` (the overall greedy
    accuracy and sampled pass@1) at the top level.
    """
    records = []
    jobs = [(name, float(d)) for name, d in specs]
    bar = tqdm(jobs, desc="eval", disable=not progress, dynamic_ncols=True, leave=False)
    for name, difficulty in bar:
        env = envs.get(name)
        batch = [env.sample(envs.split_seed("eval", i), difficulty) for i in range(instances)]
        prompts = [inst.prompt for inst in batch]
        greedy_ok: list[bool | None] = [None] * len(batch)
        if greedy:
            out = backend.generate(prompts, SamplingParams(max_new_tokens, temperature=0.0))
            greedy_ok = [env.grade(inst, text).passed for inst, text in zip(batch, out.texts)]
        passed: list[list[bool]] = [[] for _ in batch]
        answers: list[list[str | None]] = [[] for _ in batch]
        if samples:
            params = SamplingParams(max_new_tokens, temperature=temperature,
                                    seed=stable_hash("eval", seed, name, difficulty) % 2**62)
            out = backend.generate([p for p in prompts for _ in range(samples)], params)
            for j, text in enumerate(out.texts):
                i = j // samples
                score = env.grade(batch[i], text)
                passed[i].append(score.passed)
                answers[i].append(score.answer)
        for i, inst in enumerate(batch):
            records.append(EvalRecord(name, difficulty, inst.seed, greedy_ok[i], tuple(passed[i]), tuple(answers[i])))
    summary = summarise(records)
    summary["accuracy_greedy"] = summary["overall"]["greedy_accuracy"]
    summary["accuracy_sampled"] = summary["overall"]["pass@1"]
    return summary
