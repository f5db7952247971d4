"""Per-pixel ground truth of a camera image, where a dataset has it (the built-in simulator writes it for both
layouts: SemanticKITTI ``semantic_2/`` / ``depth_2/``, nuScenes ``samples_semantic/`` / ``samples_depth/``).

Both files are single-channel 16-bit PNGs: raw semantic ids of the dataset (SemanticKITTI raw ids,
nuScenes-lidarseg raw class indices; 0 = nothing hit, ignored by both label maps) and depth along the camera
z axis in millimetres (0 = no hit). The readers below turn them into train ids and metres.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfseg.data.labelmaps import LabelMap
from nerfseg.data.sample import CameraFrame
from nerfseg.errors import DataError


def read_uint16_png(path: str | Path) -> np.ndarray:
    """(H, W) int64 values of a single-channel 16-bit (or 8-bit) PNG; DataError naming the file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.mode not in ("I;16", "I;16B", "I;16L", "I", "L"):
                raise DataError(path, f"expected a single-channel 16-bit PNG, got mode {image.mode}")
            return np.asarray(image).astype(np.int64)
    except FileNotFoundError:
        raise DataError(path, "ground-truth image not found") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(path, f"unreadable ground-truth image ({err})") from None


def read_semantic_train(camera: CameraFrame, label_map: LabelMap) -> np.ndarray | None:
    """(H, W) int64 train ids (0..C-1, IGNORE_INDEX) of ``camera``'s ground-truth semantic image, mapped with
    the dataset's ``label_map`` (e.g. ``DatasetKind.label_map``); None when the camera has none."""
    if camera.semantic_path is None:
        return None
    return label_map.to_train(read_uint16_png(camera.semantic_path))


def read_depth_m(camera: CameraFrame) -> np.ndarray | None:
    """(H, W) float32 ground-truth depth along the camera z axis in metres (0 = no hit) of ``camera``; None
    when the camera has none."""
    if camera.depth_path is None:
        return None
    return (read_uint16_png(camera.depth_path) / 1000.0).astype(np.float32)
