"""Typed run configuration: nested dataclasses loaded from YAML presets (``configs/``) with command-line
overrides ``--set section.key=value``.

Rules: YAML is read with ``yaml.safe_load``; every key must name a dataclass field (an unknown key is a
ConfigError naming the key and the file); values are checked against / coerced to the field's type
(``int``, ``float``, ``bool``, ``str``, enums, ``tuple[...]`` / ``list[...]``, ``X | None``, nested
dataclasses). Missing keys keep their defaults. The resolved config is written back to YAML by
:func:`config_to_yaml` so a run can be reproduced from its ``config.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nerfseg.data.augment import AugmentConfig
from nerfseg.data.bad_scans import BadScanPolicy
from nerfseg.errors import ConfigError
from nerfseg.masks.config import MasksConfig
from nerfseg.models.nerf.head import NerfConfig
from nerfseg.models.segmentor import SegmentorConfig
from nerfseg.ssl.config import Method, SslConfig
from nerfseg.typed_config import apply_override, dataclass_from_dict, dataclass_to_dict

DATASET_CHOICES = ("semantickitti", "scribblekitti", "nuscenes")


@dataclass
class LossConfig:
    """Weights of the supervised loss terms: ``ce_weight * CE + lovasz_weight * Lovász``.

    Attributes:
        label_smoothing: cross-entropy label smoothing in [0, 1).
    """

    ce_weight: float = 1.0
    lovasz_weight: float = 1.0
    label_smoothing: float = 0.0


@dataclass
class DataConfig:
    """Which data a run reads and how it is batched.

    Attributes:
        dataset: one of ``semantickitti``, ``scribblekitti``, ``nuscenes``.
        root: dataset root folder (``sequences/`` for the KITTI layouts, ``v1.0-*/`` for nuScenes).
        version: nuScenes table version (``v1.0-trainval``, ``v1.0-mini``, ``v1.0-test``), or ``auto``: the
            one ``v1.0-*`` folder under ``root`` (several are an error); ignored for KITTI layouts.
        train_split / val_split: split names of the reader (``val_split: ""`` disables validation).
        labeled_split: a split file (one sample id a line: ``SS/FFFFFF`` for the KITTI layouts, LiDAR
            sample_data tokens for nuScenes; ``nerfseg make-splits`` writes them, ``splits/`` holds the
            official SemanticKITTI ones) naming the labeled training scans; every other training scan is
            unlabeled. Empty = use ``label_fraction``.
        label_fraction: fraction of training scans whose labels are used, in (0, 1], when no
            ``labeled_split`` is given; the subset is chosen deterministically by ``label_seed``.
        label_seed: seed of the labeled subset (kept apart from ``train.seed`` so runs with different
            training seeds share one subset).
        batch_size: scans per training step.
        num_workers: DataLoader worker processes (0 = load in the main process).
        val_batch_size: scans per validation batch.
        val_max_scans: validate on at most this many evenly spaced val scans (0 = all).
        on_bad_scan: an unreadable training scan (truncated ``.bin``, short ``.label``, unreadable image or
            mask): ``error`` stops the run naming the file; ``skip`` names it once on stderr and in
            ``RUN/skipped.jsonl`` and trains on with another scan of the same stream in its place.
    """

    dataset: str = "semantickitti"
    root: str = "data/sim"
    version: str = "auto"
    train_split: str = "train"
    val_split: str = "val"
    labeled_split: str = ""
    label_fraction: float = 1.0
    label_seed: int = 0
    batch_size: int = 2
    num_workers: int = 2
    val_batch_size: int = 2
    val_max_scans: int = 0
    on_bad_scan: BadScanPolicy = BadScanPolicy.ERROR


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
    """Everything a training run needs. YAML: ``method`` and the sections data, model, augment, loss, ssl,
    masks, train.

    Attributes:
        method: the training recipe (:class:`nerfseg.ssl.config.Method`): supervised, mean-teacher,
            lasermix, projection, nerf, nerf+mean-teacher, nerf+lasermix or geometry.
    """

    method: Method = Method.SUPERVISED
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    ssl: SslConfig = field(default_factory=SslConfig)
    masks: MasksConfig = field(default_factory=MasksConfig)
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
            (self.ssl.camera.points.weight >= 0, "ssl.camera.points.weight", "must be >= 0"),
            (
                self.ssl.camera.points.depth_tolerance >= 0,
                "ssl.camera.points.depth_tolerance",
                "must be >= 0 metres",
            ),
            (
                0.0 <= self.ssl.camera.points.min_teacher_confidence <= 1.0,
                "ssl.camera.points.min_teacher_confidence",
                "must be in [0, 1]",
            ),
            (
                0.0 <= self.ssl.camera.veto.min_confidence <= 1.0,
                "ssl.camera.veto.min_confidence",
                "must be in [0, 1]",
            ),
            (
                self.ssl.camera.veto.depth_tolerance >= 0,
                "ssl.camera.veto.depth_tolerance",
                "must be >= 0 metres",
            ),
            (
                not self.ssl.camera.appearance.enabled or self.ssl.camera.stride % 4 == 0,
                "ssl.camera.stride",
                "must be a multiple of 4 with ssl.camera.appearance.enabled (the appearance net labels 4 x 4 "
                "pixel blocks)",
            ),
            (
                all(n > 0 and n % 4 == 0 for n in (self.ssl.camera.appearance.crop_height,
                                                    self.ssl.camera.appearance.crop_width)),
                "ssl.camera.appearance.crop_height / crop_width",
                "must be positive multiples of 4",
            ),
            (
                min(self.ssl.camera.appearance.steps, self.ssl.camera.appearance.views_per_step,
                    self.ssl.camera.appearance.max_views, self.ssl.camera.appearance.width) >= 1,
                "ssl.camera.appearance.steps / views_per_step / max_views / width",
                "must be >= 1",
            ),
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
