"""Process reward models: a score per reasoning step, and where the first wrong step is.

One interface, several kinds:

- ``OraclePRM``: exact, from the environments' ``check_step`` (1.0 for a step that checks, else 0.0);
- ``NoisyPRM``: another PRM whose first-error index is corrupted at a controlled rate (the
  noise sweep of process-supervised RL);
- ``JudgePRM`` (``worldsmith.prm.judge``): a generative judge over any generation backend, whose
  verdict parser fails closed;
- ``TrainedPRM`` (``worldsmith.prm.trained``): a small transformer with a step-score head trained on
  the oracles' labels (``worldsmith prm train``);
- ``LikelihoodPRM`` (``worldsmith.prm.likelihood``): a policy's own probability of each step's least
  likely token, with no training.

Steps are the texts of ``worldsmith.steps.split_steps``; indices are 0-based (the spec's M_err is
the index plus one). ``first_error`` is the first step whose score is below ``threshold``
(spec §3.2: 0.8), or None when every step clears it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from worldsmith.envs.contract import Instance, stable_hash

#: The first-error threshold of VPPO, chosen on ProcessBench for its PRM. READ (spec §3.2).
DEFAULT_THRESHOLD = 0.8


def first_below(scores: Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> int | None:
    """The index of the first score below ``threshold``, or None."""
    return next((k for k, s in enumerate(scores) if s < threshold), None)


class PRM:
    """Base class: subclasses implement ``score_steps``; ``score_batch`` may be overridden to
    batch model calls. ``calls`` counts the step lists scored (for the cost metrics)."""

    name: str = ""

    def __init__(self) -> None:
        self.calls = 0

    def score_steps(self, instance: Instance, steps: Sequence[str]) -> list[float]:
        """One score in [0, 1] per step: the probability that the step is correct given the ones before."""
        raise NotImplementedError

    def score_batch(self, items: Sequence[tuple[Instance, Sequence[str]]]) -> list[list[float]]:
        """``score_steps`` for each ``(instance, steps)``."""
        return [self.score_steps(inst, steps) for inst, steps in items]

    def first_error(self, instance: Instance, steps: Sequence[str], threshold: float = DEFAULT_THRESHOLD) -> int | None:
        """The index of the first step scored below ``threshold``; None when there is none."""
        return first_below(self.score_steps(instance, steps), threshold)

    def first_errors(self, items: Sequence[tuple[Instance, Sequence[str]]],
                     threshold: float = DEFAULT_THRESHOLD) -> list[int | None]:
        """``first_error`` for each ``(instance, steps)``, scored in one ``score_batch``."""
        return [first_below(s, threshold) for s in self.score_batch(items)]


class OraclePRM(PRM):
    """Exact step scores from the environments' ``check_step``: 1.0 when step k is a correct next
    step after steps 0..k-1 as written, else 0.0 (also when the checker raises). Environments
    without a step checker score every step 0.5, below the default threshold: unknown is not
    verified (use ``has_checker`` to tell)."""

    name = "oracle"

    def __init__(self, env_of: Mapping[str, object]) -> None:
        super().__init__()
        self.env_of = env_of

    def has_checker(self, instance: Instance) -> bool:
        env = self.env_of.get(instance.env)
        return env is not None and getattr(env, "has_steps", lambda: False)()

    def score_steps(self, instance: Instance, steps: Sequence[str]) -> list[float]:
        self.calls += 1
        if not self.has_checker(instance):
            return [0.5] * len(steps)
        env, out = self.env_of[instance.env], []
        for k, step in enumerate(steps):
            try:
                out.append(1.0 if env.check_step(instance.data, list(steps[:k]), step) else 0.0)
            except Exception:
                out.append(0.0)
        return out


class NoisyPRM(PRM):
    """``base`` with its first error moved at rate ``rate``: for a chosen step list (a stable hash
    of the seed, the instance and the steps, so a rerun corrupts the same ones) the first-error
    index is replaced by another one drawn uniformly from the other indices and "no error". The
    scores are rewritten to match: 1.0 before the new first error, 0.0 from it on."""

    name = "noisy"

    def __init__(self, base: PRM, rate: float, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"noise rate must be in [0, 1], got {rate}")
        self.base, self.rate, self.seed = base, rate, seed
        self.corrupted = 0

    def score_batch(self, items: Sequence[tuple[Instance, Sequence[str]]]) -> list[list[float]]:
        out = []
        for (inst, steps), scores in zip(items, self.base.score_batch(items)):
            self.calls += 1
            rng = random.Random(stable_hash("prm-noise", self.seed, inst.env, inst.seed, "\x1e".join(steps)))
            if steps and rng.random() < self.rate:
                true = first_below(scores)
                choices = [k for k in [*range(len(steps)), None] if k != true]
                wrong = rng.choice(choices)
                self.corrupted += 1
                scores = [1.0 if wrong is None or k < wrong else 0.0 for k in range(len(steps))]
            out.append(list(scores))
        return out

    def score_steps(self, instance: Instance, steps: Sequence[str]) -> list[float]:
        return self.score_batch([(instance, steps)])[0]


class PRMConfig(BaseModel):
    """Which process reward model a training method uses (``build_prm``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["oracle", "trained", "judge", "likelihood"] = Field(
        "oracle", description="oracle: the environments' check_step; trained: a model from `worldsmith prm "
        "train` at `path`; judge: the policy itself (or an HTTP server, `http`) asked to grade each step; "
        "likelihood: a policy's probability of each step's least likely token (the policy at `path`, or "
        "the one being trained); pair it with a low first-error threshold (0.1).")
    path: str | None = Field(None, description="kind=trained: the folder `worldsmith prm train` wrote; "
                             "kind=likelihood: a policy folder (None: the policy being trained).")
    http: dict | None = Field(None, description="kind=judge: an HTTPBackendConfig (base_url, model, ...); "
                              "None judges with the policy being trained.")
    judge_max_new_tokens: int = Field(64, ge=1, description="kind=judge: the verdict's token budget.")
    noise: float = Field(0.0, ge=0.0, le=1.0, description="Rate at which the first-error index is replaced by "
                         "a random other one (NoisyPRM); 0 = exact.")
    noise_seed: int = Field(0, ge=0, description="Seed of the corruption draws.")


def build_prm(cfg: PRMConfig, env_of: Mapping[str, object], policy_backend=None) -> PRM:
    """The PRM ``cfg`` describes. ``policy_backend`` is the judge's backend when ``cfg.http`` is None."""
    if cfg.kind == "oracle":
        prm: PRM = OraclePRM(env_of)
    elif cfg.kind == "trained":
        if not cfg.path:
            raise ValueError("prm.kind=trained needs prm.path, a folder written by `worldsmith prm train`")
        from worldsmith.prm.trained import TrainedPRM

        prm = TrainedPRM.load(cfg.path)
    elif cfg.kind == "likelihood":
        from worldsmith.prm.likelihood import LikelihoodPRM

        if cfg.path:
            from worldsmith.policy.model import load_policy

            model, tokenizer = load_policy(cfg.path, progress=False)
        elif policy_backend is not None and hasattr(policy_backend, "model"):
            model, tokenizer = policy_backend.model, policy_backend.tokenizer
        else:
            raise ValueError("prm.kind=likelihood needs prm.path (a policy folder) or an in-process policy")
        prm = LikelihoodPRM(model, tokenizer)
    else:
        from worldsmith.prm.judge import JudgePRM

        backend = policy_backend
        if cfg.http is not None:
            from worldsmith.policy.http_backend import HTTPBackend, HTTPBackendConfig

            backend = HTTPBackend(HTTPBackendConfig(**cfg.http))
        if backend is None:
            raise ValueError("prm.kind=judge needs a backend: the policy's, or prm.http")
        prm = JudgePRM(backend, max_new_tokens=cfg.judge_max_new_tokens)
    return NoisyPRM(prm, cfg.noise, cfg.noise_seed) if cfg.noise > 0 else prm
