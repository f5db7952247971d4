"""Typed run configuration: nested dataclasses loaded from YAML presets (``configs/``) with command-line
overrides ``--set section.key=value``.

Rules: YAML is read with ``yaml.safe_load``; every key must name a dataclass field (an unknown key is a
ConfigError naming the key and the file); values are checked against / coerced to the field's type
(``int``, ``float``, ``bool``, ``str``, enums, ``tuple[...]`` / ``list[...]``, ``X | None``, nested
dataclasses). Missing keys keep their defaults. The resolved config is written back to YAML by
:func:`config_to_yaml` so a run can be reproduced from its ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nerfseg.data.augment import AugmentConfig
from nerfseg.engine.losses import LossConfig
from nerfseg.errors import ConfigError
from nerfseg.models.nerf.head import NerfConfig
from nerfseg.models.segmentor import SegmentorConfig

DATASET_CHOICES = ("semantickitti", "scribblekitti", "nuscenes")


@dataclass
class DataConfig:
    """Which data a run reads and how it is batched.

    Attributes:
        dataset: one of ``semantickitti``, ``scribblekitti``, ``nuscenes``.
        root: dataset root folder (``sequences/`` for the KITTI layouts, ``v1.0-*/`` for nuScenes).
        version: nuScenes table version (``v1.0-trainval``, ``v1.0-mini``); ignored for KITTI layouts.
        train_split / val_split: split names of the reader (``val_split: ""`` disables validation).
        label_fraction: fraction of training scans whose labels are used, in (0, 1]; the subset is chosen
            deterministically by ``label_seed`` (supervised training reads only those scans).
        label_seed: seed of the labeled subset (kept apart from ``train.seed`` so runs with different
            training seeds share one subset).
        batch_size: scans per training step.
        num_workers: DataLoader worker processes (0 = load in the main process).
        val_batch_size: scans per validation batch.
        val_max_scans: validate on at most this many evenly spaced val scans (0 = all).
    """

    dataset: str = "semantickitti"
    root: str = "data/sim"
    version: str = "v1.0-trainval"
    train_split: str = "train"
    val_split: str = "val"
    label_fraction: float = 1.0
    label_seed: int = 0
    batch_size: int = 2
    num_workers: int = 2
    val_batch_size: int = 2
    val_max_scans: int = 0


@dataclass
class TrainConfig:
    """Optimisation schedule, logging and checkpointing.

    Attributes:
        max_steps: number of optimiser steps of the run.
        lr: peak learning rate of the one-cycle schedule (AdamW).
        weight_decay: AdamW weight decay.
        pct_start: share of the steps spent warming up to ``lr``.
        div_factor / final_div_factor: one-cycle start lr = lr / div_factor, final = start / final_div_factor.
        grad_clip: maximum global gradient norm (0 = no clipping).
        seed: seed of weights initialisation, data order, augmentation and every other random draw.
        checkpoint_every: write ``checkpoints/last.pt`` every this many steps (and at the end).
        keep_step_checkpoints: also keep ``checkpoints/step_XXXXXXX.pt`` copies.
        log_every: write a ``metrics.jsonl`` line / TensorBoard scalars every this many steps.
        val_every: validate every this many steps (0 = only at the end of the run).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        bf16: use bf16 autocast on CUDA (ignored on the CPU).
        deterministic: ``torch.use_deterministic_algorithms`` (exact resume on the CPU).
        num_threads: torch intra-op threads (0 = leave torch's default).
        progress: show tqdm progress bars.
    """

    max_steps: int = 1000
    lr: float = 2e-3
    weight_decay: float = 1e-2
    pct_start: float = 0.1
    div_factor: float = 25.0
    final_div_factor: float = 100.0
    grad_clip: float = 10.0
    seed: int = 0
    checkpoint_every: int = 200
    keep_step_checkpoints: bool = False
    log_every: int = 10
    val_every: int = 0
    device: str = "auto"
    bf16: bool = True
    deterministic: bool = True
    num_threads: int = 0
    progress: bool = True


@dataclass
class ModelConfig:
    """The segmentor (backbone + point head) and the optional NeRF head (training only)."""

    segmentor: SegmentorConfig = field(default_factory=SegmentorConfig)
    nerf: NerfConfig = field(default_factory=NerfConfig)


@dataclass
class Config:
    """Everything a training run needs. YAML sections: data, model, augment, loss, train."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self, source: str = "config") -> Config:
        """Check cross-field constraints; raise ConfigError naming ``source`` and the key."""
        checks = [
            (
                self.data.dataset in DATASET_CHOICES,
                "data.dataset",
                f"must be one of {', '.join(DATASET_CHOICES)}",
            ),
            (0.0 < self.data.label_fraction <= 1.0, "data.label_fraction", "must be in (0, 1]"),
            (self.data.batch_size >= 1, "data.batch_size", "must be >= 1"),
            (self.data.num_workers >= 0, "data.num_workers", "must be >= 0"),
            (self.train.max_steps >= 1, "train.max_steps", "must be >= 1"),
            (self.train.checkpoint_every >= 1, "train.checkpoint_every", "must be >= 1"),
            (self.train.log_every >= 1, "train.log_every", "must be >= 1"),
            (self.train.val_every >= 0, "train.val_every", "must be >= 0"),
            (self.train.lr > 0, "train.lr", "must be > 0"),
            (0.0 < self.train.pct_start < 1.0, "train.pct_start", "must be in (0, 1)"),
            (self.train.device in ("auto", "cpu", "cuda"), "train.device", "must be auto, cpu or cuda"),
            (
                self.augment.scale_min <= self.augment.scale_max,
                "augment.scale_min",
                "must be <= augment.scale_max",
            ),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise ConfigError(f"{source}: {key} {problem}")
        try:
            self.model.segmentor.backbone()
        except ConfigError as err:
            raise ConfigError(f"{source}: model.segmentor: {err}") from err
        return self


# ----------------------------------------------------------------------------------------------------------
# Generic dataclass <-> plain data conversion


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


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def read_yaml_preset(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The plain mapping of a YAML preset. A top-level ``base: OTHER.yaml`` (relative to the file) is read
    first and this file's keys are merged over it (nested sections key by key), so a preset can be a few
    lines on top of another (e.g. a label fraction)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: 'base' presets form a cycle")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections (data, model, train, ...)")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be a path to another preset, got {base!r}")
    return _merge(read_yaml_preset(path.parent / base, (*_seen, path.resolve())), data)


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML preset (None = all defaults; ``base:`` chains resolved), apply ``--set`` overrides,
    validate.

    Raises ConfigError (missing / unparsable file, unknown key, wrong type) naming the file or ``--set``.
    """
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        data = read_yaml_preset(path)
    cfg = dataclass_from_dict(Config, data, source)
    for assignment in overrides:
        apply_override(cfg, assignment)
    return cfg.validate(source if not overrides else f"{source} (with --set overrides)")


def config_from_dict(data: dict, source: str = "config") -> Config:
    """Config from its plain form (e.g. the ``config`` entry of a checkpoint)."""
    return dataclass_from_dict(Config, data, source).validate(source)


def config_to_yaml(cfg: Any) -> str:
    """YAML text of a config (round-trips through :func:`load_config`)."""
    return yaml.safe_dump(dataclass_to_dict(cfg), sort_keys=False)
