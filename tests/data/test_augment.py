"""Augmentation: geometry of the transform, determinism by (seed, epoch, index), camera consistency."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.data.augment import (
    AugmentConfig,
    augment_points,
    augment_sample,
    augmentation_rng,
    random_linear_transform,
)
from nerfseg.data.sample import CameraFrame, Sample


def _points(n=500, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-20, 20, size=(n, 4)).astype(np.float32)
    pts[:, 3] = rng.uniform(0, 1, n)
    return pts


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), epoch=st.integers(0, 50), index=st.integers(0, 10_000))
def test_transform_is_scaled_orthogonal_and_keeps_z_axis(seed, epoch, index):
    cfg = AugmentConfig()
    a = random_linear_transform(cfg, augmentation_rng(seed, epoch, index))
    scale = abs(np.linalg.det(a)) ** (1 / 3)
    assert cfg.scale_min - 1e-9 <= scale <= cfg.scale_max + 1e-9
    assert np.allclose(a.T @ a, scale**2 * np.eye(3), atol=1e-9)
    assert np.allclose(a[2], [0, 0, scale]) and np.allclose(a[:2, 2], 0)


def test_rotation_only_matches_hand_computed():
    cfg = AugmentConfig(rotate_z=math.pi, flip_x=0, flip_y=0, scale_min=1, scale_max=1, jitter_std=0)
    rng = augmentation_rng(1, 2, 3)
    angle = augmentation_rng(1, 2, 3).uniform(-math.pi, math.pi)
    pts = np.array([[1.0, 0.0, 2.0, 0.5], [0.0, 3.0, -1.0, 0.25]], dtype=np.float32)
    out, _ = augment_points(pts, cfg, rng)
    expected = np.array(
        [[math.cos(angle), math.sin(angle), 2.0], [-3 * math.sin(angle), 3 * math.cos(angle), -1.0]]
    )
    assert np.allclose(out[:, :3], expected, atol=1e-5)
    assert np.array_equal(out[:, 3], pts[:, 3])


def test_flip_x_certain_mirrors_x():
    cfg = AugmentConfig(rotate_z=0, flip_x=1.0, flip_y=0.0, scale_min=2, scale_max=2, jitter_std=0)
    out, a = augment_points(np.array([[1.0, 2.0, 3.0, 0.0]], np.float32), cfg, augmentation_rng(0, 0, 0))
    assert np.allclose(out[0, :3], [-2.0, 4.0, 6.0])
    assert np.allclose(a, np.diag([-2.0, 2.0, 2.0]))


def test_jitter_bounded_and_deterministic_per_key():
    cfg = AugmentConfig(
        rotate_z=0, flip_x=0, flip_y=0, scale_min=1, scale_max=1, jitter_std=0.5, jitter_clip=0.05
    )
    pts = _points()
    a1, _ = augment_points(pts, cfg, augmentation_rng(7, 1, 42))
    a2, _ = augment_points(pts, cfg, augmentation_rng(7, 1, 42))
    a3, _ = augment_points(pts, cfg, augmentation_rng(7, 2, 42))
    assert np.array_equal(a1, a2)
    assert not np.array_equal(a1, a3)
    d = np.abs(a1[:, :3] - pts[:, :3])
    assert d.max() <= 0.05 + 1e-5 and d.max() > 0.01


def test_cameras_stay_consistent_with_points():
    # A camera looking along +x; after augmentation, projecting augmented points with the updated
    # lidar_to_cam gives the same camera coordinates as the original points (no jitter).
    lidar_to_cam = np.array([[0, -1, 0, 0.1], [0, 0, -1, -0.2], [1, 0, 0, 0.3], [0, 0, 0, 1]], float)
    cam = CameraFrame("image_2", Path("x.png"), np.eye(3), lidar_to_cam, 0.0, (10, 10))
    pts = _points()
    sample = Sample("00/000000", pts, np.zeros(len(pts), np.int64), 0.0, [cam])
    cfg = AugmentConfig(jitter_std=0.0)
    out = augment_sample(sample, cfg, augmentation_rng(3, 0, 5))
    hom = lambda p: np.c_[p[:, :3].astype(np.float64), np.ones(len(p))]  # noqa: E731
    before = hom(pts) @ lidar_to_cam.T
    after = hom(out.points) @ out.cameras[0].lidar_to_cam.T
    assert np.allclose(before, after, atol=1e-4)
    assert out.labels is sample.labels and sample.cameras[0].lidar_to_cam is lidar_to_cam  # input untouched
