"""What a `worldsmith` sub-command is built from: its registry, its parser, its argument types.

A module adds a sub-command by registering a function that takes argparse's sub-parsers object::

    from worldsmith.commands import Parser, positive_int, register_command

    @register_command("archive")
    def add_archive(sub) -> None:
        p = sub.add_parser("archive", help="...")
        p.add_argument("--limit", type=positive_int)
        p.set_defaults(func=cmd_archive)

and by listing its module in ``COMMANDS``'s built-ins below. Every user mistake raises
``UsageError`` (one line on stderr, exit code 2); a failed check returns ``EXIT_FAILED``. Library
code raises its own errors and the command turns them into a ``UsageError``.
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from worldsmith.registry import Registry

EXIT_FAILED, EXIT_USAGE = 1, 2

#: ``fn(subparsers) -> None`` adding one top-level sub-command, in the order ``worldsmith --help`` lists them.
COMMANDS: Registry = Registry("command", builtins=("worldsmith.audit.cli", "worldsmith.base_cli", "worldsmith.compare_cli",
                                                   "worldsmith.synth.archive_cli", "worldsmith.synth.cli",
                                                   "worldsmith.exports.export_cli", "worldsmith.report.cli",
                                                   "worldsmith.memory.cli", "worldsmith.prm.cli",
                                                   "worldsmith.vision.cli", "worldsmith.agents.agent_cli"))


def register_command(name: str):
    """Decorator registering ``fn(subparsers)`` as the sub-command ``name``."""
    return COMMANDS.register(name)


class UsageError(Exception):
    """A mistake in the user's input: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one-line ``UsageError``s instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def parse_with_overrides(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``, letting ``key.sub=value`` overrides come before or after options such as
    ``--out``; anything else unrecognised is a ``UsageError``."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            raise UsageError(f"{parser.prog}: unrecognized arguments: {' '.join(extra)}")
    return args


def load_run_config(path, overrides):
    """The ``RunConfig`` in the YAML file ``path`` with ``key=value`` overrides; any problem is a
    one-line ``UsageError``."""
    from worldsmith import configuration
    from worldsmith.rl.config import RunConfig

    try:
        return configuration.load(RunConfig, path, overrides)
    except configuration.ConfigError as exc:
        raise UsageError(f"config: {exc}") from None


# --- argument types ---------------------------------------------------------------------------------
def difficulty(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def temperature(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def get_env(name: str):
    """The registered environment ``name``; an unknown name is a ``UsageError``."""
    from worldsmith import envs

    try:
        return envs.get(name)
    except envs.UnknownEnvironment as exc:
        raise UsageError(str(exc)) from None


def env_tasks(texts: list[str] | None, flag: str) -> list[tuple[str, float]]:
    """``NAME[@DIFFICULTY]`` values of option ``flag`` -> (name, difficulty), checked against the
    registry (difficulty 0 when none is given)."""
    out = []
    for text in texts or []:
        name, _, diff = text.partition("@")
        get_env(name)
        try:
            out.append((name, difficulty(diff) if diff else 0.0))
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{flag} {text}: difficulty {exc}") from None
    return out


# --- isolation ----------------------------------------------------------------------------------------
def add_isolation_flag(parser: argparse.ArgumentParser) -> None:
    """``--unsafe-no-isolation`` for a command that runs untrusted code (see docs/sandbox.md)."""
    parser.add_argument("--unsafe-no-isolation", action="store_true",
                        help="where bubblewrap cannot run, run untrusted programs with rlimits only "
                             "(accident protection, NOT a security boundary) instead of refusing")


def apply_isolation_flag(args: argparse.Namespace) -> None:
    """Record the user's opt-in to unisolated runs for this process (``sandbox.allow_unisolated``)."""
    if getattr(args, "unsafe_no_isolation", False):
        from worldsmith.sandbox import allow_unisolated

        allow_unisolated()
