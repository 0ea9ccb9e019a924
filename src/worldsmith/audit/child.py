"""The sandboxed side of ``audit.files.audit_file``: import one environment file and audit it.

``audit_source(source, filename, config)`` runs inside ``worldsmith.sandbox`` only (called through
the harness's ``main`` op by the small driver in ``audit/files.py``): it writes the file's text into
the sandbox's own temporary folder, imports it from there, audits every ``Environment`` subclass
with a name, and returns ``{"reports": [...]}`` or ``{"error": "one line"}`` as plain JSON. The
sandbox sets the limits and owns the only writable places; whatever the file prints never reaches
the result channel.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile


def _environment_classes(path: str) -> list[type]:
    from worldsmith.envs.contract import Environment

    name = "worldsmith_audited_" + os.path.basename(path).removesuffix(".py").replace("-", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {os.path.basename(path)} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return [obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, Environment) and obj is not Environment
            and obj.__module__ == name and obj.name]


def audit_source(source: str, filename: str, config: str, isolation: str) -> dict:
    """Audit the environments ``source`` defines; ``isolation`` is the label the reports carry."""
    try:
        from worldsmith.audit.redteam import RedTeamConfig, audit_env

        cfg = RedTeamConfig.model_validate_json(config)
        folder = tempfile.mkdtemp(prefix="audited-")
        path = os.path.join(folder, os.path.basename(filename) or "environment.py")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(source)
        classes = _environment_classes(path)
        if not classes:
            raise LookupError("defines no Environment subclass with a name")
        return {"reports": [audit_env(cls(), cfg, isolation=isolation).to_json() for cls in classes]}
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        return {"error": f"{type(exc).__name__}: {text}" if text else type(exc).__name__}
