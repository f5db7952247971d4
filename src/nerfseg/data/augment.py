"""Training-time augmentation of LiDAR scans: rotation about z, flips, isotropic scaling and point jitter.

Every random draw comes from a generator seeded by ``(seed, epoch, sample index)`` (see
:func:`augmentation_rng`), so the augmentation a scan receives does not depend on which DataLoader worker
loads it, in which order, or whether the run was interrupted and resumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from nerfseg.data.sample import CameraFrame, Sample


@dataclass
class AugmentConfig:
    """Augmentation settings (all angles in radians).

    Attributes:
        enabled: apply augmentation to training scans (never to validation / prediction).
        rotate_z: maximum |angle| of the random rotation about the z axis (pi = any heading).
        flip_x: probability of mirroring x -> -x.
        flip_y: probability of mirroring y -> -y.
        scale_min / scale_max: range of the uniform isotropic scale factor.
        jitter_std: standard deviation of the per-point Gaussian jitter, metres.
        jitter_clip: jitter is clipped to [-jitter_clip, jitter_clip] metres per axis.
    """

    enabled: bool = True
    rotate_z: float = math.pi
    flip_x: float = 0.5
    flip_y: float = 0.5
    scale_min: float = 0.95
    scale_max: float = 1.05
    jitter_std: float = 0.01
    jitter_clip: float = 0.05


def augmentation_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Generator for the augmentation of dataset item ``index`` in ``epoch`` of a run seeded ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index), 0x5EED]))


def random_linear_transform(cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Draw the linear part of an augmentation: (3, 3) float64 ``A = scale * flips @ R_z(angle)``.

    Augmented coordinates are ``x' = A @ x`` (LiDAR frame, metres). Draw order is fixed (angle, flip x,
    flip y, scale) so that a given generator state always gives the same transform.
    """
    angle = rng.uniform(-cfg.rotate_z, cfg.rotate_z) if cfg.rotate_z > 0 else 0.0
    flip_x = rng.random() < cfg.flip_x
    flip_y = rng.random() < cfg.flip_y
    scale = rng.uniform(cfg.scale_min, cfg.scale_max) if cfg.scale_max > cfg.scale_min else cfg.scale_min
    c, s = math.cos(angle), math.sin(angle)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    flips = np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0, 1.0])
    return scale * flips @ rotation


def augment_points(
    points: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Augment one scan's points.

    Args:
        points: (N, F) float32, columns x, y, z in metres (LiDAR frame), then intensity and extras
            (left unchanged).
        cfg: augmentation settings.
        rng: the scan's generator (:func:`augmentation_rng`).

    Returns:
        (augmented (N, F) float32 copy, linear transform A (3, 3) float64). Jitter is added after A, so
        ``augmented[:, :3] = points[:, :3] @ A.T + jitter``.
    """
    transform = random_linear_transform(cfg, rng)
    out = np.array(points, dtype=np.float32, copy=True)
    # float32 product and in-place jitter (the same draws as in float64, about half the time of a float64
    # pass over a 120k-point scan); coordinates differ from float64 by float32 rounding only
    np.matmul(points[:, :3], transform.T.astype(np.float32), out=out[:, :3])
    if cfg.jitter_std > 0:
        noise = rng.normal(0.0, cfg.jitter_std, size=(out.shape[0], 3))
        np.clip(noise, -cfg.jitter_clip, cfg.jitter_clip, out=noise)
        out[:, :3] += noise
    return out, transform


def augment_sample(sample: Sample, cfg: AugmentConfig, rng: np.random.Generator) -> Sample:
    """Augmented copy of ``sample``: points transformed, labels unchanged, cameras kept consistent.

    Each camera's ``lidar_to_cam`` becomes ``lidar_to_cam @ inv(A4)`` where A4 is the homogeneous (4, 4)
    form of the linear transform, so a point of the augmented scan still projects onto the same pixel
    (up to jitter) and camera rays still meet the same surfaces. With a scale != 1 that matrix is no longer
    rigid (it is affine). The sensor origin stays at (0, 0, 0).
    """
    points, transform = augment_points(sample.points, cfg, rng)
    a4 = np.eye(4)
    a4[:3, :3] = transform
    a4_inv = np.linalg.inv(a4)
    cameras: list[CameraFrame] = [
        replace(cam, lidar_to_cam=cam.lidar_to_cam @ a4_inv) for cam in sample.cameras
    ]
    return replace(sample, points=points, cameras=cameras)
