"""Readers of the two per-sweep nuScenes files: ``*.pcd.bin`` points and ``*_lidarseg.bin`` labels, and
the names of the per-image ground-truth files of our extension (written by the simulator only).
Every failure raises :class:`nerfseg.errors.DataError` naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfseg.data.io import check_image_size, image_size, read_file_bytes, read_points_bin
from nerfseg.data.labelmaps import NUSCENES
from nerfseg.data.nuscenes_tables import POINT_FIELDS
from nerfseg.errors import DataError

GROUND_TRUTH_KINDS = ("semantic", "depth")
"""Our extension: ``samples_semantic/CAM_X/<stem>.png`` (16-bit raw class index per pixel, 0 = nothing /
ignore) and ``samples_depth/CAM_X/<stem>.png`` (16-bit z-depth in millimetres, 0 = no hit) beside each
``samples/CAM_X/<stem>.jpg``."""

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


def ground_truth_filename(camera_filename: str, kind: str) -> str:
    """The ground-truth image of a camera image (our extension; see :data:`GROUND_TRUTH_KINDS`).

    ``"samples/CAM_BACK/x__CAM_BACK__1.jpg"``, ``"depth"`` -> ``"samples_depth/CAM_BACK/x__CAM_BACK__1.png"``
    (same channel folder and stem, relative to the nuScenes root like the sample_data ``filename``).
    """
    if kind not in GROUND_TRUTH_KINDS:
        raise ValueError(f"ground-truth kind must be one of {GROUND_TRUTH_KINDS}, got {kind!r}")
    parts = Path(camera_filename).parts
    if len(parts) < 3 or parts[0] != "samples":
        raise ValueError(f"expected a camera file samples/CAM_X/NAME, got {camera_filename!r}")
    return Path(f"samples_{kind}", *parts[1:-1], Path(parts[-1]).stem + ".png").as_posix()


def ground_truth_paths(
    root: Path, camera_filename: str, size: tuple[int, int], kinds: tuple[str, ...] = GROUND_TRUTH_KINDS
) -> dict[str, Path]:
    """``{kind: path}`` of the ground-truth images (our extension) beside the camera image ``camera_filename``
    (relative to ``root``) that exist, each checked to have the camera image's ``size`` (W, H) pixels.

    Raises DataError naming a ground-truth PNG whose size differs (the reader's and check-data's one rule).
    """
    paths = {}
    for kind in kinds:
        try:
            path = Path(root) / ground_truth_filename(camera_filename, kind)
        except ValueError:  # a camera file outside samples/: no ground truth beside it
            continue
        if path.is_file():
            check_image_size(path, image_size(path), size, f"its camera image {Path(camera_filename).name}")
            paths[kind] = path
    return paths


def check_record_size(path: Path, size: tuple[int, int], record: dict) -> None:
    """DataError naming the camera image ``path`` when its ``size`` (W, H) differs from the width / height of
    its sample_data ``record`` (records without a size are not checked)."""
    width, height = int(record.get("width") or 0), int(record.get("height") or 0)
    if width > 0 and height > 0:
        check_image_size(path, size, (width, height), f"its sample_data record {record.get('token', '?')}")
