"""Parallax between LiDAR and camera, measured on data with per-pixel ground truth (the simulator's
``semantic_2``): the fraction of camera-visible LiDAR points whose projected pixel shows another class."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ParallaxCount:
    """Counts over LiDAR points: ``visible`` (projecting inside the image with positive depth) and
    ``mismatched`` (visible and the pixel's ground-truth raw id differs from the point's); ``scans`` and
    ``images`` read (filled in by :func:`measure_semantickitti`)."""

    visible: int = 0
    mismatched: int = 0
    per_class: dict[int, list[int]] = field(default_factory=dict)  # raw id -> [visible, mismatched]
    scans: int = 0
    images: int = 0

    @property
    def fraction(self) -> float:
        return self.mismatched / self.visible if self.visible else 0.0

    def add(self, other: ParallaxCount) -> None:
        self.visible += other.visible
        self.mismatched += other.mismatched
        self.scans += other.scans
        self.images += other.images
        for raw, (v, m) in other.per_class.items():
            mine = self.per_class.setdefault(raw, [0, 0])
            mine[0] += v
            mine[1] += m


def parallax_count(
    points_xyz: np.ndarray,
    point_raw: np.ndarray,
    lidar_to_cam: np.ndarray,
    K: np.ndarray,
    semantic_image: np.ndarray,
) -> ParallaxCount:
    """Compare each LiDAR point's raw class with the ground-truth class of the pixel it projects to.

    points_xyz: (N, 3) metres in the LiDAR frame; point_raw: (N,) raw semantic ids (0 = unlabeled points are
    skipped); lidar_to_cam: (4, 4); K: (3, 3) pixels; semantic_image: (H, W) raw ids of the image. A point
    projecting to u (pixels) lies in pixel column floor(u) (pixel u covers [u, u + 1)).
    """
    from nerfseg.geometry.transforms import project_points

    height, width = semantic_image.shape
    uv, _, visible = project_points(points_xyz, lidar_to_cam, K, (width, height))
    visible &= point_raw > 0
    idx = np.nonzero(visible)[0]
    cols = np.minimum(np.floor(uv[idx, 0]).astype(np.int64), width - 1)
    rows = np.minimum(np.floor(uv[idx, 1]).astype(np.int64), height - 1)
    own = point_raw[idx].astype(np.int64)
    wrong = semantic_image[rows, cols].astype(np.int64) != own
    classes, vis_counts = np.unique(own, return_counts=True)
    bad_counts = np.bincount(np.searchsorted(classes, own[wrong]), minlength=classes.size)
    per_class = {int(c): [int(v), int(b)] for c, v, b in zip(classes, vis_counts, bad_counts, strict=True)}
    return ParallaxCount(int(idx.size), int(wrong.sum()), per_class)


def read_semantic_png(path: str | Path) -> np.ndarray:
    """(H, W) int64 raw ids of a 16-bit ground-truth PNG; DataError naming the file if unreadable."""
    from PIL import Image, UnidentifiedImageError

    from nerfseg.errors import DataError

    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(path, f"cannot read ground-truth image ({err})") from None
    if array.ndim != 2:
        raise DataError(path, f"expected a single-channel 16-bit PNG, got shape {array.shape}")
    return array.astype(np.int64)


def measure_semantickitti(
    root: str | Path, max_frames: int | None = None, progress: bool = True
) -> ParallaxCount:
    """Parallax over every scan of every sequence under ``root/sequences`` that has ``labels/`` and
    ``semantic_2/`` (read through the SemanticKITTI reader: its ego-motion compensated lidar_to_cam)."""
    from tqdm import tqdm

    from nerfseg.data.io import read_label_file
    from nerfseg.data.semantickitti import SemanticKittiDataset
    from nerfseg.errors import DataError

    seq_root = Path(root) / "sequences"
    sequences = (
        sorted(int(p.name) for p in seq_root.glob("[0-9][0-9]") if p.is_dir()) if seq_root.is_dir() else []
    )
    if not sequences:
        raise DataError(seq_root, "no sequences found (expected ROOT/sequences/SS/)")
    dataset = SemanticKittiDataset(root, split="train", sequences=sequences)
    total = ParallaxCount()
    count = len(dataset) if max_frames is None else min(max_frames, len(dataset))
    for i in tqdm(range(count), desc="parallax", unit="scan", disable=not progress):
        sample = dataset[i]
        label_path = dataset.label_path(i)
        if label_path is None:
            raise DataError(
                dataset.scan_path(i).parent.parent / "labels", "no labels: parallax needs ground truth"
            )
        raw = (read_label_file(label_path, sample.num_points) & 0xFFFF).astype(np.int64)
        for camera in sample.cameras:
            if camera.semantic_path is None:
                raise DataError(camera.image_path, "no ground-truth semantic image (semantic_2/) beside it")
            gt = read_semantic_png(camera.semantic_path)
            total.add(parallax_count(sample.points[:, :3], raw, camera.lidar_to_cam, camera.K, gt))
            total.images += 1
        total.scans += 1
    return total
