"""Sensor rig and ego motion: 4x4 rigid transforms between the `world`, `ego`, `lidar` and `cam` frames.

Conventions: ``a_T_b`` maps points of frame b into frame a (``x_a = a_T_b @ x_b``). The ego frame is
x forward, y left, z up on the ground; the LiDAR frame of the KITTI-like rig is the ego frame raised by
``LIDAR_HEIGHT_M``; camera frames are OpenCV (x right, y down, z forward)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LIDAR_HEIGHT_M = 1.73
CAM_FROM_LIDAR_AXES = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
"""(3, 3) rotation taking LiDAR-axis vectors (x fwd, y left, z up) to camera axes (x right, y down, z fwd)."""


def yaw_rotation(yaw: float) -> np.ndarray:
    """(3, 3) rotation about +z by ``yaw`` radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class EgoMotion:
    """Straight drive at constant speed: world_T_ego(t) = translation (x0 + speed * t, y, 0), no rotation."""

    x0: float
    y: float
    speed: float

    def world_T_ego(self, times: np.ndarray | float) -> np.ndarray:
        """(..., 4, 4) ego poses at ``times`` seconds."""
        times = np.asarray(times, np.float64)
        out = np.broadcast_to(np.eye(4), times.shape + (4, 4)).copy()
        out[..., 0, 3] = self.x0 + self.speed * times
        out[..., 1, 3] = self.y
        return out


def camera_rotation(yaw: float) -> np.ndarray:
    """(3, 3) ego_R_cam of a level camera looking along ego yaw ``yaw`` (radians, 0 = forward, + = left)."""
    return yaw_rotation(yaw) @ CAM_FROM_LIDAR_AXES.T


def rotate(vectors: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``vectors @ rotation.T`` for (N, 3) vectors and a (M, 3) matrix, as M broadcast multiply-adds
    (no BLAS call: avoids BLAS thread start-up on many small rows)."""
    return sum(vectors[:, j : j + 1] * rotation[:, j] for j in range(3))
