"""Layered service configuration: defaults < YAML file < LIPSTREAM_* env vars < CLI flags.

Every service config is a pydantic model with a default for every field, so an
empty file (or none) is a valid config. A bad value anywhere fails at start-up
with the field's dotted name and the reason (`ConfigError`, exit code 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

CONFIG_EXIT_CODE = 2

Model = TypeVar("Model", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConfigError(Exception):
    """A config value that cannot be used, named by its dotted field path."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"config error: {field}: {reason}")
        self.field = field
        self.reason = reason


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(dotted, f"'{part}' is not a section")
    node[leaf] = value


def env_overrides(prefix: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """LIPSTREAM_EDGE_SESSIONS__MAX_SESSIONS=8 -> {"sessions": {"max_sessions": 8}}.

    Values are parsed as YAML scalars so numbers and booleans keep their type.
    """
    environ = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(prefix):
            continue
        dotted = name[len(prefix) :].lower().replace("__", ".")
        if dotted:
            _set_path(tree, dotted, yaml.safe_load(raw) if raw != "" else "")
    return tree


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read config file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "the top level must be a mapping")
    return data


def load_config(
    model: type[Model],
    path: Path | None,
    env_prefix: str,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Model:
    """Build a validated config; `overrides` maps dotted field names to CLI values."""
    data = read_yaml(path) if path is not None else {}
    data = _deep_merge(data, env_overrides(env_prefix, environ))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(data, dotted, value)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "<root>"
        raise ConfigError(field, first["msg"]) from exc
