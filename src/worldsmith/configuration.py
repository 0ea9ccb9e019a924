"""Typed configuration: YAML in, `key.sub=value` overrides, one-line errors naming the key.

Every config model forbids unknown keys, so a typo is caught before any work starts.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A bad config file, key or value; the message is one line naming the key."""


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> (["train", "lr"], 0.0003); values are read as YAML scalars."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not key=value (e.g. train.lr=3e-4)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set each dotted key in a nested dict (creating sections as needed)."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(path)}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return data


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "<root>"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{key}: {err['msg'].removeprefix('Value error, ')}{more}"


def _non_finite(data: Any, path: tuple[str, ...] = ()) -> tuple[str, float] | None:
    """The first float in ``data`` (nested dicts and lists) that is NaN or infinite, with its key."""
    if isinstance(data, float) and not math.isfinite(data):
        return ".".join(path) or "<root>", data
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        found = _non_finite(value, (*path, str(key)))
        if found:
            return found
    return None


def build(model: type[M], data: dict) -> M:
    """Validate ``data`` as ``model``; every problem is one ``ConfigError`` line naming the key.
    No setting takes NaN or an infinity: they would pass range checks and fail mid-run."""
    found = _non_finite(data)
    if found:
        raise ConfigError(f"{found[0]}: must be a finite number, got {found[1]}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def load(model: type[M], path: str | pathlib.Path | None, overrides: list[str] = ()) -> M:
    """Read a YAML file (or start from defaults when ``path`` is None), apply overrides, validate."""
    data: dict = {}
    if path is not None:
        path = pathlib.Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}: not valid YAML{where}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return build(model, apply_overrides(data, list(overrides)))


def dump(config: BaseModel, path: str | pathlib.Path) -> None:
    """Write the resolved config, every field included, as YAML."""
    pathlib.Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def flatten(data, prefix: str = "") -> dict:
    """A nested mapping as ``{"dotted.key": value}`` (the keys ``key.sub=value`` overrides use)."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
