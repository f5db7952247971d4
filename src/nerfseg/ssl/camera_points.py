"""Camera pseudo-labels carried from the teacher's rendered pixels to the LiDAR points of the same scan
(the ``nerf`` methods' optional point route, ``ssl.camera.points``).

The render loss reaches the point classifier only through the voxel features. This route gives the fused
pixel pseudo-labels to the points directly, where the render says the point IS the surface that pixel sees:

1. each point of the teacher's view projects into the camera (its capture-time transform) and lands in one
   cell of the reduced :class:`~nerfseg.geometry.rays.PixelGrid` (cell (i, j) is full-resolution block
   ``[s*i, s*i + s) x [s*j, s*j + s)``);
2. the point takes the cell's fused pseudo-label only where that cell's teacher ray is opaque and its
   rendered surface distance ``D / A`` agrees with the point's distance from the camera centre within a
   tolerance (:func:`nerfseg.ssl.parallax_eval.depth_agrees`): a point hidden behind the cell's surface
   (parallax), or one the ray slipped past, gets nothing.

Distances are metres from the camera centre in the scan's `lidar` frame. Pure and vectorised.
"""

from __future__ import annotations

import torch

from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.geometry.rays import PixelGrid
from nerfseg.ssl.parallax_eval import depth_agrees, rays_through_points
from nerfseg.ssl.projection import project_to_pixels


def grid_cells_of_pixels(pixels: torch.Tensor, visible: torch.Tensor, grid: PixelGrid) -> torch.Tensor:
    """Flat reduced-grid cell of each full-resolution pixel.

    Args:
        pixels: (N, 2) int64 ``(col, row)`` full-resolution pixels (as :func:`project_to_pixels` gives).
        visible: (N,) bool, the pixel is inside the image.
        grid: the reduced grid (its ``stride``; cells row-major over ``grid.shape`` = (H', W')).
    Returns:
        (N,) int64 ``row' * W' + col'`` with ``col' = col // stride``, ``row' = row // stride``; -1 where not
        visible or in a partial block beyond the grid's last cell.
    """
    h, w = grid.shape
    cols = torch.div(pixels[:, 0], grid.stride, rounding_mode="floor")
    rows = torch.div(pixels[:, 1], grid.stride, rounding_mode="floor")
    inside = visible & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    flat = rows * w + cols
    return torch.where(inside, flat, torch.full_like(flat, -1))


def camera_point_cells(
    xyz: torch.Tensor,
    camera,
    grid: PixelGrid,
    surface_depth: torch.Tensor,
    opacity: torch.Tensor,
    tolerance: float,
    min_opacity: float,
) -> torch.Tensor:
    """The reduced-grid cell whose rendered surface each point of one scan is, from one camera.

    Args:
        xyz: (N, 3+) the scan's points in its `lidar` frame (the view the teacher rendered), metres.
        camera: that view's CameraFrame (``K``, ``lidar_to_cam``, ``cam_to_lidar``, ``image_size``).
        grid: the reduced grid the teacher rendered.
        surface_depth: (H', W') rendered ``D`` (sum of weight x distance, not divided by opacity), metres.
        opacity: (H', W') rendered opacity ``A`` in [0, 1].
        tolerance: metres: the point's distance must be within this of the rendered surface ``D / A``.
        min_opacity: a cell ray less opaque than this has no surface.
    Returns:
        (N,) int64 flat cell ``row' * W' + col'`` on the device of ``surface_depth``; -1 where the point is
        outside the image or is not its cell's surface.
    """
    device = surface_depth.device
    if surface_depth.shape != grid.shape or opacity.shape != grid.shape:
        raise ValueError(
            f"camera_point_cells: grid {grid.shape}, got depth {tuple(surface_depth.shape)}, "
            f"opacity {tuple(opacity.shape)}"
        )
    points = xyz[:, :3].to(device)
    out = torch.full((points.shape[0],), -1, dtype=torch.int64, device=device)
    pixels, visible = project_to_pixels(points, camera.K, camera.lidar_to_cam, camera.image_size)
    cells = grid_cells_of_pixels(pixels.to(device), visible.to(device), grid)
    seen = torch.nonzero(cells >= 0).squeeze(1)
    if seen.numel() == 0:
        return out
    cell = cells[seen]
    origin = torch.as_tensor(camera.cam_to_lidar[:3, 3], dtype=points.dtype, device=device)
    _, distance = rays_through_points(origin, points[seen])
    agrees = depth_agrees(
        surface_depth.reshape(-1)[cell].to(distance.dtype),
        opacity.reshape(-1)[cell].to(distance.dtype),
        distance,
        tolerance,
        min_opacity,
    )
    out[seen] = torch.where(agrees, cell, torch.full_like(cell, -1))
    return out


def camera_point_labels(
    xyz: torch.Tensor,
    camera,
    grid: PixelGrid,
    pixel_labels: torch.Tensor,
    surface_depth: torch.Tensor,
    opacity: torch.Tensor,
    tolerance: float,
    min_opacity: float,
) -> torch.Tensor:
    """Pseudo-labels of one scan's points from one camera's fused pixel labels: each point takes the label of
    the cell whose surface it is (:func:`camera_point_cells`).

    Args:
        xyz, camera, grid, surface_depth, opacity, tolerance, min_opacity: as :func:`camera_point_cells`.
        pixel_labels: (H', W') int64 fused pseudo-labels on the grid, IGNORE_INDEX where none.
    Returns:
        (N,) int64 labels on the device of ``pixel_labels``, IGNORE_INDEX where the point gets none.
    """
    if pixel_labels.shape != grid.shape or surface_depth.shape != grid.shape or opacity.shape != grid.shape:
        raise ValueError(
            f"camera_point_labels: grid {grid.shape}, got labels {tuple(pixel_labels.shape)}, depth "
            f"{tuple(surface_depth.shape)}, opacity {tuple(opacity.shape)}"
        )
    cells = camera_point_cells(xyz, camera, grid, surface_depth, opacity, tolerance, min_opacity)
    cells = cells.to(pixel_labels.device)
    labels = pixel_labels.reshape(-1)[cells.clamp_min(0)]
    return torch.where(cells >= 0, labels, torch.full_like(labels, IGNORE_INDEX))


def veto_by_surface_points(
    pixel_labels: torch.Tensor,
    cells: torch.Tensor,
    point_class: torch.Tensor,
    point_confidence: torch.Tensor,
    min_confidence: float,
) -> torch.Tensor:
    """Drop the pixel pseudo-labels that a confident point classifier contradicts at the cell's surface.

    Args:
        pixel_labels: (H', W') int64 fused pseudo-labels on the reduced grid, IGNORE_INDEX where none.
        cells: (N,) int64 flat cell whose rendered surface each point is, -1 where none
            (:func:`camera_point_cells`).
        point_class / point_confidence: (N,) int64 argmax class and (N,) float its probability, of the same
            points (the teacher's point classifier, :class:`nerfseg.ssl.methods.TeacherPoints`).
        min_confidence: a point vetoes only where its confidence is >= this.
    Returns:
        (H', W') int64: ``pixel_labels`` with IGNORE_INDEX in every cell that holds a surface point whose
        confident class differs from the cell's label; cells with no such point are unchanged.
    """
    if not cells.shape[0] == point_class.shape[0] == point_confidence.shape[0]:
        raise ValueError(f"veto_by_surface_points: {cells.shape[0]} cells for {point_class.shape[0]} point "
                         f"classes and {point_confidence.shape[0]} confidences")
    flat = pixel_labels.reshape(-1)
    point_class = point_class.to(flat.device)
    cells = cells.to(flat.device)
    on_surface = cells >= 0
    cell_label = flat[cells.clamp_min(0)]
    vetoes = on_surface & (cell_label != IGNORE_INDEX) & (point_class != cell_label)
    vetoes &= point_confidence.to(flat.device) >= min_confidence
    vetoed = torch.zeros_like(flat, dtype=torch.bool)
    vetoed[cells[vetoes]] = True
    return torch.where(vetoed, torch.full_like(flat, IGNORE_INDEX), flat).view_as(pixel_labels)
