"""The four vulnerability games (specs/judges-memory-audit-cso.md §2), each with a secure twin.

The environment registry lists this package as the built-in family ``game:``:
``envs.get("game:tampering")`` and ``envs.get("game:tampering_secure")``. The games are not among
``envs.names()`` (they are loopholes on purpose, not built-in tasks). ``bind(env)`` makes the
registry hand out one configured object (with a judge attached, or paper records loaded) instead
of a fresh default, so a trainer that looks the name up grades with it.
"""

from __future__ import annotations

from worldsmith.audit.games.base import GameEnvironment, GameScore, load_records
from worldsmith.audit.games.compliance import ComplianceGame
from worldsmith.audit.games.proxy_metric import ProxyMetricGame
from worldsmith.audit.games.self_grading import SelfGradingGame
from worldsmith.audit.games.tampering import TamperingGame
from worldsmith.envs.registry import UnknownEnvironment, register_family
from worldsmith.registry import Registry

#: The game classes by game name.
GAMES = Registry("game", error=UnknownEnvironment)
for _cls in (ComplianceGame, SelfGradingGame, ProxyMetricGame, TamperingGame):
    GAMES.add(_cls.game, _cls)
_BOUND: dict[str, GameEnvironment] = {}


def make(game: str, secure: bool = False, **options) -> GameEnvironment:
    """A fresh game environment (``options`` go to its constructor, e.g. ``records``, ``judge``)."""
    return GAMES.get(game)(secure=secure, **options)


def bind(env: GameEnvironment) -> GameEnvironment:
    """Let ``envs.get(env.name)`` return this very object from now on."""
    _BOUND[env.name] = env
    return env


def unbind(env: GameEnvironment) -> None:
    if _BOUND.get(env.name) is env:
        del _BOUND[env.name]


def resolve(rest: str) -> GameEnvironment:
    """``game:NAME`` or ``game:NAME_secure``: the bound object if any, else a fresh default."""
    name = f"game:{rest}"
    if name in _BOUND:
        return _BOUND[name]
    secure = rest.endswith("_secure")
    return make(rest.removesuffix("_secure"), secure=secure)


register_family("game", resolve)

__all__ = ["GAMES", "GameEnvironment", "GameScore", "bind", "load_records", "make", "resolve", "unbind"]
