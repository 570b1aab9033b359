"""Typed, frozen dataclass configs: YAML round trips and type-checked `key=value` overrides.

Every config in musiclord is a frozen dataclass whose fields have plain types (bool, int,
float, str, tuples of those, Optional of those) or are nested config dataclasses. Overrides use
dotted keys for nested fields (`loss.w_rho=0.5`) and are checked against the field's type;
unknown keys are an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from musiclord.errors import ConfigError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as nested plain dicts/lists (tuples become lists), ready for YAML or JSON."""
    out = dataclasses.asdict(cfg)
    return json.loads(json.dumps(out))


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert `value` (from YAML or a `key=value` string) to type `tp`, or raise ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: cannot read {value!r} as {tp}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.strip("()[] ").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_tp = args[0] if args else str
        items = [_coerce(v.strip() if isinstance(v, str) else v, item_tp, key) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported config type {tp}")


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build config `cls` from a (possibly partial) dict; missing fields keep their defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping")
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key {prefix}{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def apply_overrides(cfg: T, overrides: list[str] | tuple[str, ...]) -> T:
    """Return a copy of `cfg` with `key=value` overrides applied (dotted keys for nested configs).

    Raises:
        ConfigError: malformed override, unknown key, or a value of the wrong type.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        cfg = _set(cfg, key.strip().split("."), value.strip(), key.strip())
    return cfg


def _set(cfg: Any, path: list[str], value: str, full: str) -> Any:
    names = {f.name for f in dataclasses.fields(cfg)}
    head = path[0]
    if head not in names:
        raise ConfigError(f"unknown config key {full!r} (known here: {', '.join(sorted(names))})")
    tp = _field_types(type(cfg))[head]
    if len(path) > 1:
        sub = getattr(cfg, head)
        if not dataclasses.is_dataclass(sub):
            raise ConfigError(f"config key {full!r}: {head} has no sub-keys")
        return dataclasses.replace(cfg, **{head: _set(sub, path[1:], value, full)})
    parsed: Any = value
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"config key {full!r} is a section; set one of its keys")
    return dataclasses.replace(cfg, **{head: _coerce(parsed, tp, full)})


def save_config(cfg: Any, path: str | Path) -> None:
    """Write a config as YAML (safe_dump), with its class name as a comment."""
    path = Path(path)
    text = f"# {type(cfg).__name__}\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a config of class `cls` from a YAML (or JSON) file with a safe loader."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e.__class__.__name__})") from None
    return from_dict(cls, data)
