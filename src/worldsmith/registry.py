"""Name -> object registries: one class for every table of named plug-ins in worldsmith.

Environments and their families such as ``rg:`` and ``game:`` (``worldsmith.envs.registry``),
red-team strategies (``worldsmith.audit.redteam``), vulnerability games (``worldsmith.audit.games``),
advantage estimators, policy losses and methods (``worldsmith.rl.registry``) and the CLI's
sub-commands (``worldsmith.commands``) each have one ``Registry``. A registry lists the modules
holding its built-ins and imports them on the first lookup, so the built-ins are always present
without an import order to remember. Registering a name twice raises ``ValueError``; asking for an
unknown name raises ``UnknownName``, whose message is one line listing the valid names.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing stays out of the import: sandboxed programs import the environment registry
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


class UnknownName(KeyError):
    """Raised for a name nothing is registered under; the message is one line."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry:
    """A name -> object table for one kind of plug-in (functions, classes or instances).

    ``kind`` names the plug-ins in messages ("advantage", "environment", ...). ``builtins`` are
    module paths imported, in order, on the first lookup. ``error`` is the exception raised for an
    unknown name (a subclass of ``UnknownName`` or of ``KeyError`` taking one message); with
    ``suggest`` its message proposes close names instead of listing all of them.
    """

    def __init__(self, kind: str, builtins: tuple[str, ...] = (), error: type[KeyError] = UnknownName,
                 suggest: bool = False) -> None:
        self.kind = kind
        self._builtins = tuple(builtins)
        self._error = error
        self._suggest = suggest
        self._table: dict[str, object] = {}

    def register(self, name: str) -> Callable:
        """Decorator adding the object under ``name``; a name already taken raises ValueError."""
        self._check_name(name)

        def add(obj):
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: object, *, same_ok: bool = False) -> None:
        """Add ``obj`` under ``name``; a name already taken raises ValueError (unless ``same_ok`` and
        it is taken by ``obj`` itself, e.g. a module imported twice)."""
        self._check_name(name)
        if not callable(obj) and not hasattr(obj, "__dict__"):
            raise TypeError(f"{self.kind} {name!r} must be a function, class or object, got {obj!r}")
        taken = self._table.get(name)
        if taken is not None and not (same_ok and taken is obj):
            owner = getattr(taken, "__qualname__", type(taken).__qualname__)
            raise ValueError(f"{self.kind} {name!r} is already registered by {owner}")
        self._table[name] = obj

    def _check_name(self, name: object) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

    def remove(self, name: str) -> None:
        """Drop ``name`` (nothing happens when it is not registered)."""
        self._table.pop(name, None)

    def get(self, name: str):
        """The object registered as ``name``; an unknown name raises ``error`` (one line)."""
        self._load()
        if isinstance(name, str) and name in self._table:
            return self._table[name]
        raise self._error(self.unknown(name))

    def unknown(self, name: object) -> str:
        """The one-line message for an unknown ``name``."""
        known = self.names()
        if not isinstance(name, str):
            return f"{self.kind} name must be text, got {name!r}"
        if self._suggest:
            import difflib

            close = [n for n in known if name and name in n]
            close += [n for n in difflib.get_close_matches(name, known, n=3, cutoff=0.5) if n not in close]
            if close:
                return f"unknown {self.kind} {name!r}; did you mean {', '.join(close[:3])}?"
            return f"unknown {self.kind} {name!r}; known: {', '.join(known)}"
        return f"unknown {self.kind} {name!r}; valid: {', '.join(known)}"

    def names(self) -> list[str]:
        """The registered names, sorted."""
        self._load()
        return sorted(self._table)

    def values(self) -> list:
        """The registered objects, in registration order (the built-in modules' order first)."""
        self._load()
        return list(self._table.values())

    def items(self) -> list[tuple[str, object]]:
        """``(name, object)`` pairs in registration order."""
        self._load()
        return list(self._table.items())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        """The names in registration order."""
        self._load()
        return iter(list(self._table))

    def __len__(self) -> int:
        self._load()
        return len(self._table)

    def _load(self) -> None:
        builtins, self._builtins = self._builtins, ()
        for module in builtins:
            importlib.import_module(module)
