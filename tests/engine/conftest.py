"""Fixtures of the engine tests: a tiny SemanticKITTI-layout dataset written in tmp (no images).

Scene per scan: a road plane (raw 40) with a sidewalk strip (48), a few boxes standing on it that are cars
(10) or buildings (50), and poles (80): distinct geometry and remission per class, so a tiny model learns
something in a few dozen steps. Sequence 00 is the train split, 08 the val split (official split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

RAW = {"road": 40, "sidewalk": 48, "car": 10, "building": 50, "pole": 80}
REMISSION = {"road": 0.1, "sidewalk": 0.3, "car": 0.8, "building": 0.5, "pole": 0.95}


def _box_surface(rng, center, size, count):
    """``count`` points on the side faces and top of an axis-aligned box standing on z = -1.7."""
    u = rng.uniform(-0.5, 0.5, size=(count, 3)) * size
    face = rng.integers(0, 5, count)
    axis = np.where(face < 2, 0, np.where(face < 4, 1, 2))
    sign = np.where(face % 2 == 0, 0.5, -0.5)
    sign[face == 4] = 0.5
    u[np.arange(count), axis] = sign * size[axis]
    return u + center + np.array([0, 0, size[2] / 2 - 1.7])


def make_scan(rng: np.random.Generator, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 4) float32, raw labels (N,) uint32) of one toy scan."""
    parts, labels = [], []
    n_ground = num_points // 2
    r = np.sqrt(rng.uniform(2.0**2, 20.0**2, n_ground))
    a = rng.uniform(-np.pi, np.pi, n_ground)
    ground = np.c_[r * np.cos(a), r * np.sin(a), np.full(n_ground, -1.7)]
    is_walk = np.abs(ground[:, 1] - 6.0) < 2.0
    parts.append(ground)
    labels.append(np.where(is_walk, RAW["sidewalk"], RAW["road"]))
    remaining = num_points - n_ground
    objects = []
    for _ in range(4):
        kind = "car" if rng.random() < 0.5 else "building"
        size = np.array([4.0, 1.8, 1.5]) if kind == "car" else np.array([6.0, 5.0, 6.0])
        objects.append((kind, np.r_[rng.uniform(-15, 15, 2), 0.0], size))
    objects.append(("pole", np.r_[rng.uniform(-10, 10, 2), 0.0], np.array([0.3, 0.3, 5.0])))
    per = remaining // len(objects)
    for i, (kind, center, size) in enumerate(objects):
        count = per if i < len(objects) - 1 else remaining - per * (len(objects) - 1)
        parts.append(_box_surface(rng, center, size, count))
        labels.append(np.full(count, RAW[kind]))
    xyz = np.concatenate(parts)
    raw = np.concatenate(labels).astype(np.uint32)
    remission = np.vectorize({v: REMISSION[k] for k, v in RAW.items()}.get)(raw) + rng.normal(
        0, 0.03, len(raw)
    )
    points = np.c_[xyz, np.clip(remission, 0, 1)].astype(np.float32)
    return points, raw


def write_tiny_semantickitti(
    root: Path, scans: dict[str, int], num_points: int = 2000, seed: int = 0
) -> Path:
    """Write ``ROOT/sequences/SS/{velodyne,labels}/FFFFFF.*`` + times.txt for ``scans`` = {seq: count}."""
    rng = np.random.default_rng(seed)
    for seq, count in scans.items():
        folder = root / "sequences" / seq
        (folder / "velodyne").mkdir(parents=True, exist_ok=True)
        (folder / "labels").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            points, raw = make_scan(rng, num_points)
            points.tofile(folder / "velodyne" / f"{i:06d}.bin")
            (raw | (np.uint32(i + 1) << np.uint32(16))).astype("<u4").tofile(
                folder / "labels" / f"{i:06d}.label"
            )
        (folder / "times.txt").write_text("".join(f"{0.1 * i:.6e}\n" for i in range(count)))
    return root


@pytest.fixture(scope="session")
def tiny_kitti(tmp_path_factory) -> Path:
    """A SemanticKITTI-layout dataset: 6 train scans (seq 00) and 2 val scans (seq 08), 2000 points each."""
    return write_tiny_semantickitti(tmp_path_factory.mktemp("tiny_kitti"), {"00": 6, "08": 2})
