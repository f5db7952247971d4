"""Primitives are closed and outward-oriented; Embree first hits agree with a dense Möller-Trumbore
reference and with analytic distances."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.sim.mesh import TriMesh, box, cylinder, ellipsoid, labeled, place, quad
from nerfseg.sim.raycast import RayCaster, cast_reference


def signed_volume(tris: np.ndarray) -> float:
    """Divergence theorem: sum of det(v0, v1, v2) / 6 (positive for a closed outward-oriented surface)."""
    return float(np.sum(np.linalg.det(tris.astype(np.float64))) / 6.0)


def test_primitive_volumes():
    assert np.isclose(signed_volume(box((2.0, 3.0, 4.0), (5.0, -1.0, 2.0))), 24.0)
    # A 10-gon prism: polygon area (n/2) r^2 sin(2 pi / n) times height.
    n, r, h = 10, 0.5, 2.0
    assert np.isclose(signed_volume(cylinder(r, h, n)), 0.5 * n * r * r * np.sin(2 * np.pi / n) * h)
    assert np.isclose(signed_volume(cylinder(r, h, n, axis="y")), 0.5 * n * r * r * np.sin(2 * np.pi / n) * h)
    # A finely tessellated ellipsoid approaches 4/3 pi abc from below.
    vol = signed_volume(ellipsoid((1.0, 2.0, 0.5), lat=40, lon=80))
    exact = 4 / 3 * np.pi * 1.0 * 2.0 * 0.5
    assert 0.97 * exact < vol < exact


def test_quad_normal_and_place():
    tris = quad(0, 2, 0, 1, 0.5)
    normals = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    assert np.all(normals[:, 2] > 0)
    moved = place(box((2, 1, 1)), (10, 0, 0), np.pi / 2)  # length now along y
    assert np.allclose(moved[..., 0].min(), 9.5) and np.allclose(moved[..., 1].max(), 1.0)


def random_scene(rng) -> TriMesh:
    parts = [labeled(quad(-20, 20, -20, 20, 0.0), 40, 0, (0.3, 0.3, 0.3))]
    for i in range(6):
        c = rng.uniform(-8, 8, 3) * [1, 1, 0] + [0, 0, 1]
        parts.append(labeled(box(rng.uniform(0.5, 3, 3), c), 10, i + 1, (1, 0, 0)))
        parts.append(
            labeled(ellipsoid(rng.uniform(0.3, 1.5, 3), rng.uniform(-8, 8, 3) + [0, 0, 2]), 70, 0, (0, 1, 0))
        )
    return TriMesh.concat(parts)


def test_embree_matches_reference():
    rng = np.random.default_rng(1)
    mesh = random_scene(rng)
    origins = rng.uniform(-10, 10, (400, 3)) * [1, 1, 0] + [0, 0, 5]
    dirs = rng.normal(size=(400, 3))
    dirs[:, 2] -= 0.5
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    fast = RayCaster(mesh).cast(origins, dirs)
    ref = cast_reference(mesh, origins, dirs)
    assert np.array_equal(fast.hit, ref.hit)
    assert fast.hit.mean() > 0.3
    h = ref.hit
    assert np.allclose(fast.distance[h], ref.distance[h], atol=1e-3)
    # Triangle ids agree except where two triangles tie at a shared edge; then the distance still agrees.
    assert np.mean(fast.triangle[h] == ref.triangle[h]) > 0.97
    assert (
        np.allclose(fast.normal[h], ref.normal[h], atol=1e-3)
        or np.mean(np.abs(fast.normal[h] - ref.normal[h]).max(1) < 1e-3) > 0.97
    )
    # Normals face the ray origin.
    assert np.all(np.sum(fast.normal[h] * dirs[h], 1) <= 1e-6)


@settings(max_examples=25, deadline=None)
@given(
    height=st.floats(0.5, 20.0),
    elevation=st.floats(-1.4, -0.05),
    azimuth=st.floats(-np.pi, np.pi),
)
def test_ground_distance_is_analytic(height, elevation, azimuth):
    mesh = labeled(quad(-1e3, 1e3, -1e3, 1e3, 0.0), 40, 0, (1, 1, 1))
    d = np.array(
        [[np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)]]
    )
    hits = RayCaster(mesh).cast(np.array([[0.0, 0.0, height]]), d)
    assert hits.hit[0]
    assert np.isclose(hits.distance[0], height / np.sin(-elevation), rtol=1e-4, atol=1e-4)
    assert np.allclose(hits.normal[0], [0, 0, 1], atol=1e-5)


def test_miss_and_empty_mesh():
    mesh = labeled(box((1, 1, 1), (5, 0, 0)), 10, 1, (1, 0, 0))
    hits = RayCaster(mesh).cast(np.zeros((2, 3)), np.array([[1.0, 0, 0], [-1.0, 0, 0]]))
    assert hits.hit.tolist() == [True, False]
    assert np.isclose(hits.distance[0], 4.5, atol=1e-5) and np.isinf(hits.distance[1])
    empty = RayCaster(TriMesh.empty()).cast(np.zeros((1, 3)), np.array([[1.0, 0, 0]]))
    assert not empty.hit[0]
