"""Parallax scoring on an analytic scene: a pole in front of a wall, seen by a camera away from the LiDAR.

Camera frame (OpenCV: x right, y down, z forward). The pole is a box |x| <= 0.5 m, front face at z = 9.8 m;
the wall is the plane z = 30 m. A wall point (x, 0, 30) is hidden from the camera exactly when its ray
crosses the pole's front face inside it: |x| * 9.8 / 30 <= 0.5, i.e. |x| <= 1.5306 m. The first surface on
each ray has a hand-known z-depth (9.8 on the pole, 30 on the wall), which ``depth_2/`` would hold.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.geometry.rays import camera_rays, z_depth_to_ray_distance
from nerfseg.geometry.transforms import project_points
from nerfseg.ssl.parallax_eval import (
    DEPTH_BANDS,
    band_counts,
    band_index,
    band_medians,
    band_rates,
    depth_agrees,
    occluded_points,
    rays_through_points,
)

K = np.array([[700.0, 0.0, 620.0], [0.0, 700.0, 187.0], [0.0, 0.0, 1.0]])
IMAGE = (1242, 375)
# lidar frame x forward, y left, z up; the camera sits 0.3 m behind, 0.2 m left of and 0.1 m below the LiDAR
LIDAR_TO_CAM = np.array(
    [[0.0, -1.0, 0.0, 0.2], [0.0, 0.0, -1.0, -0.1], [1.0, 0.0, 0.0, 0.3], [0.0, 0.0, 0.0, 1.0]]
)
CAM_TO_LIDAR = np.linalg.inv(LIDAR_TO_CAM)
POLE, WALL = 0, 1
WALL_X = [0.0, 1.0, 1.4, -1.5, 1.6, -2.0, 3.0]  # camera-frame x of the wall points (y = 0, z = 30)
WALL_HIDDEN = [True, True, True, True, False, False, False]  # |x| <= 1.5306
POLE_X = [-0.4, 0.0, 0.45]  # points on the pole's front face (z = 9.8)


def to_lidar(cam_xyz: np.ndarray) -> np.ndarray:
    return (cam_xyz @ CAM_TO_LIDAR[:3, :3].T) + CAM_TO_LIDAR[:3, 3]


def scene():
    """Points in the lidar frame (pole first, then wall), their classes, hidden flags and the first
    surface's z-depth on each point's camera ray."""
    cam = np.array([[x, 0.0, 9.8] for x in POLE_X] + [[x, 0.0, 30.0] for x in WALL_X])
    classes = np.array([POLE] * len(POLE_X) + [WALL] * len(WALL_X))
    hidden = np.array([False] * len(POLE_X) + WALL_HIDDEN)
    first_z = np.where(hidden | (classes == POLE), 9.8, 30.0)
    return to_lidar(cam), classes, hidden, first_z, cam


def camera_centre() -> torch.Tensor:
    return torch.as_tensor(CAM_TO_LIDAR[:3, 3])


def test_rays_through_points_match_the_camera_ray_of_the_projected_pixel():
    xyz, _, _, _, cam = scene()
    uv, depth, visible = project_points(xyz, LIDAR_TO_CAM, K, IMAGE)
    assert visible.all()
    origins, ref_dirs = camera_rays(torch.as_tensor(K), torch.as_tensor(LIDAR_TO_CAM), torch.as_tensor(uv))
    dirs, distance = rays_through_points(camera_centre(), torch.as_tensor(xyz))
    torch.testing.assert_close(dirs, ref_dirs, atol=1e-9, rtol=0)
    torch.testing.assert_close(distance, torch.as_tensor(np.linalg.norm(cam, axis=1)), atol=1e-9, rtol=0)
    torch.testing.assert_close(origins[0] + distance[:, None] * dirs, torch.as_tensor(xyz), atol=1e-9, rtol=0)


def test_pole_hides_exactly_the_wall_points_behind_it():
    xyz, _, hidden, first_z, _ = scene()
    dirs, distance = rays_through_points(camera_centre(), torch.as_tensor(xyz))
    dirs_cam = dirs @ torch.as_tensor(LIDAR_TO_CAM[:3, :3]).T
    surface = z_depth_to_ray_distance(torch.as_tensor(first_z), dirs_cam=dirs_cam)
    # hand check: the ray of wall point x = 1 m meets the pole face at distance 9.8 * |(1, 0, 30)| / 30
    assert surface[len(POLE_X) + 1].item() == pytest.approx(9.8 * math.hypot(1.0, 30.0) / 30.0)
    occluded = occluded_points(distance, surface, tolerance=0.3)
    assert occluded.tolist() == hidden.tolist()


def test_occlusion_tolerance_and_rays_that_hit_nothing():
    point = torch.tensor([10.2, 10.4, 50.0, 50.0])
    surface = torch.tensor([10.0, 10.0, 0.0, -1.0])  # 0 / negative: nothing on the ray
    assert occluded_points(point, surface, tolerance=0.3).tolist() == [False, True, False, False]
    assert occluded_points(point, surface, tolerance=0.0).tolist() == [True, True, False, False]
    with pytest.raises(ValueError):
        occluded_points(point, surface, tolerance=-0.1)


def test_depth_agreement_uses_normalised_depth_and_an_opacity_gate():
    distance = torch.tensor([10.2, 10.4, 10.0, 10.0, 30.0])
    opacity = torch.tensor([0.9, 0.9, 0.4, 0.5, 1.0])
    depth = opacity * torch.tensor([10.0, 10.0, 10.0, 10.0, 9.8])  # D = A * surface distance
    assert depth_agrees(depth, opacity, distance, tolerance=0.3).tolist() == [True, False, False, True, False]
    assert depth_agrees(depth, opacity, distance, tolerance=0.3, min_opacity=0.3)[2]


def test_rendered_rays_label_visible_points_and_skip_hidden_ones():
    """A perfect render of the scene: each ray stops at its first surface with that surface's class. Visible
    points are covered and right; hidden wall points are not covered, while projection (the class at the
    point's pixel = the first surface's class) labels them pole: wrong exactly on the hidden points."""
    xyz, classes, hidden, first_z, _ = scene()
    dirs, distance = rays_through_points(camera_centre(), torch.as_tensor(xyz))
    dirs_cam = dirs @ torch.as_tensor(LIDAR_TO_CAM[:3, :3]).T
    surface = z_depth_to_ray_distance(torch.as_tensor(first_z), dirs_cam=dirs_cam)
    first_class = torch.as_tensor(np.where(first_z == 9.8, POLE, WALL))
    truth = torch.as_tensor(classes)
    opacity = torch.ones_like(surface)
    covered = depth_agrees(surface * opacity, opacity, distance, tolerance=0.3)
    assert covered.tolist() == (~torch.as_tensor(hidden)).tolist()
    rays = band_counts(distance, covered, first_class != truth)
    projection = band_counts(distance, torch.ones_like(covered), first_class != truth)
    n_pole, n_hidden = len(POLE_X), sum(WALL_HIDDEN)
    n_wall = len(WALL_X)
    assert rays.tolist() == [[n_pole, n_pole, 0], [n_wall, n_wall - n_hidden, 0], [0, 0, 0]]
    assert projection.tolist() == [[n_pole, n_pole, 0], [n_wall, n_wall, n_hidden], [0, 0, 0]]
    occluded = occluded_points(distance, surface, 0.3)
    expected = [[n_pole, 0, 0], [n_wall, n_hidden, n_hidden], [0, 0, 0]]
    assert band_counts(distance, occluded, occluded).tolist() == expected
    rates = band_rates(projection)
    assert [r["band"] for r in rates] == ["0-20 m", "20-40 m", "40-60 m", "all"]
    assert rates[1]["error"] == pytest.approx(n_hidden / n_wall)
    assert rates[3]["points"] == n_pole + n_wall
    assert rates[3]["error"] == pytest.approx(n_hidden / (n_pole + n_wall))
    assert math.isnan(rates[2]["coverage"]) and math.isnan(rates[2]["error"])


def test_band_index_edges():
    d = torch.tensor([-1.0, 0.0, 19.999, 20.0, 39.9, 40.0, 59.99, 60.0, 100.0])
    assert band_index(d).tolist() == [-1, 0, 0, 1, 1, 2, 2, -1, -1]
    assert band_index(d, (10.0, 50.0)).tolist() == [-1, -1, 0, 0, 0, 0, -1, -1, -1]
    with pytest.raises(ValueError):
        band_index(d, (20.0, 10.0))


def test_band_counts_selection_and_wrong_only_where_covered():
    d = torch.tensor([5.0, 5.0, 25.0, 45.0, 70.0])
    covered = torch.tensor([True, False, True, True, True])
    wrong = torch.tensor([True, True, False, True, True])  # the second is not covered: not counted
    assert band_counts(d, covered, wrong).tolist() == [[2, 1, 1], [1, 1, 0], [1, 1, 1]]
    selected = torch.tensor([False, True, True, True, True])
    assert band_counts(d, covered, wrong, selected=selected).tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-5.0, 80.0), st.booleans(), st.booleans()), min_size=0, max_size=30),
    st.integers(0, 30),
)
def test_band_counts_are_additive_and_ordered(rows, split):
    d = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    covered = torch.tensor([r[1] for r in rows], dtype=torch.bool)
    wrong = torch.tensor([r[2] for r in rows], dtype=torch.bool)
    total = band_counts(d, covered, wrong)
    parts = band_counts(d[:split], covered[:split], wrong[:split]) + band_counts(
        d[split:], covered[split:], wrong[split:]
    )
    assert torch.equal(total, parts)
    assert bool((total[:, 2] <= total[:, 1]).all() and (total[:, 1] <= total[:, 0]).all())
    in_bands = ((d >= DEPTH_BANDS[0]) & (d < DEPTH_BANDS[-1])).sum().item()
    assert total[:, 0].sum().item() == in_bands


def test_band_medians():
    d = torch.tensor([1.0, 2.0, 3.0, 25.0, 70.0])
    v = torch.tensor([0.5, -1.0, 4.0, 2.0, 100.0])  # the 70 m point lies outside every band
    got = band_medians(d, v)
    assert got[:2] == [0.5, 2.0] and math.isnan(got[2])
    assert got[3] == 0.5  # lower median of (-1, 0.5, 2, 4)
