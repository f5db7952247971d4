"""Typed dataclass configs from plain mappings: the loader shared by the run configuration
(:mod:`nerfseg.config`) and the simulator's (:mod:`nerfseg.sim.config`). Light: no torch.

Every key must name a dataclass field (an unknown key is a ConfigError naming the dotted key and the
source); values are checked against / coerced to the field's type (``int``, ``float``, ``bool``, ``str``,
``Path``, enums, ``Literal``, ``tuple[...]`` / ``list[...]``, ``dict``, ``X | None``, nested dataclasses).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from nerfseg.errors import ConfigError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check / convert a YAML value to the annotated type ``tp``; ConfigError naming ``key`` if impossible."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {key} must be {expected}, got {value!r}")

    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise fail(_type_name(tp))
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as err:
                errors.append(err)
        raise fail(" or ".join(_type_name(a) for a in args))
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise fail(f"one of {typing.get_args(tp)}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise fail(f"a list ({_type_name(tp)})")
        args = typing.get_args(tp)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise fail(f"a list of {len(args)} items")
            items = [
                _coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args, strict=True))
            ]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise fail("a mapping")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise fail(f"a mapping of {tp.__name__} fields")
        return dataclass_from_dict(tp, value, source, prefix=key)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        for member in tp:
            if value == member.value or value == member.name:
                return member
        raise fail(f"one of {[m.value for m in tp]}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail("a string")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise fail("a path")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise fail(_type_name(tp))


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def dataclass_from_dict(cls: type, data: dict, source: str = "config", prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a plain mapping; unknown keys and wrong types -> ConfigError naming the
    dotted key and ``source``; absent keys keep their defaults."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or 'top level'} must be a mapping, got {data!r}")
    types_by_name = _field_types(cls)
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in types_by_name:
            known = ", ".join(f"{prefix}.{n}" if prefix else n for n in types_by_name)
            raise ConfigError(f"{source}: unknown key '{key}' (known keys here: {known})")
        kwargs[name] = _coerce(value, types_by_name[name], key, source)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: invalid {prefix or cls.__name__}: {err}") from err


def dataclass_to_dict(obj: Any) -> Any:
    """Plain-python (YAML / weights_only safe) form of a dataclass tree: enums -> values, tuples -> lists,
    paths -> strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dataclass_to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [dataclass_to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): dataclass_to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def apply_override(cfg: Any, assignment: str, source: str = "--set") -> None:
    """Apply one ``section.key=value`` override in place. The value is parsed as YAML (``0.002``, ``true``,
    ``[1, 2]``) except for string fields, which take the text as is. Unknown keys -> ConfigError."""
    if "=" not in assignment:
        raise ConfigError(f"{source}: '{assignment}' is not of the form key=value")
    dotted, raw = assignment.split("=", 1)
    dotted = dotted.strip()
    parts = dotted.split(".")
    target = cfg
    for depth, name in enumerate(parts):
        if not dataclasses.is_dataclass(target):
            raise ConfigError(
                f"{source}: unknown key '{dotted}' ('{'.'.join(parts[:depth])}' has no sub-keys)"
            )
        types_by_name = _field_types(type(target))
        if name not in types_by_name:
            where = ".".join(parts[:depth]) or "top level"
            raise ConfigError(
                f"{source}: unknown key '{dotted}' (known keys under {where}: {', '.join(types_by_name)})"
            )
        if depth < len(parts) - 1:
            target = getattr(target, name)
            continue
        tp = types_by_name[name]
        if tp is str or (
            typing.get_origin(tp) in (typing.Union, types.UnionType)
            and str in typing.get_args(tp)
            and raw.strip() not in ("null", "~")
        ):
            value: Any = raw
        else:
            try:
                value = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError as err:
                raise ConfigError(f"{source}: cannot parse value of '{dotted}': {raw!r} ({err})") from err
        setattr(target, name, _coerce(value, tp, dotted, source))
