"""Supervised training (optionally with the NeRF head's LiDAR-ray geometry loss), exactly resumable.

Layout of a run folder::

    RUN_DIR/config.yaml              resolved config (reload with `nerfseg train RUN_DIR/config.yaml`)
    RUN_DIR/metrics.jsonl            one JSON line per log step / validation
    RUN_DIR/tensorboard/             TensorBoard events
    RUN_DIR/checkpoints/last.pt      training checkpoint (model, NeRF head, optimiser, scheduler, RNG)
    RUN_DIR/checkpoints/step_XXXXXXX.pt   copies, with train.keep_step_checkpoints
    RUN_DIR/model.pt                 inference export at the end of the run (segmentor only)

Exact resume: the checkpoint after step s holds the state after s optimiser steps, every RNG the loop
draws from, and s itself; the data stream is a pure function of (seed, step) (see
:mod:`nerfseg.data.loader`) and augmentation of (seed, epoch, index). On the CPU with
``train.deterministic`` a run killed and resumed ends with bit-identical weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerfseg.config import Config, config_to_yaml, dataclass_to_dict
from nerfseg.data.datasets import DatasetKind, open_dataset
from nerfseg.data.loader import TrainingDataset, labeled_subset, make_eval_loader, make_train_loader
from nerfseg.engine import checkpoint as ckpt
from nerfseg.engine.logging import RunLogger
from nerfseg.engine.losses import SegmentationLoss
from nerfseg.engine.precision import inference_uses_bf16
from nerfseg.errors import ConfigError, DataError
from nerfseg.io_utils import atomic_write_text

LAST = "last.pt"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU -> ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def open_split(cfg: Config, split: str):
    """The reader of ``split`` for ``cfg.data`` (nuScenes gets ``data.version``)."""
    options: dict[str, Any] = {}
    if cfg.data.dataset == DatasetKind.NUSCENES.value:
        options["version"] = cfg.data.version
    return open_dataset(cfg.data.dataset, cfg.data.root, split, load_images=False, **options)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when enabled; a no-op context on the CPU."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda"
    )


def build_model(cfg: Config, num_classes: int) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """(segmentor, NeRF head or None) built from the config (weights drawn from the global torch RNG)."""
    from nerfseg.models.segmentor import LidarSegmentor

    model = LidarSegmentor(cfg.model.segmentor, num_classes)
    head = None
    if cfg.model.nerf.enabled:
        from nerfseg.models.nerf.head import NerfHead

        head = NerfHead(cfg.model.nerf, voxel_feature_dim(model), num_classes)
    return model, head


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


@torch.no_grad()
def predict_batch(model: torch.nn.Module, batch, device: torch.device, bf16: bool) -> torch.Tensor:
    """(N,) int64 predicted train ids (on the CPU) for a PointBatch; ``bf16``: under bf16 autocast (any
    device)."""
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(batch.to(device))
    return out.point_logits.float().argmax(dim=1).cpu()


def validate(model: torch.nn.Module, source, cfg: Config, device: torch.device, progress: bool = False):
    """Scores (nerfseg.engine.metrics.Scores) of ``model`` on a labeled reader, by the official rule."""
    from tqdm import tqdm

    from nerfseg.engine.metrics import ConfusionMatrix, nuscenes_scores, semantickitti_scores

    label_map = DatasetKind(cfg.data.dataset).label_map
    cm = ConfusionMatrix(label_map.num_classes)
    was_training = model.training
    model.eval()
    loader = make_eval_loader(source, cfg.data.val_batch_size, cfg.data.num_workers, cfg.data.val_max_scans)
    bf16 = inference_uses_bf16("auto" if cfg.train.bf16 else "float32", device)
    for batch in tqdm(loader, desc="validate", leave=False, disable=not progress):
        if batch.labels is None:
            continue
        cm.update(predict_batch(model, batch, device, bf16).numpy(), batch.labels.numpy())
    model.train(was_training)
    rule = nuscenes_scores if cfg.data.dataset == DatasetKind.NUSCENES.value else semantickitti_scores
    return rule(cm, label_map.class_names)


@dataclass
class TrainResult:
    """What a finished run reports: the final step, the last training losses and validation scores."""

    step: int
    train: dict[str, float]
    val_miou: float | None
    seconds: float
    run_dir: Path


def _train_step(
    model, head, loss_fn, batch, optimizer, scheduler, cfg, device, generator
) -> dict[str, float]:
    batch = batch.to(device)
    with autocast(device, cfg.train.bf16):
        out = model(batch)
        if batch.labels is not None:
            losses = loss_fn(out.point_logits, batch.labels)
        else:
            zero = out.point_logits.float().sum() * 0.0
            losses = {"ce": zero, "lovasz": zero, "total": zero}
        total = losses["total"]
        if head is not None:
            from nerfseg.models.nerf.losses import lidar_ray_losses

            nerf = lidar_ray_losses(head, out, batch, generator)
            total = total + nerf["total"]
            losses.update({f"nerf_{k}": v for k, v in nerf.items()})
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(
        params, cfg.train.grad_clip if cfg.train.grad_clip > 0 else math.inf
    )
    optimizer.step()
    scheduler.step()
    result = {("supervised" if k == "total" else k): float(v.detach()) for k, v in losses.items()}
    result["loss"] = float(total.detach())
    result["grad_norm"] = float(grad_norm)
    return result


def _check_resume_config(stored: dict, cfg: Config, run_dir: Path) -> None:
    """The config of a resumed run must equal the stored one except for keys that do not change the math."""
    harmless = {
        "data.root",
        "data.num_workers",
        "data.val_batch_size",
        "data.val_max_scans",
        "train.progress",
        "train.checkpoint_every",
        "train.keep_step_checkpoints",
        "train.log_every",
        "train.val_every",
        "train.num_threads",
        "train.device",
    }

    def flat(d: dict, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            key = f"{prefix}{k}"
            out.update(flat(v, key + ".") if isinstance(v, dict) else {key: v})
        return out

    old, new = flat(stored), flat(dataclass_to_dict(cfg))
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in harmless)
    if changed:
        raise ConfigError(
            f"{run_dir / 'config.yaml'}: cannot resume with a different config; "
            f"changed keys: {', '.join(changed)}"
        )


def train(cfg: Config, run_dir: str | Path, resume: bool = False) -> TrainResult:
    """Train the segmentor (and the NeRF head when ``model.nerf.enabled``) for ``train.max_steps`` steps.

    Args:
        cfg: the resolved config.
        run_dir: the run folder (created).
        resume: continue from ``RUN_DIR/checkpoints/last.pt`` (its stored config must match ``cfg`` except
            for harmless keys such as ``data.root`` or ``data.num_workers``).

    Returns:
        TrainResult. Raises DataError / ConfigError for unusable data or configs.
    """
    device = resolve_device(cfg.train.device)
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if cfg.train.num_threads > 0:
            torch.set_num_threads(cfg.train.num_threads)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        return _train(cfg, Path(run_dir), resume, device)
    finally:  # leave the process's global torch settings as they were (tests, notebooks)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def _train(cfg: Config, run_dir: Path, resume: bool, device: torch.device) -> TrainResult:
    from tqdm import tqdm

    started = time.perf_counter()
    ckpt_dir = run_dir / "checkpoints"
    torch.manual_seed(cfg.train.seed)

    label_map = DatasetKind(cfg.data.dataset).label_map
    train_source = open_split(cfg, cfg.data.train_split)
    indices = labeled_subset(len(train_source), cfg.data.label_fraction, cfg.data.label_seed)
    val_source = open_split(cfg, cfg.data.val_split) if cfg.data.val_split else None

    model, head = build_model(cfg, label_map.num_classes)
    model.to(device)
    params = list(model.parameters())
    if head is not None:
        head.to(device)
        params += list(head.parameters())
    optimizer, scheduler = build_optimizer(cfg, params)
    generator = torch.Generator(device=device).manual_seed(cfg.train.seed + 1)
    loss_fn = SegmentationLoss(cfg.loss)
    config_dict = dataclass_to_dict(cfg)

    step = 0
    last_path = ckpt_dir / LAST
    if resume:
        state = ckpt.load_checkpoint(last_path, map_location=device)
        if state["kind"] != ckpt.TRAIN_KIND:
            raise DataError(last_path, "not a training checkpoint (cannot resume from an inference export)")
        _check_resume_config(state["config"], cfg, run_dir)
        model.load_state_dict(state["model"])
        if head is not None:
            head.load_state_dict(state["nerf_head"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.restore_rng_state(state["rng"], {"nerf": generator})
        step = int(state["step"])
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", config_to_yaml(cfg))

    def save(step_now: int) -> None:
        payload = {
            "kind": ckpt.TRAIN_KIND,
            "step": step_now,
            "config": config_dict,
            "num_classes": label_map.num_classes,
            "class_names": list(label_map.class_names),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": ckpt.capture_rng_state({"nerf": generator}),
        }
        if head is not None:
            payload["nerf_head"] = head.state_dict()
        ckpt.save_checkpoint(last_path, payload)
        if cfg.train.keep_step_checkpoints:
            ckpt.save_checkpoint(ckpt_dir / f"step_{step_now:07d}.pt", payload)

    def run_validation(step_now: int) -> float | None:
        if val_source is None:
            return None
        scores = validate(model, val_source, cfg, device, progress=cfg.train.progress)
        logger.log(step_now, {"miou": scores.miou, "accuracy": scores.accuracy}, prefix="val")
        logger.log(
            step_now, dict(zip(scores.class_names, scores.per_class_iou.tolist(), strict=True)), "val_iou"
        )
        return float(scores.miou)

    dataset = TrainingDataset(train_source, indices, cfg.augment, cfg.train.seed)
    loader = make_train_loader(dataset, cfg.data.batch_size, cfg.train.seed, step, cfg.data.num_workers)
    logger = RunLogger(run_dir, resume_step=step if resume else None)
    if not resume:
        logger.log(0, {"train_scans": len(train_source), "labeled_scans": len(indices)}, prefix="data")
    model.train()
    if head is not None:
        head.train()
    last: dict[str, float] = {}
    val_miou = None
    window: list[dict[str, float]] = []
    tick = time.perf_counter()
    try:
        bar = tqdm(total=cfg.train.max_steps, initial=step, desc="train", disable=not cfg.train.progress)
        batches = iter(loader)
        while step < cfg.train.max_steps:
            batch = next(batches)
            lr = scheduler.get_last_lr()[0]
            metrics = _train_step(model, head, loss_fn, batch, optimizer, scheduler, cfg, device, generator)
            metrics["points"] = float(batch.points.shape[0])
            step += 1
            window.append(metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", lr=f"{lr:.2e}")
            if step % cfg.train.log_every == 0 or step == cfg.train.max_steps:
                now = time.perf_counter()
                last = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
                last["lr"] = lr
                last["sec_per_step"] = (now - tick) / len(window)
                logger.log(step, last, prefix="train")
                window, tick = [], now
            if cfg.train.val_every and step % cfg.train.val_every == 0 and step < cfg.train.max_steps:
                val_miou = run_validation(step)
            if step % cfg.train.checkpoint_every == 0 or step == cfg.train.max_steps:
                save(step)
        bar.close()
        val_miou = run_validation(step)
        ckpt.save_checkpoint(run_dir / "model.pt", ckpt.inference_payload(ckpt.load_checkpoint(last_path)))
    finally:
        logger.close()
    return TrainResult(step, last, val_miou, time.perf_counter() - started, run_dir)
