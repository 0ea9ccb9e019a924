"""The run configuration of `worldsmith train`: every section typed, documented and validated."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from worldsmith.configuration import Strict
from worldsmith.policy.model import LoraOptions, TinyModelConfig
from worldsmith.rl.advantages import AdvantageConfig
from worldsmith.rl.cuts import CUTSSection, MixedPlan
from worldsmith.rl.deltarubric import DeltaRubricTrainConfig
from worldsmith.rl.g2rl import G2RLConfig
from worldsmith.rl.losses import LossConfig
from worldsmith.rl.mssr import MSSRConfig
from worldsmith.rl.pool import PoolEntry
from worldsmith.rl.prm_mix import PRMMixConfig
from worldsmith.rl.vppo import VPPOConfig
from worldsmith.tracking import TrackingSection


class ModelSection(Strict):
    path: str | None = Field(None, description="A local HF model folder; None builds the tiny model below.")
    base: str | None = Field(None, description="A base policy preset ('cpu', 'gpu'; see `worldsmith base`): built "
                             "once, cached by its config hash, and the start of the run. Excludes path.")
    base_seed: int | None = Field(None, ge=0, lt=2**63, description="The base recipe's seed (its examples, initial "
                                  "weights and data order); None keeps the preset's. Needs base.")
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig, description="Shape of the tiny model.")
    lora: LoraOptions | None = Field(None, description="Train a LoRA adapter instead of all weights.")
    init_seed: int = Field(0, ge=0, lt=2**63, description="Seed of the tiny model's random initialisation.")


class SamplingSection(Strict):
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature of rollouts.")
    top_k: int = Field(0, ge=0, description="Top-k filter (0 = off).")
    top_p: float = Field(
        1.0, gt=0.0, le=1.0, description="Nucleus filter (1 = off). Below 1 it also truncates CUTS's uniform set."
    )
    max_new_tokens: int = Field(32, ge=1, description="Generation budget per completion.")
    batch_size: int = Field(256, ge=1, description="Sequences decoded together by the HF backend.")
    cuts: CUTSSection = Field(default_factory=CUTSSection, description="The CUTS operator.")
    mixed_plan: MixedPlan = Field(
        default_factory=MixedPlan,
        description="Members per group sampled normally / with CUTS when cuts.enabled; they must add up "
        "to train.group_size (standard=0 gives pure CUTS).",
    )


class ShapingSection(Strict):
    g2rl: G2RLConfig = Field(default_factory=G2RLConfig, description="G2RL gradient-guided novelty (spec §5).")
    prm_mix: PRMMixConfig = Field(default_factory=PRMMixConfig, description="Mean PRM step score added to the "
                                  "outcome reward (VPPO's 'Mixed' baseline).")


class SFTSection(Strict):
    examples: int = Field(0, ge=0, description="Warm-start examples from the pool's environments (0 = no SFT).")
    epochs: int = Field(1, ge=1, description="Passes over the SFT examples.")
    lr: float = Field(3e-3, gt=0.0, le=1.0, description="SFT learning rate (AdamW, constant).")
    batch_size: int = Field(64, ge=1, description="SFT batch size.")
    with_steps: bool = Field(True, description="Train on environments' step traces before the answer, where they have one.")


class OptimSection(Strict):
    lr: float = Field(1e-4, gt=0.0, le=1.0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    schedule: Literal["constant", "linear", "cosine"] = Field("constant", description="Decay after warm-up.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    grad_clip: float | None = Field(1.0, gt=0.0, description="Max gradient norm; None disables clipping.")


class TrainSection(Strict):
    steps: int = Field(100, ge=1, description="RL steps (one rollout batch each).")
    time_budget_s: float | None = Field(None, gt=0.0, description="Stop at the first step boundary where the "
                                        "steps' summed time (time/step) reaches this many seconds, even before "
                                        "train.steps; a resumed run counts the time of the steps it kept. "
                                        "None: train.steps alone decides.")
    prompts_per_step: int = Field(32, ge=1, description="Distinct prompts per step, over all processes.")
    group_size: int = Field(8, ge=1, description="Completions per prompt (the GRPO group).")
    ppo_epochs: int = Field(1, ge=1, description="Passes over each rollout batch.")
    minibatch_size: int = Field(256, ge=1, description="Completions per optimizer step, over all processes.")
    microbatch_size: int = Field(256, ge=1, description="Completions per forward/backward (gradient accumulation).")
    advantage: str = Field("grpo", description="Advantage estimator (registry name).")
    advantage_cfg: AdvantageConfig = Field(default_factory=AdvantageConfig)
    loss: str = Field("ppo_clip", description="Policy loss (registry name).")
    loss_cfg: LossConfig = Field(default_factory=LossConfig)
    shaping: ShapingSection = Field(default_factory=ShapingSection, description="Reward shapers, applied "
                                    "to the graded rewards before the advantage estimator.")
    mssr: MSSRConfig = Field(default_factory=MSSRConfig, description="The value tracker of advantage='mssr' "
                             "(its shaping coefficients are in advantage_cfg).")
    vppo: VPPOConfig = Field(default_factory=VPPOConfig, description="Reward prefixes of advantage='vppo' "
                             "(spec §3): the PRM, alpha, the shortening, ReLU.")
    deltarubric: DeltaRubricTrainConfig = Field(default_factory=DeltaRubricTrainConfig, description="DeltaRubric: "
                                                "train the policy's planner and verifier roles beside its pool (spec §1).")
    failure_reward: float = Field(0.0, description="Replaces an invalid reward (NaN, None, a raise, out of range).")
    grade_timeout_s: float = Field(10.0, gt=0.0, description="A grader call taking longer counts as invalid.")
    checkpoint_every: int = Field(25, ge=0, description="Steps between checkpoints (0 = only at the end).")
    keep_checkpoints: int = Field(2, ge=1, description="How many recent checkpoints to keep.")
    eval_every: int = Field(0, ge=0, description="Steps between held-out evaluations (0 = none during training).")
    seed: int = Field(0, ge=0, lt=2**63, description="Seeds sampling, the pool and the data order.")

    @field_validator("advantage", "loss")
    @classmethod
    def _registered(cls, name: str, info) -> str:
        from worldsmith.rl.registry import ADVANTAGES, LOSSES

        registry = ADVANTAGES if info.field_name == "advantage" else LOSSES
        try:
            registry.get(name)
        except KeyError as exc:  # pydantic reports ValueErrors as the field's error
            raise ValueError(str(exc)) from None
        return name


class EvalTask(Strict):
    env: str = Field(description="Registered environment name.")
    difficulty: float = Field(0.0, ge=0.0, le=1.0, description="The difficulty evaluated.")

    @field_validator("env")
    @classmethod
    def _known(cls, name: str) -> str:
        from worldsmith.envs.registry import known_name

        return known_name(name)


class EvalSection(Strict):
    tasks: list[EvalTask] | None = Field(None, min_length=1, description="Evaluate on these (env, difficulty) tasks; None "
                                         "evaluates the pool's environments at their difficulties.")
    instances: int = Field(256, ge=1, description="Held-out instances per environment (eval seeds).")
    samples: int = Field(4, ge=1, description="Sampled completions per instance (pass@k, maj@k use k = samples).")
    temperature: float = Field(1.0, gt=0.0, description="Temperature of the sampled evaluation.")
    greedy: bool = Field(True, description="Also evaluate greedy decoding.")


class RunConfig(Strict):
    """Everything `worldsmith train` needs; written in full to the run folder as config.yaml."""

    threads: int = Field(
        0, ge=0, description="torch CPU threads (0 = torch's default). Tiny models run fastest on 1 thread."
    )
    model: ModelSection = Field(default_factory=ModelSection)
    pool: list[PoolEntry] = Field(
        default_factory=lambda: [PoolEntry(name="arithmetic_chain")],
        description="Environments to train on, with weights and difficulty.",
    )
    sampling: SamplingSection = Field(default_factory=SamplingSection)
    sft: SFTSection = Field(default_factory=SFTSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    report_to: list[str] = Field(default_factory=list, description=(
        "Experiment trackers that get every metrics row beside metrics.jsonl: tensorboard, wandb, "
        "trackio, mlflow (docs/tracking.md)."))
    tracking: TrackingSection = Field(default_factory=TrackingSection, description=(
        "Project, run name and group of the run in the report_to trackers."))

    @field_validator("report_to")
    @classmethod
    def _trackers(cls, names: list[str]) -> list[str]:
        from worldsmith.tracking import check_available

        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{twice[0]!r} is named twice")
        try:
            check_available(names)
        except KeyError as exc:
            raise ValueError(str(exc)) from None
        except ValueError as exc:  # a missing package: its one line, without the key it already names
            raise ValueError(str(exc).removeprefix("report_to: ")) from None
        return names

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        from worldsmith.rl.methods import check_configs

        check_configs(self)
        if self.model.path is not None and self.model.base is not None:
            raise ValueError("model: give either path (a local model) or base (a cached base policy), not both")
        if self.model.base_seed is not None and self.model.base is None:
            raise ValueError("model.base_seed: needs model.base (the preset whose seed it sets)")
        context = self.model.tiny.max_position_embeddings
        if self.model.path is None and self.model.base is None and self.sampling.max_new_tokens >= context:
            raise ValueError(f"sampling.max_new_tokens = {self.sampling.max_new_tokens} leaves no room for the "
                             f"prompt in the tiny model's context of {context} tokens")
        return self

    @field_validator("pool")
    @classmethod
    def _known_envs(cls, pool: list[PoolEntry]) -> list[PoolEntry]:
        from worldsmith import envs

        if not pool:
            raise ValueError("the pool needs at least one environment")
        names = [entry.name for entry in pool]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"environment {twice[0]!r} appears more than once; give each environment one entry")
        if not sum(entry.weight for entry in pool) > 0:
            raise ValueError("every entry has weight 0; at least one needs a positive weight")
        for entry in pool:
            try:
                envs.get(entry.name)
            except KeyError as exc:
                raise ValueError(str(exc)) from None
        return pool
