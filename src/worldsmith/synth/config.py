"""The configuration of `worldsmith synth`: a run config whose pool is the seed environments, plus
the generator role, the admission funnel and how the pool evolves (spec §1.4-§1.7)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from worldsmith.configuration import Strict
from worldsmith.envs.seeds import SEED_MODULES
from worldsmith.policy.http_backend import HTTPBackendConfig
from worldsmith.rl.config import RunConfig
from worldsmith.rl.pool import PoolEntry
from worldsmith.synth.funnel import FunnelConfig
from worldsmith.synth.review import ReviewConfig

#: Prefix of the pool entry (and ``Instance.env``) of an admitted program: ``synth-<archive id>``.
ADMITTED_PREFIX = "synth-"


class RetireSection(Strict):
    """When an admitted environment leaves the pool (seed environments never do)."""

    saturation: float = Field(0.9, gt=0.0, le=1.0, description=(
        "Retire once the moving pass rate reaches this (the solver has mastered it). PROPOSED."))
    min_batches: int = Field(4, ge=1, description=(
        "Batches an environment must have appeared in before saturation can retire it. PROPOSED."))
    max_steps: int | None = Field(None, ge=1, description=(
        "Retire after this many steps in the pool (the paper retires after a fixed number of epochs; "
        "the number was not recovered, so None: off)."))


class SynthSection(Strict):
    """The generator role, the admission funnel and how the pool evolves (spec §1.4-§1.7)."""

    proposer: Literal["policy", "corpus", "remote"] = Field("policy", description=(
        "policy: the policy writes programs and is trained on their rewards; corpus: programs are "
        "read from a folder (no generator loss), e.g. with a policy too small to write code; remote: "
        "a model behind an OpenAI-compatible server (synth.remote) writes them (no generator loss)."))
    reviewer: Literal["policy", "remote"] = Field("policy", description=(
        "Who runs the self-review when funnel.review.enabled: the policy (the spec) or synth.remote."))
    remote: HTTPBackendConfig | None = Field(None, description=(
        "The OpenAI-compatible server (vLLM, Ollama, ...) of proposer: remote or reviewer: remote."))
    corpus: str | None = Field(None, description="Folder of candidate .py files (None: the shipped corpus).")
    prompts_per_step: int = Field(2, ge=1, description="B_g, generator prompts per step. PROPOSED.")
    group_size: int = Field(4, ge=1, description="G_g, completions per generator prompt. PROPOSED (4).")
    exemplars: int = Field(3, ge=0, description="k, exemplar programs from the pool shown per generator prompt.")
    every: int = Field(1, ge=1, description="Run the generator role every this many steps.")
    max_new_tokens: int = Field(2048, ge=16, description="Generation budget of one program.")
    temperature: float = Field(1.0, gt=0.0, description="Sampling temperature of the generator role.")
    microbatch_size: int = Field(4, ge=1, description="Generator rows per forward/backward (they are long).")
    generator_scale: float = Field(0.3, ge=0.0, description=(
        "Weight of the generator loss: loss = L_solver + scale * L_generator. READ (0.3)."))
    generator_advantage: str = Field("grpo", description="Advantage estimator of the generator role (registry name).")
    seed_floor: float = Field(0.2, ge=0.0, le=1.0, description=(
        "At least this fraction of each solver batch comes from the seed environments. READ (0.2)."))
    max_admitted: int = Field(256, ge=1, description="Most admitted environments in the pool; the oldest retires.")
    admitted_difficulty: Literal["calibration", "search"] = Field("calibration", description=(
        "Starting difficulty of an admitted program: the calibration difficulty, or the difficulty of "
        "funnel.calibration.search_grid whose solver pass rate is nearest funnel.calibration.search_band "
        "(m solver answers per grid point)."))
    admitted_adaptive: bool = Field(True, description="Steer admitted environments' difficulty toward the band.")
    admitted_band: tuple[float, float] = Field((0.2, 0.6), description="Pass-rate band of admitted environments.")
    funnel: FunnelConfig = Field(default_factory=lambda: FunnelConfig(review=ReviewConfig(enabled=True)),
                                 description="Gates, self-review, calibration, novelty and generator rewards.")
    retire: RetireSection = Field(default_factory=RetireSection)

    @model_validator(mode="after")
    def _remote_when_used(self) -> SynthSection:
        uses = [what for what, on in (("proposer: remote", self.proposer == "remote"),
                                      ("reviewer: remote", self.reviewer == "remote" and self.funnel.review.enabled))
                if on]
        if uses and self.remote is None:
            raise ValueError(f"{uses[0]} needs synth.remote (base_url and model of the server)")
        return self


def _seed_pool() -> list[PoolEntry]:
    return [PoolEntry(name=name) for name in SEED_MODULES]


class SynthConfig(RunConfig):
    """Everything `worldsmith synth` needs: a ``RunConfig`` (whose ``pool`` is the seed
    environments, all ten by default) plus the ``synth`` section."""

    pool: list[PoolEntry] = Field(default_factory=_seed_pool, description=(
        "The seed environments: the initial pool, protected by the seed floor and never retired."))
    synth: SynthSection = Field(default_factory=SynthSection)

    @field_validator("pool", mode="before")
    @classmethod
    def _names_are_free(cls, pool: object) -> object:
        for entry in pool if isinstance(pool, list) else []:
            name = entry.get("name") if isinstance(entry, dict) else getattr(entry, "name", None)
            if isinstance(name, str) and name.startswith(ADMITTED_PREFIX):
                raise ValueError(f"{name!r}: names starting with {ADMITTED_PREFIX!r} are reserved for admitted programs")
        return pool
