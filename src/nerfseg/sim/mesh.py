"""Triangle soups for the simulator's primitives (boxes, cylinders, ellipsoids, ground quads) and the
`TriMesh` that carries per-triangle labels and colours. All coordinates in metres."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TriMesh:
    """A triangle soup with per-triangle attributes.

    Attributes:
        vertices: (T, 3, 3) float32 triangle corners, metres.
        colors: (T, 3) float32 albedo in [0, 1].
        semantic: (T,) int32 SemanticKITTI raw id.
        instance: (T,) int32 instance id (0 for stuff).
    """

    vertices: np.ndarray
    colors: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray

    @property
    def num_triangles(self) -> int:
        return int(self.vertices.shape[0])

    @staticmethod
    def empty() -> TriMesh:
        return TriMesh(
            np.zeros((0, 3, 3), np.float32),
            np.zeros((0, 3), np.float32),
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
        )

    @staticmethod
    def concat(meshes: list[TriMesh]) -> TriMesh:
        """One mesh holding the triangles of all ``meshes`` in order."""
        if not meshes:
            return TriMesh.empty()
        return TriMesh(
            np.concatenate([m.vertices for m in meshes]).astype(np.float32),
            np.concatenate([m.colors for m in meshes]).astype(np.float32),
            np.concatenate([m.semantic for m in meshes]).astype(np.int32),
            np.concatenate([m.instance for m in meshes]).astype(np.int32),
        )


def labeled(tris: np.ndarray, semantic: int, instance: int, color) -> TriMesh:
    """Wrap (T, 3, 3) triangles with one class, instance and colour (3,) into a TriMesh."""
    n = tris.shape[0]
    return TriMesh(
        tris.astype(np.float32),
        np.broadcast_to(np.asarray(color, np.float32), (n, 3)).copy(),
        np.full(n, semantic, np.int32),
        np.full(n, instance, np.int32),
    )


def yaw_matrix(yaw: float) -> np.ndarray:
    """(3, 3) rotation about +z by ``yaw`` radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def place(tris: np.ndarray, position, yaw: float = 0.0) -> np.ndarray:
    """Rotate (T, 3, 3) local triangles by ``yaw`` about +z, then translate by ``position`` (3,)."""
    rotated = tris @ yaw_matrix(yaw).T
    return (rotated + np.asarray(position, np.float64)).astype(np.float32)


_BOX_FACES = np.array(
    [
        [0, 2, 1],
        [0, 3, 2],
        [4, 5, 6],
        [4, 6, 7],
        [0, 1, 5],
        [0, 5, 4],
        [1, 2, 6],
        [1, 6, 5],
        [2, 3, 7],
        [2, 7, 6],
        [3, 0, 4],
        [3, 4, 7],
    ]
)


def box(size, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(12, 3, 3) triangles of an axis-aligned box with extents ``size`` (sx, sy, sz) around ``center``."""
    sx, sy, sz = (0.5 * np.asarray(size, np.float64)).tolist()
    corners = np.array(
        [
            [-sx, -sy, -sz],
            [sx, -sy, -sz],
            [sx, sy, -sz],
            [-sx, sy, -sz],
            [-sx, -sy, sz],
            [sx, -sy, sz],
            [sx, sy, sz],
            [-sx, sy, sz],
        ]
    ) + np.asarray(center, np.float64)
    return corners[_BOX_FACES]


def quad(x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    """(2, 3, 3) triangles of the horizontal rectangle [x0, x1] x [y0, y1] at height z (normal +z)."""
    corners = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], np.float64)
    return corners[np.array([[0, 1, 2], [0, 2, 3]])]


def sloped_quad(x0: float, x1: float, y_near: float, y_far: float, z_near: float, z_far: float) -> np.ndarray:
    """(2, 3, 3) triangles of the rectangle [x0, x1] x [y_near, y_far] whose height goes linearly from
    ``z_near`` (at y_near) to ``z_far`` (at y_far) (a bank rising away from the road)."""
    corners = np.array([[x0, y_near, z_near], [x1, y_near, z_near], [x1, y_far, z_far], [x0, y_far, z_far]])
    return corners[np.array([[0, 1, 2], [0, 2, 3]])]


def cylinder(
    radius: float, height: float, segments: int = 10, axis: str = "z", center=(0.0, 0.0, 0.0)
) -> np.ndarray:
    """(4 * segments, 3, 3) closed cylinder. Axis ``z``: base at center.z, top at center.z + height;
    axis ``y``: centred on ``center`` with length ``height`` along y (wheels)."""
    angles = np.linspace(0.0, 2 * np.pi, segments + 1)
    ring = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)  # (S+1, 2)
    a, b = ring[:-1], ring[1:]
    zeros = np.zeros((segments, 1))
    lo, hi = zeros, zeros + height
    p_a_lo = np.concatenate([a, lo], 1)
    p_b_lo = np.concatenate([b, lo], 1)
    p_a_hi = np.concatenate([a, hi], 1)
    p_b_hi = np.concatenate([b, hi], 1)
    c_lo = np.concatenate([zeros, zeros, lo], 1)
    c_hi = np.concatenate([zeros, zeros, hi], 1)
    tris = np.concatenate(
        [
            np.stack([p_a_lo, p_b_lo, p_b_hi], 1),
            np.stack([p_a_lo, p_b_hi, p_a_hi], 1),
            np.stack([c_lo, p_b_lo, p_a_lo], 1),
            np.stack([c_hi, p_a_hi, p_b_hi], 1),
        ]
    )
    if axis == "y":
        tris = tris - np.array([0.0, 0.0, height / 2])
        tris = tris[..., [0, 2, 1]][:, [0, 2, 1]]  # swap y and z (a reflection), so reverse the winding
    return tris + np.asarray(center, np.float64)


def ellipsoid(radii, center=(0.0, 0.0, 0.0), lat: int = 6, lon: int = 10) -> np.ndarray:
    """(2 * lat * lon, 3, 3) triangles of an ellipsoid with semi-axes ``radii`` (rx, ry, rz)."""
    theta = np.linspace(0.0, np.pi, lat + 1)[:, None]
    phi = np.linspace(0.0, 2 * np.pi, lon + 1)[None, :]
    grid = np.stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta) * np.ones_like(phi)], -1
    ) * np.asarray(radii, np.float64)  # (lat+1, lon+1, 3)
    p00, p01 = grid[:-1, :-1], grid[:-1, 1:]
    p10, p11 = grid[1:, :-1], grid[1:, 1:]
    tris = np.concatenate(
        [np.stack([p00, p10, p11], 2).reshape(-1, 3, 3), np.stack([p00, p11, p01], 2).reshape(-1, 3, 3)]
    )
    return tris + np.asarray(center, np.float64)
