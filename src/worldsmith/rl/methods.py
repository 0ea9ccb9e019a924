"""Method plug-ins: how a training method joins the RL step without the trainer naming it.

A method (an exploration operator, a reward shaper, a tracked baseline, an extra role) is one
class in one file. It owns its config section, its state (saved in checkpoints under its name),
its metrics and the hooks it needs. Built-in methods are registered in ``METHODS`` and switched
on by the run's config (``Method.active``); others are given to the trainer as factories taking
it (``Trainer(methods=[lambda trainer: MyMethod(trainer, ...)])``).

The trainer calls the hooks of its active methods, each in registration order, at fixed points of
a step. A hook a method does not override does nothing::

    fit        before_fit                     once, before the first step (e.g. an initialisation pass)
    step       before_collect                 before the step's prompts are drawn
      collect    generate                     the first method that returns rollouts generates them
                 (grade)
                 hidden_statistics            per slice of the old-policy forward (asked for by
                                              ``wants_hidden``); the trainer concatenates the slices
                 (reference log-probs)
                 shape_rewards                rewards -> rewards, before the advantage estimator
                 advantage_inputs             keyword inputs of the advantage estimator
                 (advantages)
                 after_advantages             state updates and diagnostics of the collected batch
      update     extra_roles                  other rollout batches trained in the same update
                 (PPO epochs)
                 after_update                 metrics after the optimizer steps
    progress   postfix                        fields for the progress bar
    checkpoint before_checkpoint              before a checkpoint is written (files beside it named
                                              ``<checkpoint>.<suffix>`` are deleted with it)
               state_dict / load_state_dict   under the method's name (the trainer's step is
                                              restored first)

Every hook that receives the step's ``StepContext`` may read all of it; hooks return what they
change (rollouts, rewards, inputs, metrics) rather than writing into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from worldsmith.rl.registry import METHODS

if TYPE_CHECKING:
    from worldsmith.envs.contract import Instance
    from worldsmith.policy.backend import Rollouts, SamplingParams
    from worldsmith.rl.config import RunConfig


@dataclass
class LMHead:
    """The policy's output layer, cast to fp32 once per batch: weight (V, d), bias (V,) or None."""

    weight: torch.Tensor
    bias: torch.Tensor | None


@dataclass
class StepContext:
    """What the collect phase of one step knows, filled in as it goes. B rows (prompts x group)."""

    step: int
    instances: list[Instance]  # B, each prompt repeated group_size times
    params: SamplingParams
    rollouts: Rollouts | None = None
    off_policy: torch.Tensor | None = None  # (B,) bool: rows whose tokens a method's sampler drew
    scores: list = field(default_factory=list)  # B grader results
    rewards: torch.Tensor | None = None  # (B,) validated rewards
    passed: list[bool] = field(default_factory=list)  # B
    group_ids: torch.Tensor | None = None  # (B,)
    old_logp: torch.Tensor | None = None  # (B, T)
    ref_logp: torch.Tensor | None = None  # (B, T) or None without a reference model
    hidden: dict[str, torch.Tensor] = field(default_factory=dict)  # method name -> its hidden statistics
    shaped: torch.Tensor | None = None  # (B,) rewards after every shape_rewards hook
    prompt_keys: list[str] = field(default_factory=list)  # B stable prompt keys
    advantage_inputs: dict[str, Any] = field(default_factory=dict)
    advantages: torch.Tensor | None = None  # (B, T)

    @property
    def mask(self) -> torch.Tensor:
        """(B, T) completion mask."""
        return self.rollouts.completion_mask


class Method:
    """Base class of method plug-ins; see the module docstring for the hooks and their order.

    ``name`` keys the method's checkpoint state and prefixes its metrics (``name/...``).
    """

    name: ClassVar[str] = ""
    #: whether the trainer must run the old-policy forward with hidden states for ``hidden_statistics``
    wants_hidden: bool = False

    def __init__(self, trainer) -> None:
        self.trainer = trainer

    @classmethod
    def active(cls, cfg: RunConfig) -> bool:
        """Whether the run's config switches this method on."""
        return False

    @classmethod
    def check_config(cls, cfg: RunConfig) -> None:
        """Raise ValueError (one line) when the run's config is inconsistent for this method."""

    @property
    def cfg(self) -> RunConfig:
        return self.trainer.cfg

    # --- hooks, in the order the trainer calls them -------------------------------------------------
    def before_fit(self) -> dict:
        """Before the first step of ``fit``; returns metrics logged with the next step."""
        return {}

    def before_collect(self, step: int, timer) -> None:
        """Before the step's prompts are drawn."""

    def generate(self, instances: Sequence[Instance], params: SamplingParams) -> tuple[Rollouts, torch.Tensor] | None:
        """One completion per row, and (B,) bool marking the rows whose tokens were not drawn
        from the policy itself; None leaves generation to the trainer (or a later method)."""
        return None

    def hidden_statistics(self, hidden: torch.Tensor, head: LMHead, tokens: torch.Tensor, mask: torch.Tensor,
                          temperature: float) -> torch.Tensor:
        """Per-row statistics of one slice of the old-policy forward: hidden (b, T, d) final
        hidden states predicting ``tokens`` (b, T), mask (b, T). Returns a tensor whose first
        dimension is b; the slices are concatenated into ``ctx.hidden[name]``."""
        raise NotImplementedError(f"{type(self).__name__} sets wants_hidden but has no hidden_statistics")

    def shape_rewards(self, ctx: StepContext, rewards: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(B,) rewards in, (B,) rewards for the advantage estimator out, with metrics."""
        return rewards, {}

    def advantage_inputs(self, ctx: StepContext) -> dict:
        """Keyword inputs for the advantage estimator (see ``worldsmith.rl.advantages``)."""
        return {}

    def after_advantages(self, ctx: StepContext) -> dict:
        """After the advantages: update state from the batch; returns metrics."""
        return {}

    def extra_roles(self, step: int, metrics: dict) -> list:
        """Other rollout batches for this step's update, as ``(name, batch, weight, microbatch_size)``
        (see ``Trainer.update``); may add metrics to ``metrics``."""
        return []

    def after_update(self, step: int) -> dict:
        """After the step's optimizer steps; returns metrics."""
        return {}

    def postfix(self, row: dict) -> dict:
        """Fields this method adds to the progress bar."""
        return {}

    # --- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict | None:
        """State saved in checkpoints under ``name`` (None: nothing to save)."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (``trainer.step_index`` is already the resumed step)."""

    def before_checkpoint(self, path) -> None:
        """Before the trainer writes the checkpoint ``path`` (a ``pathlib.Path``)."""


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator registering a built-in method under its ``name``."""
    return METHODS.register(cls.name)(cls)


def configured_methods(cfg: RunConfig) -> list[type[Method]]:
    """The registered methods the config switches on, in registration order."""
    return [cls for cls in METHODS.values() if cls.active(cfg)]


def check_configs(cfg: RunConfig) -> None:
    """Every registered method's consistency check of ``cfg`` (raises ValueError)."""
    for cls in METHODS.values():
        cls.check_config(cfg)
