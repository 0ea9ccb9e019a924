"""Running untrusted programs: isolation modes, limits and the result channel (see docs/sandbox.md)."""

from worldsmith.sandbox.runner import (
    FALLBACK_WARNING,
    NO_ISOLATION,
    UNSAFE_ENV,
    UNSAFE_FLAG,
    Limits,
    RunResult,
    SandboxUnavailable,
    allow_unisolated,
    available_modes,
    bwrap_available,
    resolve_mode,
    run,
    unisolated_allowed,
)

__all__ = ["FALLBACK_WARNING", "NO_ISOLATION", "UNSAFE_ENV", "UNSAFE_FLAG", "Limits", "RunResult",
           "SandboxUnavailable", "allow_unisolated", "available_modes", "bwrap_available", "resolve_mode",
           "run", "unisolated_allowed"]
