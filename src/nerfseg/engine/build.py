"""Building a run's parts from its config: device, readers, segmentor / NeRF head, optimiser."""

from __future__ import annotations

from typing import Any

import torch

from nerfseg.config import Config
from nerfseg.data.datasets import DatasetKind, open_dataset
from nerfseg.errors import ConfigError, DataError
from nerfseg.ssl.config import Method
from nerfseg.ssl.recipe import recipe_for


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU -> ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def open_split(cfg: Config, split: str, load_images: bool = False):
    """The reader of ``split`` for ``cfg.data`` (nuScenes gets ``data.version``). The training split of a
    method that reads camera images must have them on every scan (DataError naming the sequences without)."""
    options: dict[str, Any] = {}
    if cfg.data.dataset == DatasetKind.NUSCENES.value:
        options["version"] = cfg.data.version
    reader = open_dataset(cfg.data.dataset, cfg.data.root, split, load_images=load_images, **options)
    missing = reader.missing_cameras() if recipe_for(cfg.method).uses_masks else []
    if split == cfg.data.train_split and missing:
        lidar_only = ", ".join(m.value for m in Method if not recipe_for(m).uses_masks)
        raise DataError(
            cfg.data.root,
            f"method '{cfg.method.value}' trains on camera images, but these training scans have none: "
            f"{'; '.join(missing)}; add calib.txt and image_2/, or train a LiDAR-only method ({lidar_only})",
        )
    return reader


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when enabled; a no-op context on the CPU."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda"
    )


def build_model(cfg: Config, num_classes: int) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """(segmentor, NeRF head or None) built from the config (weights drawn from the global torch RNG). The
    head exists when the method trains it (``geometry`` and the ``nerf`` methods)."""
    from nerfseg.models.segmentor import LidarSegmentor

    model = LidarSegmentor(cfg.model.segmentor, num_classes)
    head = build_head(cfg, model, num_classes) if recipe_for(cfg.method).uses_head else None
    return model, head


def build_head(cfg: Config, model: torch.nn.Module, num_classes: int) -> torch.nn.Module:
    """The NeRF head of ``cfg`` on ``model``'s voxel features, reading its sample semantics from ``model``'s
    point classifier when ``model.nerf.semantics_from_point_head`` (every user of a trained head must build
    it here: a head built alone would render its own, then untrained, semantic branch)."""
    from nerfseg.models.nerf.head import NerfHead

    head = NerfHead(cfg.model.nerf, voxel_feature_dim(model), num_classes)
    if cfg.model.nerf.semantics_from_point_head:
        head.use_point_classifier(model.head.classify_features)
    return head


def voxel_feature_dim(model: torch.nn.Module) -> int:
    """Channels of the segmentor's stride-1 voxel features (the NeRF head's input)."""
    for name in ("voxel_feature_channels", "feature_dim", "out_channels"):
        value = getattr(model, name, None)
        if isinstance(value, int):
            return value
    backbone = getattr(model, "backbone", None)
    value = getattr(backbone, "out_channels", None)
    if isinstance(value, int):
        return value
    raise AttributeError("cannot tell the segmentor's voxel feature width")


def build_optimizer(
    cfg: Config, params
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with a one-cycle schedule over ``train.max_steps`` steps.

    The warm-up is ``train.pct_start * max_steps`` rounded to whole steps (at least 1; torch's OneCycleLR
    divides by zero when the warm-up ends exactly on step 0 or on the last step).
    """
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    total = cfg.train.max_steps
    if total >= 3:
        warmup = min(max(round(cfg.train.pct_start * total), 1), total - 2)
        pct_start = (warmup + 0.5) / total
    else:
        pct_start = 0.25
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=cfg.train.lr,
        total_steps=total,
        pct_start=pct_start,
        div_factor=cfg.train.div_factor,
        final_div_factor=cfg.train.final_div_factor,
    )
    return optimizer, scheduler
