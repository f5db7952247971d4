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


def rigid(rotation: np.ndarray | None = None, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(4, 4) float64 rigid transform from a (3, 3) rotation and a (3,) translation in metres."""
    out = np.eye(4)
    if rotation is not None:
        out[:3, :3] = rotation
    out[:3, 3] = translation
    return out


def invert(transform: np.ndarray) -> np.ndarray:
    """Inverse of a (4, 4) rigid transform."""
    out = np.eye(4)
    out[:3, :3] = transform[:3, :3].T
    out[:3, 3] = -transform[:3, :3].T @ transform[:3, 3]
    return out


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


def pixel_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H*W, 3) float64 unit ray directions in the camera frame through pixel centres (u + 0.5, v + 0.5),
    row-major (v outer, u inner). Pixel (u, v) covers [u, u+1) x [v, v+1)."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], 1)
    rays = pix @ np.linalg.inv(K).T
    return rays / np.linalg.norm(rays, axis=1, keepdims=True)
