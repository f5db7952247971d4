"""Bird's-eye-view PNG of a LiDAR scan: points splatted onto a top-down grid (x up the image, y to the
left), coloured by class or by height, nearest-to-the-sky point on top."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def height_colors(z: np.ndarray, low: float = -2.0, high: float = 3.0) -> np.ndarray:
    """(N, 3) uint8 colours for heights ``z`` (N,) metres: blue (low) through green to red (high)."""
    s = np.clip((np.asarray(z, np.float64) - low) / (high - low), 0.0, 1.0)
    rgb = np.stack([np.clip(2 * s - 1, 0, 1), 1 - np.abs(2 * s - 1), np.clip(1 - 2 * s, 0, 1)], 1)
    return (rgb * 255).astype(np.uint8)


def bev_image(
    points: np.ndarray,
    colors: np.ndarray,
    extent_m: float = 50.0,
    resolution_m: float = 0.1,
    background: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """Top-down image of ``points`` (N, >=3) metres in the sensor frame with ``colors`` (N, 3) uint8.

    Covers x, y in [-extent_m, extent_m] at ``resolution_m`` metres per pixel; returns (S, S, 3) uint8 with
    S = 2 * extent_m / resolution_m, +x (forward) pointing up and +y (left) pointing left. Where several
    points fall in a pixel the highest one wins.
    """
    size = int(round(2 * extent_m / resolution_m))
    image = np.empty((size, size, 3), np.uint8)
    image[:] = background
    xyz = np.asarray(points, np.float64)[:, :3]
    row = np.floor((extent_m - xyz[:, 0]) / resolution_m).astype(np.int64)
    col = np.floor((extent_m - xyz[:, 1]) / resolution_m).astype(np.int64)
    inside = (row >= 0) & (row < size) & (col >= 0) & (col < size)
    order = np.argsort(xyz[inside, 2], kind="stable")  # low first: later (higher) writes win
    r, c = row[inside][order], col[inside][order]
    image[r, c] = np.asarray(colors)[inside][order]
    return image


def raw_id_colors(raw_ids: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 SemanticKITTI colours of raw semantic ids (through the learning map; grey = ignored)."""
    from nerfseg.data.labelmaps import SEMANTICKITTI

    train = SEMANTICKITTI.to_train(np.asarray(raw_ids).astype(np.int64) & 0xFFFF)
    palette = np.concatenate([SEMANTICKITTI.colors, np.full((1, 3), 90, np.uint8)])
    return palette[np.where(train < SEMANTICKITTI.num_classes, train, SEMANTICKITTI.num_classes)]


def write_bev_png(
    path: str | Path,
    points: np.ndarray,
    colors: np.ndarray,
    extent_m: float = 50.0,
    resolution_m: float = 0.1,
) -> Path:
    """Write ``bev_image(points, colors, ...)`` to ``path`` as PNG (atomically)."""
    from nerfseg.io_utils import atomic_write_bytes, png_bytes

    return atomic_write_bytes(path, png_bytes(bev_image(points, colors, extent_m, resolution_m)))
