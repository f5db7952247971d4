"""Transforms, rotations, pose interpolation and projection against hand values and dense references."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nerfseg.data import io
from nerfseg.geometry.transforms import (
    interpolate_poses,
    invert_rigid,
    kitti_camera_from_projection,
    make_transform,
    matrix_to_quaternion,
    project_points,
    quaternion_to_matrix,
    slerp,
    to_homogeneous,
    transform_points,
)

quats = arrays(np.float64, 4, elements=st.floats(-1, 1)).filter(lambda q: np.linalg.norm(q) > 0.1)


def rot_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def rot_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_quaternion_hand_values():
    half = np.sqrt(0.5)
    np.testing.assert_allclose(quaternion_to_matrix([half, 0, 0, half]), rot_z(np.pi / 2), atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix([1, 0, 0, 0]), np.eye(3))
    np.testing.assert_allclose(matrix_to_quaternion(rot_y(np.pi)), [0, 0, 1, 0], atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(quats)
def test_quaternion_roundtrip(q):
    rotation = quaternion_to_matrix(q)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(rotation)), rotation, atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(quats, arrays(np.float64, 3, elements=st.floats(-100, 100)))
def test_invert_rigid_matches_dense_inverse(q, t):
    transform = make_transform(quaternion_to_matrix(q), t)
    np.testing.assert_allclose(invert_rigid(transform), np.linalg.inv(transform), atol=1e-9)
    pts = np.array([[1.0, 2, 3], [-4, 5, 0.5]])
    np.testing.assert_allclose(transform_points(transform, pts), (to_homogeneous(pts) @ transform.T)[:, :3])


def test_slerp_constant_rate_about_an_axis():
    q0 = matrix_to_quaternion(rot_z(0.2))
    q1 = matrix_to_quaternion(rot_z(1.0))
    for u in (0.0, 0.25, 0.5, 1.0, 1.5, -0.5):
        expected = rot_z(0.2 + u * 0.8)
        np.testing.assert_allclose(quaternion_to_matrix(slerp(q0, q1, u)), expected, atol=1e-12)
    # Shortest arc: -q1 is the same rotation.
    np.testing.assert_allclose(quaternion_to_matrix(slerp(q0, -q1, 0.5)), rot_z(0.6), atol=1e-12)
    # Tiny angles take the linear branch without NaNs.
    assert np.isfinite(slerp(q0, q0, 0.3)).all()


def test_interpolate_poses_analytic_motion():
    """A sensor turning at 0.5 rad/s about y and moving at 10 m/s along a straight line."""

    def pose(t):
        return make_transform(rot_y(0.5 * t), np.array([1.0, 0.2, 10.0 * t]))

    times = np.array([0.0, 0.1, 0.25, 0.3])
    poses = np.stack([pose(t) for t in times])
    query = np.array([0.0, 0.05, 0.1, 0.2, 0.3, 0.33, -0.02])
    got = interpolate_poses(times, poses, query)
    for g, t in zip(got, query, strict=True):
        np.testing.assert_allclose(g, pose(t), atol=1e-12)


def test_project_points_hand_values():
    K = np.array([[100.0, 0, 50], [0, 100, 20], [0, 0, 1]])
    lidar_to_cam = make_transform(np.eye(3), [0, 0, 1.0])
    pts = np.array([[0, 0, 1.0], [1, -0.5, 4], [0, 0, -3], [10, 0, 1], [0, 0, -1]])
    uv, depth, visible = project_points(pts, lidar_to_cam, K, (100, 40))
    np.testing.assert_allclose(depth, [2, 5, -2, 2, 0])
    np.testing.assert_allclose(uv[:2], [[50, 20], [70, 10]])
    np.testing.assert_array_equal(visible, [True, True, False, False, False])


def test_kitti_projection_split_real_calib(real_data):
    calib = io.read_kitti_calib(real_data / "kitti_odometry_calib" / "calib.txt")
    K, shift = kitti_camera_from_projection(calib["P2"])
    np.testing.assert_allclose(K, calib["P2"][:, :3])
    # Hand: t_z = P[2,3]; t_x = (P[0,3] - cx t_z) / fx: cam2 sits ~6 cm beside cam0.
    t_z = 3.779761e-03
    t_x = (45.38225 - 607.1928 * t_z) / 718.856
    np.testing.assert_allclose(shift[:3, 3], [t_x, (-0.1130887 - 185.2157 * t_z) / 718.856, t_z], rtol=1e-9)
    assert 0.05 < t_x < 0.07


def test_real_kitti_object_points_project_inside_image(real_data):
    folder = real_data / "kitti_object_000008"
    info = json.loads((folder / "000008.calib.json").read_text())["data_list"][0]
    tr = np.array(info["lidar_points"]["Tr_velo_to_cam"])
    r0 = np.array(info["images"]["R0_rect"])
    p2 = np.array(info["images"]["CAM2"]["cam2img"])[:3]
    K, shift = kitti_camera_from_projection(p2)
    lidar_to_cam = shift @ r0 @ tr
    # mmdetection3d's own lidar2img for this frame is an independent reference of K @ lidar_to_cam.
    np.testing.assert_allclose(
        K @ lidar_to_cam[:3], np.array(info["images"]["CAM2"]["lidar2img"])[:3], atol=1e-3
    )
    points = io.read_points_bin(folder / "000008.bin", 4)
    image = io.read_image(folder / "000008.png")
    assert points.shape == (17238, 4) and image.shape == (375, 1242, 3)
    uv, depth, visible = project_points(points[:, :3], lidar_to_cam, K, (image.shape[1], image.shape[0]))
    assert visible.all()
    assert depth.min() > 0 and uv[:, 0].max() > 1000 and uv[:, 0].min() < 200  # spans the image
