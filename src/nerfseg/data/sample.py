"""The one sample type every reader returns, whatever the dataset.

Frames: `lidar` is the LiDAR sensor frame at the sweep time `Sample.timestamp`; `cam` is the
camera frame (x right, y down, z forward, OpenCV convention) at the camera's own capture time
`CameraFrame.timestamp`. Units: metres, seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IGNORE_INDEX = 255
"""Train id of points / pixels that carry no label (unlabeled, or a class excluded from training)."""


@dataclass
class CameraFrame:
    """One camera image taken with a LiDAR sweep.

    Attributes:
        name: camera name, e.g. ``"image_2"`` (KITTI) or ``"CAM_FRONT"`` (nuScenes).
        image_path: the image file.
        K: (3, 3) float64 intrinsics in pixels (of the image as stored).
        lidar_to_cam: (4, 4) float64 rigid transform, ``x_cam = lidar_to_cam @ x_lidar`` (homogeneous),
            from the LiDAR frame at the sweep time to the camera frame at the camera's capture time
            (ego-motion compensated where the dataset gives poses).
        timestamp: camera capture time in seconds (same clock as ``Sample.timestamp``).
        image_size: (width, height) in pixels.
        image: (H, W, 3) uint8 RGB, or None when the reader was asked not to load images
            (call :meth:`load_image`).
        semantic_path / depth_path: ground-truth per-pixel raw semantic ids (16-bit PNG) and depth in
            millimetres (16-bit PNG, 0 = no hit), where the dataset has them (the built-in simulator).
    """

    name: str
    image_path: Path
    K: np.ndarray
    lidar_to_cam: np.ndarray
    timestamp: float
    image_size: tuple[int, int]
    image: np.ndarray | None = None
    semantic_path: Path | None = None
    depth_path: Path | None = None

    def load_image(self) -> np.ndarray:
        """Return the image as (H, W, 3) uint8 RGB, reading it once; raises DataError naming the file."""
        if self.image is None:
            from nerfseg.data.io import read_image

            self.image = read_image(self.image_path)
        return self.image

    @property
    def cam_to_lidar(self) -> np.ndarray:
        """(4, 4) inverse of ``lidar_to_cam``; its translation is the camera centre in the LiDAR frame."""
        return np.linalg.inv(self.lidar_to_cam)


@dataclass
class Sample:
    """One LiDAR sweep with its labels and cameras.

    Attributes:
        sample_id: stable id, e.g. ``"08/000123"`` (SemanticKITTI) or the LIDAR_TOP sample_data token
            (nuScenes).
        points: (N, F) float32 in the LiDAR frame, metres. Columns 0-2 are x, y, z; column 3 is the
            intensity / remission scaled to [0, 1] (nuScenes intensities are divided by 255); further
            columns are dataset specific (nuScenes: ring index).
        labels: (N,) int64 train ids in [0, num_classes) or IGNORE_INDEX; None when unlabeled.
        timestamp: LiDAR sweep time in seconds.
        cameras: the cameras recorded with the sweep (may be empty).
        lidar_path: the point file the sample was read from.
        instance_ids: (N,) int64 instance ids where the dataset has them, else None.
    """

    sample_id: str
    points: np.ndarray
    labels: np.ndarray | None
    timestamp: float
    cameras: list[CameraFrame] = field(default_factory=list)
    lidar_path: Path | None = None
    instance_ids: np.ndarray | None = None

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])
