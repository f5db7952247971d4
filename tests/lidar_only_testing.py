"""A LiDAR-only SemanticKITTI copy for tests: real scans and labels without calibration or images."""

from __future__ import annotations

from pathlib import Path


def lidar_only_copy(real_data: Path, root: Path, sequences: tuple[str, ...] = ("00", "08")) -> Path:
    """The real 50-point SemanticKITTI scan and its labels (``../shared/data/real/semantickitti_50pt``) as
    scan 000000 of each of ``sequences`` (00: train, 08: val) under ``root``: velodyne/, labels/, poses.txt
    and times.txt, no calib.txt, no image_2/ (how many users hold SemanticKITTI). Returns ``root``."""
    source = real_data / "semantickitti_50pt" / "sequences" / "00"
    for name in sequences:
        folder = root / "sequences" / name
        for sub, suffix in (("velodyne", ".bin"), ("labels", ".label")):
            (folder / sub).mkdir(parents=True)
            (folder / sub / f"000000{suffix}").write_bytes((source / sub / f"000000{suffix}").read_bytes())
        (folder / "poses.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0\n")
        (folder / "times.txt").write_text("0.0\n")
    return root
