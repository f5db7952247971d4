"""Checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``.

Two kinds, both plain dicts of tensors, state dicts and plain python values (config as a dict):

* training checkpoint (``kind == "train"``): ``step``, ``config``, ``num_classes``, ``class_names``,
  ``model`` (segmentor state dict), ``nerf_head`` (state dict, only when the NeRF head is enabled),
  ``optimizer``, ``scheduler``, ``rng`` (torch CPU / CUDA / extra generator states). Resuming restores all.
* inference export (``kind == "model"``): ``config``, ``num_classes``, ``class_names``, ``model`` only —
  no NeRF weights, no optimiser; what ``nerfseg predict`` needs.

Both kinds load into a segmentor with :func:`build_segmentor`.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from nerfseg.errors import DataError
from nerfseg.io_utils import atomic_torch_save

FORMAT = "nerfseg-checkpoint-v1"
TRAIN_KIND = "train"
MODEL_KIND = "model"
_REQUIRED = ("format", "kind", "config", "num_classes", "class_names", "model")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write a checkpoint dict (``format`` is filled in); the file is complete or absent."""
    payload = {"format": FORMAT, **payload}
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a nerfseg checkpoint with ``weights_only=True``.

    Raises DataError naming the file when it is missing, truncated / not a torch file, holds objects that
    are not allowed under weights_only, or is not a nerfseg checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(path, f"not a readable checkpoint ({first_line})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(path, f"not a nerfseg checkpoint (expected format '{FORMAT}')")
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise DataError(path, f"checkpoint lacks entries {missing}")
    if payload["kind"] == TRAIN_KIND:
        lacking = [k for k in ("step", "optimizer", "scheduler", "rng") if k not in payload]
        if lacking:
            raise DataError(path, f"training checkpoint lacks entries {lacking}")
    return payload


def inference_payload(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The inference export of a (training) checkpoint: segmentor weights, config and classes only."""
    return {
        "kind": MODEL_KIND,
        "config": checkpoint["config"],
        "num_classes": checkpoint["num_classes"],
        "class_names": list(checkpoint["class_names"]),
        "model": {k: v.detach().clone() for k, v in checkpoint["model"].items()},
        "step": checkpoint.get("step", 0),
    }


def export_inference(checkpoint_path: str | Path, out_path: str | Path) -> Path:
    """Write the inference export (no NeRF head, no optimiser) of ``checkpoint_path`` to ``out_path``."""
    return save_checkpoint(out_path, inference_payload(load_checkpoint(checkpoint_path)))


def build_segmentor(
    checkpoint: dict[str, Any], path: str | Path = "checkpoint"
) -> tuple[torch.nn.Module, Any]:
    """(segmentor in eval mode with the checkpoint's weights, its Config) from a loaded checkpoint.

    Raises DataError naming ``path`` when the stored config or weights do not fit the model.
    """
    from nerfseg.config import config_from_dict
    from nerfseg.errors import ConfigError
    from nerfseg.models.segmentor import LidarSegmentor

    try:
        cfg = config_from_dict(checkpoint["config"], source=str(path))
    except ConfigError as err:
        raise DataError(path, f"stored config is invalid: {err}") from err
    model = LidarSegmentor(cfg.model.segmentor, int(checkpoint["num_classes"]))
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as err:
        raise DataError(
            path, f"weights do not fit the stored model config: {str(err).splitlines()[0]}"
        ) from err
    model.eval()
    return model, cfg


def capture_rng_state(extra: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Tensors of every RNG the training loop draws from: torch CPU, each CUDA device, named generators."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    for name, generator in (extra or {}).items():
        state[f"gen/{name}"] = generator.get_state()
    return state


def restore_rng_state(state: dict[str, Any], extra: dict[str, torch.Generator] | None = None) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in (extra or {}).items():
        key = f"gen/{name}"
        if key in state:
            generator.set_state(state[key])
