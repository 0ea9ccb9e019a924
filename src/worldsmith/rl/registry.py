"""The RL registries: advantage estimators, policy losses and method plug-ins, by name.

>>> from worldsmith.rl.registry import ADVANTAGES
>>> "grpo" in ADVANTAGES.names()
True
"""

from __future__ import annotations

from worldsmith.registry import Registry, UnknownName

#: ``fn(rewards, mask, group_ids, cfg, **batch) -> advantages``; see ``worldsmith.rl.advantages``.
ADVANTAGES: Registry = Registry("advantage", builtins=("worldsmith.rl.advantages", "worldsmith.rl.mssr",
                                                                   "worldsmith.rl.vppo"))
#: ``fn(logp, old_logp, advantages, mask, cfg, ref_logp=None) -> (loss, metrics)``; see ``worldsmith.rl.losses``.
LOSSES: Registry = Registry("loss", builtins=("worldsmith.rl.losses",))
#: ``Method`` subclasses by name, in the order the trainer calls their hooks; see ``worldsmith.rl.methods``.
METHODS: Registry = Registry("method", builtins=("worldsmith.rl.cuts", "worldsmith.rl.g2rl", "worldsmith.rl.mssr",
                                                         "worldsmith.rl.vppo", "worldsmith.rl.prm_mix"))

__all__ = ["ADVANTAGES", "LOSSES", "METHODS", "Registry", "UnknownName"]
