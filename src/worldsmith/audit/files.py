"""`worldsmith audit env FILE.py`: environments from a file are audited only inside the sandbox.

``audit_file(path, cfg)`` reads the file on the trusted side and starts one sandbox run
(``worldsmith.sandbox.run``, op ``main``) in which ``audit.child.audit_source`` imports it and runs
the whole red-team battery (``redteam.audit_env``) there: sampling, every strategy's responses and
every grade, with the injection canary inside the sandbox's own temporary folder. One launch per
file, whatever the number of answers. The sandbox's isolation is the one every untrusted program
gets (docs/sandbox.md): bubblewrap where it works; where it does not, ``audit_file`` refuses with
``SandboxUnavailable`` unless the user opted in to unisolated runs (``--unsafe-no-isolation``).

The reports come back as plain JSON and are rebuilt strictly on the trusted side; a report is the
file's own account of itself (a hostile file can forge it), so an audit finds weak scorers, it
does not certify a file as harmless.
"""

from __future__ import annotations

import os
import pathlib
import sysconfig
import warnings

from worldsmith.audit.redteam import AuditReport, RedTeamConfig
from worldsmith.sandbox import FALLBACK_WARNING, Limits, resolve_mode, run

#: Hard limits of the sandboxed audit. PROPOSED values.
AUDIT_MEMORY_MB = 2048
AUDIT_FILE_MB = 64
RESULT_CAP_BYTES = 16 * 1024**2

ISOLATION = {
    "bwrap": "sandbox (bwrap): own namespaces, no network, read-only system, hard limits",
    "fallback": "sandbox fallback (rlimits only, --unsafe-no-isolation): accident protection, NOT a security boundary",
}

#: The program the sandbox runs: the harness calls its ``main(args)``.
_DRIVER = """
def main(args):
    from worldsmith.audit.child import audit_source

    return audit_source(**args)
"""


class AuditFileError(Exception):
    """The file could not be audited (missing, no environment, failed import); one-line message."""


class AuditTimeout(AuditFileError):
    """The sandboxed audit ran past its wall-clock limit (a scorer or generator may hang)."""


def audit_limits(timeout_s: float) -> Limits:
    """The sandbox limits of one file's audit: ``timeout_s`` of wall clock, as much CPU."""
    return Limits(wall_s=float(timeout_s), cpu_s=max(1, int(timeout_s)) + 5, memory_mb=AUDIT_MEMORY_MB,
                  file_mb=AUDIT_FILE_MB, result_bytes=RESULT_CAP_BYTES)


def _site_paths() -> tuple[str, ...]:
    """The read-only folders the audit imports from besides the package (pydantic, for the config)."""
    import pydantic

    found = [os.path.dirname(os.path.dirname(os.path.abspath(pydantic.__file__)))]
    found += [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]
    return tuple(p for p in dict.fromkeys(os.path.realpath(p) for p in found) if os.path.isdir(p))


def audit_file(path: str | os.PathLike, cfg: RedTeamConfig | None = None, timeout_s: float = 300.0,
               mode: str = "auto") -> list[AuditReport]:
    """Audit every Environment subclass defined in a Python file, inside one sandbox run.

    Raises ``AuditFileError`` (one line) when the file is missing, unreadable, defines no
    environment or fails to import, ``AuditTimeout`` past ``timeout_s`` seconds, and
    ``SandboxUnavailable`` where no isolation works and the user did not opt in.
    """
    cfg = cfg or RedTeamConfig()
    path = pathlib.Path(path).resolve()
    if not path.is_file():
        raise AuditFileError(f"{path}: no such file")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditFileError(f"{path.name}: cannot read: {exc}") from None
    isolation = resolve_mode(mode)  # type: ignore[arg-type]
    args = {"source": source, "filename": path.name, "config": cfg.model_dump_json(),
            "isolation": ISOLATION[isolation]}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=FALLBACK_WARNING)
        res = run(_DRIVER, {"op": "main", "args": args}, audit_limits(timeout_s), isolation, paths=_site_paths())
    if res.status == "timeout":
        raise AuditTimeout(f"{path.name}: the audit ran past its limit ({res.reason}; a scorer or generator may hang)")
    if not res.ok:
        raise AuditFileError(f"{path.name}: the sandboxed audit failed: {res.status}: {res.reason}"[:400])
    return _reports(path, res.value, isolation)


_NUMBER = (int, float)
_REPORT_TYPES = {"env": str, "oracle": str, "instances": int, "threshold": _NUMBER, "reward_threshold": _NUMBER,
                 "isolation": str, "side_effect": bool, "slow_grades": int, "seconds": _NUMBER,
                 "constant_threshold": _NUMBER}
_STRATEGY_TYPES = {"name": str, "summary": str, "worst": str, "flagged": bool}
_VARIANT_TYPES = {"variant": str, "attempts": int, "passes": int, "reward": _NUMBER, "errors": int,
                  "max_seconds": _NUMBER, "example": str}


def _typed(row: object, types: dict) -> bool:
    """Whether ``row`` is an object whose fields have these plain types (``bool`` is no number)."""
    return isinstance(row, dict) and all(
        k in row and isinstance(row[k], t) and (t is bool or not isinstance(row[k], bool)) for k, t in types.items())


def _well_formed(report: object) -> bool:
    if not _typed(report, _REPORT_TYPES):
        return False
    diffs, strategies = report.get("difficulties"), report.get("strategies")  # type: ignore[union-attr]
    if not isinstance(diffs, list) or not all(isinstance(d, _NUMBER) and not isinstance(d, bool) for d in diffs):
        return False
    return isinstance(strategies, list) and all(
        _typed(s, _STRATEGY_TYPES) and isinstance(s.get("variants"), list)
        and all(_typed(v, _VARIANT_TYPES) for v in s["variants"]) for s in strategies)


def _reports(path: pathlib.Path, value: object, isolation: str) -> list[AuditReport]:
    """The reports the sandbox sent, type-checked field by field, labelled with the isolation this
    side chose (never the label the sandbox claims)."""
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        raise AuditFileError(f"{path.name}: {' '.join(value['error'].split())[:300]}")
    reports = value.get("reports") if isinstance(value, dict) else None
    if not isinstance(reports, list) or not reports or not all(_well_formed(r) for r in reports):
        raise AuditFileError(f"{path.name}: the sandboxed audit returned no well-formed report")
    out = [AuditReport.from_json(r) for r in reports]
    for report in out:
        report.isolation = ISOLATION[isolation]
    return out


__all__ = ["AuditFileError", "AuditTimeout", "ISOLATION", "audit_file", "audit_limits"]
