"""Environments for other libraries: TRL, verl, verifiers and reasoning-gym-style datasets.

One module per consumer; all of them draw problems and grade completions through
``exports.common`` (the environments' own ``grade``, answers handled as data). The consumer
libraries are imported only by the functions that need them.
"""

from worldsmith.exports.common import EnvSpec, Grader, Problem, parse_env_specs, problems

__all__ = ["EnvSpec", "Grader", "Problem", "parse_env_specs", "problems"]
