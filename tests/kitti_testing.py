"""Builds small SemanticKITTI-layout trees for tests (written under tmp_path, never into the repo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# KITTI odometry sequence 00 calib.txt values (P2 and Tr), rounded; P0 is the rectified cam0.
P0 = [718.856, 0, 607.1928, 0, 0, 718.856, 185.2157, 0, 0, 0, 1, 0]
P2 = [718.856, 0, 607.1928, 45.38225, 0, 718.856, 185.2157, -0.1130887, 0, 0, 1, 0.003779761]
TR = [
    4.276802385584e-04, -9.999672484946e-01, -8.084491683471e-03, -1.198459927713e-02,
    -7.210626507497e-03, 8.081198471645e-03, -9.999413164504e-01, -5.403984729748e-02,
    9.999738645903e-01, 4.859485810390e-04, -7.206933692422e-03, -2.921968648686e-01,
]  # fmt: skip


def calib_text(tr=TR) -> str:
    rows = {"P0": P0, "P1": P0, "P2": P2, "P3": P0, "Tr": tr}
    return "".join(f"{k}: {' '.join(f'{v:.12e}' for v in vals)}\n" for k, vals in rows.items())


def write_scan(folder: Path, frame: int, points: np.ndarray, raw_labels: np.ndarray | None = None,
               label_dir: str = "labels") -> None:  # fmt: skip
    (folder / "velodyne").mkdir(parents=True, exist_ok=True)
    np.asarray(points, dtype="<f4").tofile(folder / "velodyne" / f"{frame:06d}.bin")
    if raw_labels is not None:
        (folder / label_dir).mkdir(parents=True, exist_ok=True)
        np.asarray(raw_labels, dtype="<u4").tofile(folder / label_dir / f"{frame:06d}.label")


def random_points(rng: np.random.Generator, n: int) -> np.ndarray:
    xyz = rng.uniform([2, -10, -2], [30, 10, 2], size=(n, 3))
    return np.concatenate([xyz, rng.uniform(0, 1, size=(n, 1))], axis=1).astype(np.float32)


def write_tree(
    root: Path,
    sequences: dict[str, int],
    points_per_scan: int = 20,
    raw_ids=(0, 10, 40, 50, 70, 252),
    with_calib: bool = True,
    with_images: bool = False,
    with_times: bool = True,
    label_dir: str = "labels",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write ``root/sequences/SS/...`` with ``sequences[SS]`` scans each; returns raw labels per sample id."""
    rng = np.random.default_rng(seed)
    labels = {}
    for name, count in sequences.items():
        folder = root / "sequences" / name
        folder.mkdir(parents=True, exist_ok=True)
        for frame in range(count):
            raw = rng.choice(np.asarray(raw_ids, dtype=np.uint32), size=points_per_scan)
            raw = raw | (rng.integers(0, 3, size=points_per_scan, dtype=np.uint32) << 16)
            write_scan(folder, frame, random_points(rng, points_per_scan), raw, label_dir)
            labels[f"{name}/{frame:06d}"] = raw
            if with_images:
                (folder / "image_2").mkdir(exist_ok=True)
                Image.fromarray(np.zeros((12, 40, 3), np.uint8)).save(folder / "image_2" / f"{frame:06d}.png")
        if with_calib:
            (folder / "calib.txt").write_text(calib_text())
        if with_times:
            (folder / "times.txt").write_text("".join(f"{0.1 * i:.6e}\n" for i in range(count)))
    return labels
