"""Rigid transforms, rotations and pinhole projection (pure numpy, float64 unless stated).

Conventions: 4x4 homogeneous matrices act on column vectors, ``x_b = T_a_to_b @ x_a``; quaternions are
(w, x, y, z) with unit norm; camera frame `cam` is OpenCV (x right, y down, z forward).
"""

from __future__ import annotations

import numpy as np

DEPTH_EPS = 1e-3
"""Smallest depth (metres) in front of the camera that counts as visible."""


def to_homogeneous(points: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D + 1) with a trailing column of ones (same float dtype)."""
    points = np.asarray(points)
    return np.concatenate([points, np.ones((*points.shape[:-1], 1), dtype=points.dtype)], axis=-1)


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (4, 4) rigid/affine transform to (N, 3) points; returns (N, 3) float64."""
    transform = np.asarray(transform, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    return points @ transform[:3, :3].T + transform[:3, 3]


def invert_rigid(transform: np.ndarray) -> np.ndarray:
    """Inverse of a (..., 4, 4) rigid transform [R t; 0 1] -> [R^T  -R^T t; 0 1], float64."""
    transform = np.asarray(transform, dtype=np.float64)
    rot_t = np.swapaxes(transform[..., :3, :3], -1, -2)
    out = np.zeros_like(transform)
    out[..., :3, :3] = rot_t
    out[..., :3, 3] = -(rot_t @ transform[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def make_transform(rotation: np.ndarray | None = None, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(..., 3, 3) rotation (None: identity) and (..., 3) translation in metres -> (..., 4, 4) float64
    transform (batch shapes broadcast)."""
    rotation = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64)
    batch = np.broadcast_shapes(rotation.shape[:-2], translation.shape[:-1])
    out = np.zeros((*batch, 4, 4))
    out[..., :3, :3] = rotation
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z), normalised here -> (..., 3, 3) float64 rotation matrices."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z) with w >= 0.

    Uses the numerically stable branch per matrix (largest of w, x, y, z computed from the trace first).
    """
    m = np.asarray(rotation, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Squared magnitudes times 4 of w, x, y, z.
    sq = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = np.argmax(sq, axis=-1)
    big = np.sqrt(np.maximum(np.take_along_axis(sq, best[..., None], -1)[..., 0], 1e-300))  # 2 * |comp|
    s21, s12 = m[..., 2, 1] - m[..., 1, 2], m[..., 2, 1] + m[..., 1, 2]
    s02, s20 = m[..., 0, 2] - m[..., 2, 0], m[..., 0, 2] + m[..., 2, 0]
    s10, s01 = m[..., 1, 0] - m[..., 0, 1], m[..., 1, 0] + m[..., 0, 1]
    candidates = np.stack(
        [
            np.stack([big * big, s21, s02, s10], -1),
            np.stack([s21, big * big, s01, s20], -1),
            np.stack([s02, s01, big * big, s12], -1),
            np.stack([s10, s20, s12, big * big], -1),
        ],
        axis=-2,
    )  # (..., 4 branches, 4): each row is 2*big * q for its branch
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :] / (2 * big[..., None])
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def slerp(q0: np.ndarray, q1: np.ndarray, u: np.ndarray | float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions along the shortest arc.

    Args:
        q0, q1: (..., 4) quaternions (w, x, y, z), broadcastable with ``u``.
        u: interpolation fraction(s) (...,); 0 gives q0, 1 gives q1; values outside [0, 1] extrapolate
            at the same angular rate.
    Returns:
        (..., 4) float64 unit quaternions.
    """
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    q0 = q0 / np.linalg.norm(q0, axis=-1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=-1, keepdims=True)
    u = np.asarray(u, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.clip(np.abs(dot), -1.0, 1.0)
    theta = np.arccos(dot)
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-9
    safe_sin = np.where(small, 1.0, sin_theta)
    w0 = np.where(small, 1.0 - u, np.sin((1.0 - u) * theta) / safe_sin)
    w1 = np.where(small, u, np.sin(u * theta) / safe_sin)
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def interpolate_poses(times: np.ndarray, poses: np.ndarray, query_times: np.ndarray) -> np.ndarray:
    """Pose at arbitrary times from a pose trajectory.

    Translation is interpolated linearly and rotation by slerp between the two neighbouring samples;
    query times before the first / after the last sample extrapolate with the first / last segment.

    Args:
        times: (T,) float64 strictly increasing sample times in seconds (T >= 1).
        poses: (T, 4, 4) rigid transforms (e.g. sensor -> world) at ``times``.
        query_times: (M,) float64 times in seconds.
    Returns:
        (M, 4, 4) float64 rigid transforms.
    """
    times = np.asarray(times, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    query_times = np.atleast_1d(np.asarray(query_times, dtype=np.float64))
    if times.size == 1:
        return np.repeat(poses[:1], query_times.size, axis=0)
    right = np.clip(np.searchsorted(times, query_times, side="right"), 1, times.size - 1)
    left = right - 1
    u = (query_times - times[left]) / (times[right] - times[left])
    quats = matrix_to_quaternion(poses[:, :3, :3])
    rotation = quaternion_to_matrix(slerp(quats[left], quats[right], u))
    translation = poses[left, :3, 3] + u[:, None] * (poses[right, :3, 3] - poses[left, :3, 3])
    return make_transform(rotation, translation)


def project_points(
    points_lidar: np.ndarray, lidar_to_cam: np.ndarray, K: np.ndarray, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project LiDAR points into a pinhole camera.

    Args:
        points_lidar: (N, 3) points in the `lidar` frame, metres.
        lidar_to_cam: (4, 4) transform `lidar` -> `cam` (OpenCV axes).
        K: (3, 3) intrinsics in pixels.
        image_size: (W, H) in pixels.
    Returns:
        uv: (N, 2) float64 pixel coordinates (u right, v down; pixel centres at integer + 0.5 convention
            is NOT applied: u = fx * x / z + cx), meaningful only where depth > 0;
        depth: (N,) float64 z in the camera frame, metres;
        visible: (N,) bool, depth > DEPTH_EPS and 0 <= u < W and 0 <= v < H.
    """
    cam = transform_points(lidar_to_cam, np.asarray(points_lidar)[:, :3])
    depth = cam[:, 2]
    safe = np.where(np.abs(depth) < 1e-12, 1e-12, depth)
    pix = cam @ np.asarray(K, dtype=np.float64).T
    uv = pix[:, :2] / safe[:, None]
    width, height = image_size
    visible = (
        (depth > DEPTH_EPS) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
    )
    return uv, depth, visible


def kitti_camera_from_projection(projection: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a rectified KITTI projection matrix P = K [I | t] into K and the 4x4 shift T = [I t; 0 1].

    Args:
        projection: (3, 4) matrix P_i of ``calib.txt`` (maps points of the rectified cam0 frame to pixels
            of camera i).
    Returns:
        K: (3, 3) float64 intrinsics; shift: (4, 4) float64 transform rectified cam0 -> camera i.
    """
    projection = np.asarray(projection, dtype=np.float64)
    K = projection[:, :3].copy()
    shift = np.eye(4)
    shift[:3, 3] = np.linalg.solve(K, projection[:, 3])
    return K, shift
