"""The point route of the nerf methods: fused pixel labels carried to the points the render says they see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nerfseg.data.sample import IGNORE_INDEX, CameraFrame
from nerfseg.geometry.rays import PixelGrid
from nerfseg.geometry.transforms import make_transform
from nerfseg.ssl.camera_points import (
    camera_point_cells,
    camera_point_labels,
    grid_cells_of_pixels,
    veto_by_surface_points,
)

I = IGNORE_INDEX
K = np.array([[100.0, 0, 50], [0, 100, 20], [0, 0, 1]])  # 100 x 40 image
CAMERA = CameraFrame("cam", Path("cam.png"), K, make_transform(np.eye(3), [0.0, 0.0, 0.0]), 0.0, (100, 40))


def test_grid_cells_hand_values():
    grid = PixelGrid(10, 6, 4)  # W' = ceil((10 - 2) / 4) = 2, H' = ceil((6 - 2) / 4) = 1
    assert grid.shape == (1, 2)
    pixels = torch.tensor([[0, 0], [3, 3], [5, 3], [7, 0], [9, 5], [2, 2]])
    visible = torch.tensor([True, True, True, True, True, False])
    # (9, 5) lies in the partial block right of the last cell's block; (2, 2) is not visible
    assert grid_cells_of_pixels(pixels, visible, grid).tolist() == [0, 0, 1, 1, -1, -1]


def test_grid_cells_match_the_grid_pixel_of_each_block():
    """Every full-resolution pixel maps to the cell whose ray goes through its block's centre pixel."""
    grid = PixelGrid(37, 23, 5)
    h, w = grid.shape
    centres = grid.pixels  # (H' * W', 2) (col, row), row-major
    cells = grid_cells_of_pixels(centres, torch.ones(len(grid), dtype=torch.bool), grid)
    assert cells.tolist() == list(range(h * w))
    shifted = centres + torch.tensor([2, -2])  # still inside each 5 x 5 block (offset 2)
    everywhere = torch.ones(len(grid), dtype=torch.bool)
    assert grid_cells_of_pixels(shifted, everywhere, grid).tolist() == cells.tolist()


def _scene():
    """A pole 5 m in front of the camera, a wall 20 m behind it; camera frame = lidar frame (z forward)."""
    pole = [(x, y, 5.0) for x in (-0.04, 0.0, 0.04) for y in (-0.5, 0.0, 0.5)]  # columns 49-50
    wall = [(x, y, 20.0) for x in (-3.0, -1.5, 0.0, 0.05, 1.5, 3.0) for y in (0.0, 0.5)]  # x = 0 hides
    outside = [(30.0, 0.0, 5.0), (0.0, 0.0, -5.0)]  # right of the image, behind the camera
    points = torch.tensor(pole + wall + outside, dtype=torch.float64)
    return points, len(pole), len(wall)


def _exact_render(points: torch.Tensor, grid: PixelGrid):
    """What an exact render of the scene gives: per cell the first surface (the nearest point's distance),
    as (depth D = A * distance, opacity A: 1 where a point is seen, else 0), both (H', W'), and each point's
    cell (-1 outside the image)."""
    from nerfseg.ssl.projection import project_to_pixels

    pixels, visible = project_to_pixels(points, K, CAMERA.lidar_to_cam, CAMERA.image_size)
    cells = grid_cells_of_pixels(pixels, visible, grid)
    distance = torch.linalg.vector_norm(points, dim=1)
    surface = torch.full((len(grid),), float("inf"), dtype=torch.float64)
    seen = cells >= 0
    surface.scatter_reduce_(0, cells[seen], distance[seen], reduce="amin")
    opaque = torch.isfinite(surface)
    depth = torch.where(opaque, surface, torch.zeros_like(surface))
    return depth.view(grid.shape), opaque.double().view(grid.shape), cells


@pytest.mark.parametrize("stride", [1, 4])
def test_points_take_their_cell_label_only_where_they_are_the_surface(stride):
    points, n_pole, n_wall = _scene()
    grid = PixelGrid(*CAMERA.image_size, stride)
    depth, opacity, cells = _exact_render(points, grid)
    labels = torch.full((len(grid),), 7, dtype=torch.int64)  # 7 where only the wall is seen
    labels[cells[:n_pole]] = 1  # the pole's cells
    got = camera_point_labels(
        points, CAMERA, grid, labels.view(grid.shape), depth, opacity, tolerance=0.3, min_opacity=0.5,
    )
    pole, wall, outside = got[:n_pole], got[n_pole:n_pole + n_wall], got[n_pole + n_wall:]
    assert pole.tolist() == [1] * n_pole
    hidden = torch.isin(cells[n_pole:n_pole + n_wall], cells[:n_pole])  # wall points behind the pole's cells
    assert bool(hidden.any())
    assert wall[hidden].tolist() == [I] * int(hidden.sum())  # parallax: no label, not the pole's
    assert wall[~hidden].tolist() == [7] * int((~hidden).sum())
    assert outside.tolist() == [I, I]


def test_transparent_cells_and_unlabeled_pixels_give_nothing():
    points, n_pole, _ = _scene()
    grid = PixelGrid(*CAMERA.image_size, 1)
    depth, opacity, cells = _exact_render(points, grid)
    labels = torch.full((len(grid),), 3, dtype=torch.int64)
    labels[cells[0]] = I  # the first pole point's pixel has no pseudo-label
    # every ray 40 % opaque: no surface anywhere
    got = camera_point_labels(points, CAMERA, grid, labels.view(grid.shape), depth * 0.4, opacity * 0.4,
                              tolerance=0.3, min_opacity=0.5)
    assert (got == I).all()
    got = camera_point_labels(points, CAMERA, grid, labels.view(grid.shape), depth, opacity,
                              tolerance=0.3, min_opacity=0.5)
    assert got[0] == I and (got[1:n_pole] == 3).all()


@pytest.mark.parametrize("stride", [1, 4])
def test_point_cells_are_the_visible_surface_cells_and_carry_the_labels(stride):
    points, n_pole, n_wall = _scene()
    grid = PixelGrid(*CAMERA.image_size, stride)
    depth, opacity, cells = _exact_render(points, grid)
    got = camera_point_cells(points, CAMERA, grid, depth, opacity, tolerance=0.3, min_opacity=0.5)
    hidden = torch.zeros(len(points), dtype=torch.bool)
    hidden[n_pole:n_pole + n_wall] = torch.isin(cells[n_pole:n_pole + n_wall], cells[:n_pole])
    expected = torch.where(hidden, torch.full_like(cells, -1), cells)  # cells is -1 outside the image
    assert got.tolist() == expected.tolist()
    # the labels are the cells' labels, read through these cells
    labels = torch.randint(0, 5, grid.shape, generator=torch.Generator().manual_seed(0))
    labels.view(-1)[::7] = I
    routed = camera_point_labels(points, CAMERA, grid, labels, depth, opacity, tolerance=0.3, min_opacity=0.5)
    read = torch.where(got >= 0, labels.view(-1)[got.clamp_min(0)], torch.full_like(got, I))
    assert routed.tolist() == read.tolist()


def test_shape_mismatch_is_an_error():
    grid = PixelGrid(*CAMERA.image_size, 4)
    bad = torch.zeros((3, 3))
    with pytest.raises(ValueError, match="camera_point_labels"):
        camera_point_labels(torch.zeros((1, 3)), CAMERA, grid, bad.long(), bad, bad, 0.3, 0.5)
    with pytest.raises(ValueError, match="camera_point_cells"):
        camera_point_cells(torch.zeros((1, 3)), CAMERA, grid, bad, bad, 0.3, 0.5)


def test_veto_by_surface_points_hand_computed():
    i = IGNORE_INDEX
    labels = torch.tensor([[0, 1, 2], [3, i, 1]])
    # point -> flat cell (-1: not a surface); the point's class probabilities over 4 classes
    cells = torch.tensor([0, 1, 1, 2, 4, 5, -1, 3])
    probs = torch.tensor([
        [0.10, 0.90, 0.00, 0.00],  # cell 0 (label 0): sure of 1 -> veto
        [0.00, 0.95, 0.05, 0.00],  # cell 1 (label 1): agrees
        [0.00, 0.00, 0.50, 0.50],  # cell 1: disagrees but unsure -> no veto
        [0.00, 0.00, 1.00, 0.00],  # cell 2 (label 2): agrees
        [1.00, 0.00, 0.00, 0.00],  # cell 4 (no label): nothing to veto
        [0.00, 0.00, 0.00, 0.80],  # cell 5 (label 1): sure of 3 -> veto
        [0.00, 0.00, 0.00, 1.00],  # not a surface point: no veto
        [0.00, 0.00, 0.00, 0.70],  # cell 3 (label 3): agrees
    ])
    confidence, point_class = probs.max(dim=1)  # as the teacher's TeacherPoints hold them

    def veto(threshold: float, cells=cells) -> list:
        return veto_by_surface_points(labels, cells, point_class, confidence, threshold).tolist()

    assert veto(0.8) == [[i, 1, 2], [3, i, i]]
    assert veto(0.5) == [[i, i, 2], [3, i, i]]
    assert veto(0.95) == [[0, 1, 2], [3, i, 1]]
    with pytest.raises(ValueError, match="7 cells for 8 point classes"):
        veto(0.8, cells[:7])
