"""Camera-ray coverage: does a camera ray stop at the first surface, at the right depth (issue 10, item 3)?

Two measurements over the pixels of camera images whose true surface is known (the simulator's ``depth_2/``):

- :func:`camera_coverage` (a rendering): per depth band, the share of pixels rendered opaque
  (opacity >= threshold), the median |rendered - true| distance over those, and the mean opacity of the pixels
  whose surface lies outside the LiDAR's vertical field of view (no LiDAR evidence there: they should stay
  mostly transparent).
- :func:`reachable_share` (pure geometry, no model): the share of pixels whose true surface point has an
  occupied voxel of a given volume among its 8 trilinear neighbours. A render can only stop where the volume
  has support, so this bounds :func:`camera_coverage` of that volume.

"In the LiDAR's vertical field of view" (:func:`in_lidar_fov`): the surface point's inclination seen from the
LiDAR origin, ``atan2(z, hypot(x, y))`` in the LiDAR frame, lies within the scan's measured
[min, max] point inclination (:func:`lidar_inclination_range`).

Distances are metres ALONG THE RAY from the camera centre (``depth_2/`` holds z-depth: convert with
:func:`nerfseg.geometry.rays.z_depth_to_ray_distance`). A true distance of 0 or NaN means "no surface" (sky).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

DEFAULT_BANDS = (0.0, 20.0, 40.0, 60.0)
"""Depth bands (metres along the ray) of the coverage tables."""
FOV_MAX_DISTANCE = 40.0
"""The headline set: pixels whose surface is in the LiDAR's vertical FOV and at most this far (metres)."""


def lidar_inclination_range(points: torch.Tensor) -> tuple[float, float]:
    """(min, max) inclination in radians of a scan's points, ``atan2(z, hypot(x, y))``.

    Args:
        points: (N, >=3) x, y, z in the LiDAR frame, metres (N >= 1).
    """
    if points.shape[0] == 0:
        raise ValueError("lidar_inclination_range needs at least one point")
    incl = inclination(points[:, :3])
    return float(incl.min()), float(incl.max())


def inclination(points: torch.Tensor) -> torch.Tensor:
    """(P, 3) points in the LiDAR frame (metres) -> (P,) inclination from the LiDAR origin, radians."""
    points = points.double()
    return torch.atan2(points[:, 2], torch.linalg.vector_norm(points[:, :2], dim=1))


def in_lidar_fov(surface_points: torch.Tensor, inclination_range: tuple[float, float]) -> torch.Tensor:
    """(P, 3) points in the LiDAR frame (metres) -> (P,) bool: inclination within [min, max] (radians)."""
    incl = inclination(surface_points)
    lo, hi = inclination_range
    return (incl >= lo) & (incl <= hi)


def _has_surface(gt_ray_distance: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(gt_ray_distance) & (gt_ray_distance > 0)


def _stats(
    opacity: torch.Tensor, error: torch.Tensor, select: torch.Tensor, threshold: float
) -> dict[str, float | int]:
    """pixels, opaque_share, median_abs_depth_error (over the opaque ones), mean_opacity of ``select``."""
    n = int(select.sum())
    if n == 0:
        nan = math.nan
        return {"pixels": 0, "opaque_share": nan, "median_abs_depth_error": nan, "mean_opacity": nan}
    opaque = select & (opacity >= threshold)
    errors = error[opaque]
    return {
        "pixels": n,
        "opaque_share": float(opaque.sum()) / n,
        "median_abs_depth_error": float(errors.median()) if errors.numel() else math.nan,
        "mean_opacity": float(opacity[select].double().mean()),
    }


def _band_masks(
    gt_ray_distance: torch.Tensor, bands: Sequence[float]
) -> list[tuple[float, float, torch.Tensor]]:
    surface = _has_surface(gt_ray_distance)
    d = torch.nan_to_num(gt_ray_distance.double(), nan=0.0)
    return [(lo, hi, surface & (d > lo) & (d <= hi)) for lo, hi in zip(bands[:-1], bands[1:], strict=True)]


def camera_coverage(
    opacity: torch.Tensor,
    rendered_depth: torch.Tensor,
    gt_ray_distance: torch.Tensor,
    in_fov: torch.Tensor,
    bands: Sequence[float] = DEFAULT_BANDS,
    opacity_threshold: float = 0.5,
    fov_max_distance: float = FOV_MAX_DISTANCE,
) -> dict:
    """Coverage of a camera rendering against the true surface distances.

    Args:
        opacity: (P,) rendered opacity A in [0, 1].
        rendered_depth: (P,) rendered surface distance along the ray, metres (``D / A`` of the renderer).
        gt_ray_distance: (P,) true surface distance along the ray, metres; 0 or NaN = no surface.
        in_fov: (P,) bool, the true surface point lies in the LiDAR's vertical FOV (:func:`in_lidar_fov`).
        bands: increasing band edges, metres; band ``(lo, hi]`` of the true distance.
        opacity_threshold: a pixel is opaque when its opacity is at least this.
        fov_max_distance: the distance limit of the headline set ``in_fov_near``.

    Returns:
        dict with
        ``bands``: per band ``{"lo", "hi", "all": stats, "in_fov": stats}`` over pixels with a surface;
        ``in_fov_near``: stats of the pixels in the FOV with a surface at most ``fov_max_distance`` away;
        ``out_of_fov``: stats of the pixels with a surface outside the FOV (their ``mean_opacity`` should be
        low); ``no_surface``: stats of the pixels with no surface (sky).
        stats = ``{"pixels", "opaque_share", "median_abs_depth_error" (metres, over the opaque pixels),
        "mean_opacity"}`` (NaN where no pixel qualifies).
    """
    opacity = opacity.detach().double().reshape(-1).cpu()
    depth = rendered_depth.detach().double().reshape(-1).cpu()
    gt = gt_ray_distance.double().reshape(-1).cpu()
    in_fov = in_fov.reshape(-1).bool().cpu()
    if not opacity.shape == depth.shape == gt.shape == in_fov.shape:
        raise ValueError(
            "camera_coverage: opacity, rendered_depth, gt_ray_distance and in_fov must have one shape, got "
            f"{tuple(opacity.shape)}, {tuple(depth.shape)}, {tuple(gt.shape)}, {tuple(in_fov.shape)}"
        )
    error = torch.nan_to_num((depth - gt).abs(), nan=math.inf)
    surface = _has_surface(gt)
    bands_out = [
        {
            "lo": lo,
            "hi": hi,
            "all": _stats(opacity, error, mask, opacity_threshold),
            "in_fov": _stats(opacity, error, mask & in_fov, opacity_threshold),
        }
        for lo, hi, mask in _band_masks(gt, bands)
    ]
    near = surface & in_fov & (torch.nan_to_num(gt, nan=0.0) <= fov_max_distance)
    return {
        "bands": bands_out,
        "in_fov_near": _stats(opacity, error, near, opacity_threshold),
        "out_of_fov": _stats(opacity, error, surface & ~in_fov, opacity_threshold),
        "no_surface": _stats(opacity, error, ~surface, opacity_threshold),
    }


def reachable(grid, points: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
    """(P,) bool: some occupied voxel of ``grid`` is among the 8 trilinear neighbours of each point.

    Args:
        grid: a :class:`~nerfseg.models.nerf.field.VoxelGrid` (its voxel size and support).
        points: (P, 3) metres in the scan's LiDAR frame; batch: (P,) int64 scan index (default 0).
    """
    if batch is None:
        batch = torch.zeros(points.shape[0], dtype=torch.int64, device=points.device)
    keys, _ = grid.base_keys(points.to(grid.device), batch.to(grid.device))
    return grid.occupied(keys)


def reachable_share(
    grid,
    surface_points: torch.Tensor,
    gt_ray_distance: torch.Tensor,
    in_fov: torch.Tensor,
    batch: torch.Tensor | None = None,
    bands: Sequence[float] = DEFAULT_BANDS,
    fov_max_distance: float = FOV_MAX_DISTANCE,
) -> dict:
    """The geometric bound of a volume: the share of pixels whose true surface point is :func:`reachable`.

    Args:
        grid: the volume (:class:`~nerfseg.models.nerf.field.VoxelGrid`).
        surface_points: (P, 3) true surface points in the LiDAR frame, metres (ignored where no surface).
        gt_ray_distance: (P,) metres along the ray, 0 / NaN = no surface (selects pixels and bands).
        in_fov: (P,) bool (:func:`in_lidar_fov`); batch: (P,) scan index (default 0).

    Returns:
        ``{"bands": [{"lo", "hi", "all", "in_fov"}], "in_fov_near", "out_of_fov"}``, each a share in [0, 1]
        (NaN where no pixel qualifies), with the same pixel sets as :func:`camera_coverage`.
    """
    gt = gt_ray_distance.double().reshape(-1).cpu()
    in_fov = in_fov.reshape(-1).bool().cpu()
    points = torch.nan_to_num(surface_points.float(), nan=0.0)
    hit = reachable(grid, points, batch).cpu()

    def share(mask: torch.Tensor) -> float:
        n = int(mask.sum())
        return float((hit & mask).sum()) / n if n else math.nan

    surface = _has_surface(gt)
    near = surface & in_fov & (torch.nan_to_num(gt, nan=0.0) <= fov_max_distance)
    return {
        "bands": [
            {"lo": lo, "hi": hi, "all": share(mask), "in_fov": share(mask & in_fov)}
            for lo, hi, mask in _band_masks(gt, bands)
        ],
        "in_fov_near": share(near),
        "out_of_fov": share(surface & ~in_fov),
    }
