"""Environments: the contract, the registry and the built-in environments.

>>> from worldsmith import envs
>>> env = envs.get("gcd_euclid")
>>> inst = env.sample(seed=0, difficulty=0.0)
>>> env.grade(inst, env.wrap(inst.reference)).passed
True
"""

from worldsmith.envs.contract import Environment, Instance, Score, seed_split, split_seed
from worldsmith.envs.registry import UnknownEnvironment, get, names, register, register_family

__all__ = [
    "Environment",
    "Instance",
    "Score",
    "UnknownEnvironment",
    "get",
    "names",
    "register",
    "register_family",
    "seed_split",
    "split_seed",
]
