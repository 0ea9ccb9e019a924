"""The child side of ``redteam.audit_file``: import one environment file and audit it.

Run as ``python -m worldsmith.audit.child FILE CONFIG_JSON LIMITS_JSON``. Before the file is
imported, the child sets the hard rlimits it was given on itself, and the real
stdout is set aside and fd 1 is pointed at stderr, so whatever the file prints cannot be mistaken
for the result; the result is one JSON line written to the set-aside stdout at the end:
``{"reports": [...]}`` or ``{"error": "one line"}``.

This process is the only place a user's environment file is imported. It is NOT a security
boundary (see ``redteam.audit_file``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys


def _result_channel():
    saved = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(saved, "w")


def _environment_classes(path: str) -> list[type]:
    from worldsmith.envs.contract import Environment

    name = "worldsmith_audited_" + os.path.basename(path).removesuffix(".py").replace("-", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return [obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, Environment) and obj is not Environment
            and obj.__module__ == name and obj.name]


def _apply_limits(limits: str) -> None:
    """Hard rlimits (soft = hard: the imported file cannot raise them again)."""
    import resource

    for name, value in json.loads(limits).items():
        resource.setrlimit(getattr(resource, name), (value, value))


def main(argv: list[str]) -> int:
    path, config, limits = argv
    _apply_limits(limits)
    channel = _result_channel()
    try:
        from worldsmith.audit.redteam import CHILD_PROCESS, RedTeamConfig, audit_env

        cfg = RedTeamConfig.model_validate_json(config)
        classes = _environment_classes(path)
        if not classes:
            raise LookupError("defines no Environment subclass with a name")
        reports = [audit_env(cls(), cfg, isolation=CHILD_PROCESS).to_json() for cls in classes]
        result = {"reports": reports}
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        result = {"error": f"{type(exc).__name__}: {text}" if text else type(exc).__name__}
    channel.write(json.dumps(result) + "\n")
    channel.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
