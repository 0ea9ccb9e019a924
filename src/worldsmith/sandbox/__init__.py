"""Running untrusted programs: isolation modes, limits and the result channel (see docs/sandbox.md)."""

from worldsmith.sandbox.runner import (
    FALLBACK_WARNING,
    Limits,
    RunResult,
    SandboxUnavailable,
    available_modes,
    bwrap_available,
    resolve_mode,
    run,
)

__all__ = ["FALLBACK_WARNING", "Limits", "RunResult", "SandboxUnavailable", "available_modes",
           "bwrap_available", "resolve_mode", "run"]
