"""The settings of a CSO run (no torch: the command validates them before loading a model)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CSOConfig(BaseModel):
    """Every knob of CSO. Defaults: the paper's where it gives them (K = 5, gamma_low 0.45,
    gamma_high 0.65, beta 0.5, at most 10 continuation steps, up to 2 rounds, Jaccard 1 - 0.4),
    PROPOSED for the rest (sizes fit a CPU run)."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field("agent_gridworld", description="The agent environment (worldsmith agent list).")
    difficulty: float = Field(0.2, ge=0, le=1, description="Difficulty of the training instances.")
    tasks_per_round: int = Field(32, ge=1, description="Training instances the policy plays per round.")
    k: int = Field(5, ge=1, description="Expert alternatives per step.")
    gamma_low: float = Field(0.45, ge=0, le=1, description="A step is a candidate when the policy's action scores below this.")
    gamma_high: float = Field(0.65, ge=0, le=1, description="... and the best alternative scores above this.")
    jaccard_reject: float = Field(0.6, ge=0, le=1, description="Reject a candidate whose word-Jaccard similarity "
                                  "to an earlier one is at least this (1 - 0.4).")
    max_attempts: int = Field(3, ge=1, description="Attempts per candidate before giving up on diversity.")
    max_additional_steps: int = Field(10, ge=1, description="Policy actions after the alternative in a branch.")
    verify: bool = Field(True, description="Keep a pair only when the policy's branch ends correct (False: ablation).")
    prm_filter: bool = Field(True, description="Require the PRM thresholds (False: ablation, every differing step).")
    beta: float = Field(0.5, gt=0, description="DPO beta.")
    sft_weight: float = Field(0.0, ge=0, description="Weight of the chosen action's NLL added to DPO (PROPOSED "
                              "knob; 0, the spec's plain sigmoid DPO, is the default).")
    rounds: int = Field(1, ge=1, le=10, description="Collect-and-DPO rounds (the paper: up to 2).")
    dpo_epochs: int = Field(3, ge=1, description="Epochs over a round's pairs.")
    dpo_batch_size: int = Field(8, ge=1, description="Pairs per DPO step.")
    lr: float = Field(1e-4, gt=0, description="DPO learning rate (PROPOSED for the tiny CPU policy: 1e-3 collapsed it; the paper uses 5e-6 on 8B).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the failure collection and branches.")
    max_action_tokens: int = Field(12, ge=1, description="Tokens of one action at most.")
    seed: int = Field(0, description="Seed of the instance draws, the sampling and the DPO order.")
    start: str | None = Field(None, description="State dict (.pt) of the tiny start policy; None: build one by "
                              "SFT on expert episodes (``sft_steps``), saved as start.pt in the run folder.")
    sft_steps: int = Field(400, ge=1, description="SFT steps of a start policy built here.")
    eval_problems: int = Field(32, ge=1, description="Held-out (eval split) problems `worldsmith cso` scores at the end.")
