"""What a training checkpoint holds and how a resumed run takes it back (exact resume).

Payload (``kind == "train"``): ``step``, ``config``, ``num_classes``, ``class_names``, ``model`` (student
segmentor), ``nerf_head`` (when the method trains the head), ``teacher`` (the EMA teacher's segmentor, when
the method keeps one) and ``teacher_head``, ``appearance_net`` (the frozen net of ``ssl.camera.appearance``,
when enabled), ``optimizer``, ``scheduler``, ``rng`` (torch CPU / CUDA and the step generator). Both data
streams are pure functions of (seed, step), so nothing else is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nerfseg.config import Config, dataclass_to_dict
from nerfseg.engine import checkpoint as ckpt
from nerfseg.errors import ConfigError, DataError

HARMLESS_KEYS = frozenset({
    "data.root",
    "data.num_workers",
    "data.val_batch_size",
    "data.val_max_scans",
    "data.on_bad_scan",  # a run stopped by a bad scan resumes with skip: the steps done read no bad scan
    "masks.cache_dir",
    "masks.compute_missing",
    "train.progress",
    "train.checkpoint_every",
    "train.keep_step_checkpoints",
    "train.log_every",
    "train.val_every",
    "train.num_threads",
    "train.device",
})
"""Config keys a resumed run may change: they do not change the math."""


@dataclass
class RunState:
    """The live objects a checkpoint captures."""

    model: torch.nn.Module
    head: torch.nn.Module | None
    teacher: Any  # nerfseg.engine.teacher.MeanTeacher | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    appearance: torch.nn.Module | None = None

    def payload(self, step: int, cfg: Config, class_names: list[str]) -> dict[str, Any]:
        """The checkpoint dict after ``step`` optimiser steps."""
        payload: dict[str, Any] = {
            "kind": ckpt.TRAIN_KIND,
            "step": step,
            "config": dataclass_to_dict(cfg),
            "num_classes": len(class_names),
            "class_names": list(class_names),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": ckpt.capture_rng_state({"nerf": self.generator}),
        }
        if self.head is not None:
            payload["nerf_head"] = self.head.state_dict()
        if self.teacher is not None:
            payload["teacher"] = self.teacher["model"].state_dict()
            if self.head is not None:
                payload["teacher_head"] = self.teacher["head"].state_dict()
        if self.appearance is not None:
            payload["appearance_net"] = self.appearance.state_dict()
        return payload

    def restore(self, state: dict[str, Any], path: Path) -> int:
        """Load a checkpoint dict into the live objects; returns its step."""
        self.model.load_state_dict(state["model"])
        if self.head is not None:
            if "nerf_head" not in state:
                raise DataError(path, "holds no NeRF head, but the run's method trains one")
            self.head.load_state_dict(state["nerf_head"])
        if self.teacher is not None:
            if "teacher" not in state:
                raise DataError(path, "holds no EMA teacher, but the run's method keeps one")
            self.teacher["model"].load_state_dict(state["teacher"])
            if self.head is not None:
                self.teacher["head"].load_state_dict(state["teacher_head"])
        if self.appearance is not None:
            if "appearance_net" not in state:
                raise DataError(path, "holds no appearance net, but ssl.camera.appearance is enabled")
            self.appearance.load_state_dict(state["appearance_net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ckpt.restore_rng_state(state["rng"], {"nerf": self.generator})
        return int(state["step"])


def check_resume_config(stored: dict, cfg: Config, run_dir: Path) -> None:
    """The config of a resumed run must equal the stored one except for :data:`HARMLESS_KEYS`."""

    def flat(d: dict, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            key = f"{prefix}{k}"
            out.update(flat(v, key + ".") if isinstance(v, dict) else {key: v})
        return out

    old, new = flat(stored), flat(dataclass_to_dict(cfg))
    changed = sorted(
        k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in HARMLESS_KEYS
    )
    if changed:
        raise ConfigError(
            f"{run_dir / 'config.yaml'}: cannot resume with a different config; "
            f"changed keys: {', '.join(changed)}"
        )
