"""Readers of the two per-sweep nuScenes files: ``*.pcd.bin`` points and ``*_lidarseg.bin`` labels.
Every failure raises :class:`nerfseg.errors.DataError` naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfseg.data.io import read_file_bytes, read_points_bin
from nerfseg.data.labelmaps import NUSCENES
from nerfseg.data.nuscenes_tables import POINT_FIELDS
from nerfseg.errors import DataError

INTENSITY_SCALE = 255.0
"""nuScenes intensities lie in [0, 255]; Sample.points column 3 holds intensity / 255."""


def read_nuscenes_points(path: str | Path) -> np.ndarray:
    """Read a ``*.pcd.bin`` sweep as (N, 5) float32: x, y, z (metres, lidar frame), intensity / 255, ring.

    Raises DataError naming the file if it is missing, not a whole number of 20-byte points, or holds
    non-finite values.
    """
    points = read_points_bin(path, POINT_FIELDS)
    points[:, 3] /= INTENSITY_SCALE
    return points


def read_lidarseg(path: str | Path, expected_count: int) -> np.ndarray:
    """Read a ``*_lidarseg.bin`` label file: (N,) uint8 raw nuScenes class indices 0..31.

    Raises DataError naming the file if it is missing, its length differs from ``expected_count`` (the
    number of points of the sweep), or it holds an index the dataset does not define (> 31).
    """
    path = Path(path)
    raw = np.frombuffer(read_file_bytes(path, "lidarseg label file"), dtype=np.uint8).copy()
    if raw.size != expected_count:
        raise DataError(path, f"has {raw.size} labels but the point cloud has {expected_count} points")
    unknown = NUSCENES.unknown_raw_ids(raw)
    if unknown.size:
        raise DataError(
            path, f"unknown raw class index(es) {unknown.tolist()} (nuScenes-lidarseg defines 0..31)"
        )
    return raw
