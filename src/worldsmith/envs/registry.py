"""The environment registry: names to classes, duplicates rejected, close names suggested."""

from __future__ import annotations

from collections.abc import Callable

from worldsmith.envs.contract import Environment

TYPE_CHECKING = False  # typing stays out of the import: sandboxed programs import the contract in every run
if TYPE_CHECKING:
    from typing import TypeVar

if TYPE_CHECKING:
    E = TypeVar("E", bound=type[Environment])

_REGISTRY: dict[str, type[Environment]] = {}
#: Prefix resolvers for families of environments named ``prefix:rest`` (e.g. ``rg:gcd``).
_FAMILIES: dict[str, Callable[[str], Environment]] = {}


class UnknownEnvironment(KeyError):
    """Raised for a name no environment is registered under; the message is one line."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register(cls: E) -> E:
    """Class decorator adding an Environment subclass to the registry under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Environment)):
        raise TypeError(f"register expects an Environment subclass, got {cls!r}")
    name = cls.name
    if not name or not isinstance(name, str) or ":" in name:
        raise ValueError(f"{cls.__name__}.name must be a non-empty string without ':', got {name!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"environment {name!r} is already registered by {_REGISTRY[name].__qualname__}")
    _REGISTRY[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (e.g. a temporary environment in a test)."""
    _REGISTRY.pop(name, None)


def register_family(prefix: str, resolver: Callable[[str], Environment]) -> None:
    """Resolve every name ``prefix:rest`` with ``resolver(rest)``."""
    if prefix in _FAMILIES:
        raise ValueError(f"environment family {prefix!r} is already registered")
    _FAMILIES[prefix] = resolver


def names() -> list[str]:
    """Names of the registered environments, sorted (families such as ``rg:*`` not expanded)."""
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str) -> Environment:
    """A fresh instance of the environment registered as ``name``."""
    _load_builtins()
    if not isinstance(name, str):
        raise UnknownEnvironment(f"environment name must be text, got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]()
    prefix, sep, rest = name.partition(":")
    if sep and prefix in _FAMILIES:
        return _FAMILIES[prefix](rest)
    close = [n for n in sorted(_REGISTRY) if name and name in n]
    import difflib

    close += [n for n in difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5) if n not in close]
    close = close[:3]
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(_REGISTRY))}"
    raise UnknownEnvironment(f"unknown environment {name!r}{hint}")


_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import worldsmith.envs.gym  # noqa: F401  (registers the rg: family; reasoning-gym loads lazily)
    import worldsmith.envs.seeds  # noqa: F401  (registers the seed environments)
