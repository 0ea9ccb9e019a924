"""Name -> object registries: one class for every table of named plug-ins in worldsmith.

Advantage estimators, policy losses and methods (``worldsmith.rl.registry``) and the CLI's
sub-commands (``worldsmith.commands``) each have one ``Registry``. A registry lists the modules
holding its built-ins and imports them on the first lookup, so the built-ins are always present
without an import order to remember. Registering a name twice raises ``ValueError``; asking for an
unknown name raises ``UnknownName``, whose message is one line listing the valid names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable)


class UnknownName(KeyError):
    """Raised for a name nothing is registered under; the message is one line."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry(Generic[F]):
    """A name -> function table for one kind of algorithm variant.

    ``kind`` names the variants in messages ("advantage", "loss", "method"). ``builtins`` are module paths
    imported, in order, on the first lookup, so the built-in variants are always present without an
    import order to remember.
    """

    def __init__(self, kind: str, builtins: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._builtins = tuple(builtins)
        self._table: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator adding the function under ``name``; a name already taken raises ValueError."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def add(fn: F) -> F:
            if not callable(fn):
                raise TypeError(f"{self.kind} {name!r} must be callable, got {fn!r}")
            if name in self._table:
                raise ValueError(f"{self.kind} {name!r} is already registered by {self._table[name].__qualname__}")
            self._table[name] = fn
            return fn

        return add

    def get(self, name: str) -> F:
        """The function registered as ``name``; unknown names raise UnknownName (one line)."""
        self._load()
        if isinstance(name, str) and name in self._table:
            return self._table[name]
        raise UnknownName(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")

    def names(self) -> list[str]:
        """The registered names, sorted."""
        self._load()
        return sorted(self._table)

    def values(self) -> list[F]:
        """The registered objects, in registration order (the built-in modules' order first)."""
        self._load()
        return list(self._table.values())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._table

    def _load(self) -> None:
        builtins, self._builtins = self._builtins, ()
        for module in builtins:
            importlib.import_module(module)
