"""The environment registry: names to classes, families of names such as ``rg:`` and ``game:``.

Both tables are ``worldsmith.registry.Registry`` objects whose built-ins are listed here: the seed
environments, the reasoning-gym family ``rg:`` and the vulnerability-game family ``game:``
(each module is imported on the first lookup). Duplicates are rejected and an unknown name is one
line that suggests close names.
"""

from __future__ import annotations

from worldsmith.envs.contract import Environment
from worldsmith.registry import Registry, UnknownName

TYPE_CHECKING = False  # typing stays out of the import: sandboxed programs import the contract in every run
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    E = TypeVar("E", bound=type[Environment])


class UnknownEnvironment(UnknownName):
    """Raised for a name no environment is registered under; the message is one line."""


#: Environment classes by ``Environment.name``.
ENVIRONMENTS = Registry("environment", builtins=("worldsmith.envs.seeds", "worldsmith.envs.decision_chain",
                                                 "worldsmith.vision.envs"), error=UnknownEnvironment, suggest=True)
#: Resolvers of the families of names ``prefix:rest``: ``resolver(rest) -> Environment``.
FAMILIES = Registry("environment family", builtins=("worldsmith.envs.gym", "worldsmith.audit.games"),
                    error=UnknownEnvironment)


def register(cls: E) -> E:
    """Class decorator adding an Environment subclass to the registry under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Environment)):
        raise TypeError(f"register expects an Environment subclass, got {cls!r}")
    name = cls.name
    if not name or not isinstance(name, str) or ":" in name:
        raise ValueError(f"{cls.__name__}.name must be a non-empty string without ':', got {name!r}")
    ENVIRONMENTS.add(name, cls, same_ok=True)
    return cls


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (e.g. a temporary environment in a test)."""
    ENVIRONMENTS.remove(name)


def register_family(prefix: str, resolver: Callable[[str], Environment]) -> None:
    """Resolve every name ``prefix:rest`` with ``resolver(rest)`` (a prefix taken by another
    resolver raises ValueError)."""
    FAMILIES.add(prefix, resolver)


def names() -> list[str]:
    """Names of the registered environments, sorted (families such as ``rg:*`` not expanded)."""
    return ENVIRONMENTS.names()


def get(name: str) -> Environment:
    """A fresh instance of the environment registered as ``name``, or of a family member."""
    if isinstance(name, str) and name in ENVIRONMENTS:
        return ENVIRONMENTS.get(name)()
    prefix, sep, rest = name.partition(":") if isinstance(name, str) else ("", "", "")
    if sep and prefix in FAMILIES:
        return FAMILIES.get(prefix)(rest)
    raise UnknownEnvironment(ENVIRONMENTS.unknown(name))


def known_name(name: str) -> str:
    """``name`` when it names a registered environment (or family member), else a ValueError with
    the registry's one line (for config validators)."""
    try:
        get(name)
    except KeyError as exc:
        raise ValueError(str(exc)) from None
    return name
