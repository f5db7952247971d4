"""Parallax scoring (issue 10, item 7): how often a camera-visible LiDAR point gets a wrong label from the
projection path against the ray path, per depth band.

All distances are metres along the camera ray, from the camera centre at its capture time, in the scan's
`lidar` frame (what the head renders as depth and what ``z_depth_to_ray_distance`` gives for ``depth_2/``).
The functions are pure and vectorised; the benchmark ``benchmarks/parallax_labels.py`` feeds them.

- :func:`rays_through_points`: the camera ray through each point and the point's distance along it;
- :func:`occluded_points`: the oracle test, a point farther than the first surface on its ray by more than
  a tolerance is hidden from the camera (projection gives it the occluder's pixel);
- :func:`depth_agrees`: a point takes its ray's rendered label only where the rendered depth agrees with its
  distance;
- :func:`band_counts` / :func:`band_rates`: per-band tallies (additive over frames) and their shares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

DEPTH_BANDS: tuple[float, ...] = (0.0, 20.0, 40.0, 60.0)
"""Band edges in metres from the camera: bands [0, 20), [20, 40), [40, 60)."""

COUNT_FIELDS = ("points", "covered", "wrong")
"""Columns of :func:`band_counts`: points in the band, points that got a label, covered points labelled
wrong."""


def rays_through_points(origin: torch.Tensor, xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The camera ray from ``origin`` through each point.

    Args:
        origin: (3,) camera centre in the scan's `lidar` frame, metres.
        xyz: (N, 3+) points in the same frame, metres (only the first three columns are read).
    Returns:
        directions: (N, 3) unit vectors (dtype of ``xyz``, float32 for integer input); a point at the
            camera centre gets (0, 0, 0);
        distance: (N,) metres, ``xyz = origin + distance * direction``.
    """
    points = xyz[:, :3]
    if not points.dtype.is_floating_point:
        points = points.float()
    offsets = points - origin.to(points)
    distance = torch.linalg.vector_norm(offsets, dim=1)
    directions = offsets / distance.clamp_min(torch.finfo(points.dtype).tiny).unsqueeze(1)
    return directions, distance


def occluded_points(
    point_distance: torch.Tensor, surface_distance: torch.Tensor, tolerance: float
) -> torch.Tensor:
    """Points hidden from the camera: farther along their ray than its first surface by over ``tolerance``.

    Args:
        point_distance: (N,) distance camera -> point along the ray, metres.
        surface_distance: (N,) distance to the first surface on the same ray (e.g. ``depth_2/`` converted with
            ``z_depth_to_ray_distance``), metres; <= 0 means the ray hits nothing (no occluder).
        tolerance: metres (>= 0), e.g. two voxels of the render volume.
    Returns:
        (N,) bool.
    """
    if tolerance < 0:
        raise ValueError(f"occluded_points: tolerance must be >= 0 metres, got {tolerance}")
    if point_distance.shape != surface_distance.shape:
        raise ValueError(f"occluded_points: shapes {tuple(point_distance.shape)} and "
                         f"{tuple(surface_distance.shape)} differ")
    surface = surface_distance.to(point_distance.dtype)
    return (surface > 0) & (point_distance > surface + tolerance)


def depth_agrees(
    depth: torch.Tensor,
    opacity: torch.Tensor,
    point_distance: torch.Tensor,
    tolerance: float,
    min_opacity: float = 0.5,
) -> torch.Tensor:
    """Rays whose rendered surface is the point: the point may take the ray's rendered label.

    The rendered surface distance is the expected termination depth ``D / A`` (RenderOutput.depth is
    ``D = sum_i w_i t_i``, not normalised); a ray less opaque than ``min_opacity`` has no surface (its
    ``D / A`` is an average over almost nothing).

    Args:
        depth: (N,) rendered D, metres from the camera centre.
        opacity: (N,) rendered A in [0, 1].
        point_distance: (N,) distance camera -> point, metres.
        tolerance: metres (>= 0): agreement is ``|D / A - distance| <= tolerance``.
        min_opacity: in [0, 1].
    Returns:
        (N,) bool.
    """
    if tolerance < 0 or not 0.0 <= min_opacity <= 1.0:
        raise ValueError(f"depth_agrees: need tolerance >= 0 and min_opacity in [0, 1], got {tolerance}, "
                         f"{min_opacity}")
    if not depth.shape == opacity.shape == point_distance.shape:
        raise ValueError(f"depth_agrees: shapes {tuple(depth.shape)}, {tuple(opacity.shape)}, "
                         f"{tuple(point_distance.shape)} differ")
    surface = depth / opacity.clamp_min(1e-6)
    return (opacity >= min_opacity) & ((surface - point_distance.to(surface.dtype)).abs() <= tolerance)


def band_index(distance: torch.Tensor, edges: Sequence[float] = DEPTH_BANDS) -> torch.Tensor:
    """(N,) int64 band of each distance: b where ``edges[b] <= distance < edges[b + 1]``, else -1.

    Args:
        distance: (N,) metres.
        edges: B + 1 increasing band edges in metres.
    """
    edges_t = torch.as_tensor(edges, dtype=torch.float64, device=distance.device)
    if edges_t.ndim != 1 or edges_t.numel() < 2 or bool((edges_t[1:] <= edges_t[:-1]).any()):
        raise ValueError(f"band_index: edges must be >= 2 increasing values, got {list(edges)}")
    band = torch.bucketize(distance.to(torch.float64), edges_t, right=True) - 1
    inside = (band >= 0) & (band < edges_t.numel() - 1)
    return torch.where(inside, band, torch.full_like(band, -1))


def band_counts(
    distance: torch.Tensor,
    covered: torch.Tensor,
    wrong: torch.Tensor,
    edges: Sequence[float] = DEPTH_BANDS,
    selected: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-band tallies of labelled points (additive: sum them over frames and cameras).

    Args:
        distance: (N,) camera -> point distance, metres (picks the band).
        covered: (N,) bool, the point got a label from the path scored.
        wrong: (N,) bool, that label differs from the point's ground truth (only read where covered).
        edges: B + 1 band edges in metres.
        selected: optional (N,) bool: count only these points (default all).
    Returns:
        (B, 3) int64 columns :data:`COUNT_FIELDS`: points, covered points, covered points labelled wrong.
    """
    n = distance.shape[0]
    if distance.shape != (n,) or covered.shape != (n,) or wrong.shape != (n,):
        raise ValueError(f"band_counts: expected (N,) tensors, got {tuple(distance.shape)}, "
                         f"{tuple(covered.shape)}, {tuple(wrong.shape)}")
    num_bands = len(edges) - 1
    band = band_index(distance, edges)
    keep = band >= 0
    if selected is not None:
        keep &= selected.to(torch.bool)
    covered = covered.to(torch.bool) & keep
    columns = [keep, covered, covered & wrong.to(torch.bool)]
    return torch.stack([torch.bincount(band[c], minlength=num_bands)[:num_bands] for c in columns], dim=1)


def band_rates(counts: torch.Tensor, edges: Sequence[float] = DEPTH_BANDS) -> list[dict]:
    """Shares of :func:`band_counts` tallies, one dict per band plus a last one over all bands.

    Args:
        counts: (B, 3) int64 tallies (points, covered, wrong).
        edges: the B + 1 band edges they were counted with, metres.
    Returns:
        B + 1 dicts ``{"band": "0-20 m" | "all", "points", "covered", "wrong", "coverage" (covered / points),
        "error" (wrong / covered)}``; a share with a zero denominator is NaN.
    """
    if counts.ndim != 2 or counts.shape != (len(edges) - 1, len(COUNT_FIELDS)):
        raise ValueError(f"band_rates: expected ({len(edges) - 1}, 3) counts, got {tuple(counts.shape)}")
    names = [f"{edges[b]:g}-{edges[b + 1]:g} m" for b in range(len(edges) - 1)] + ["all"]
    rows = torch.cat([counts, counts.sum(dim=0, keepdim=True)]).tolist()

    def share(a: int, b: int) -> float:
        return a / b if b else math.nan

    return [
        {"band": name, "points": p, "covered": c, "wrong": w, "coverage": share(c, p), "error": share(w, c)}
        for name, (p, c, w) in zip(names, rows, strict=True)
    ]


def band_medians(
    distance: torch.Tensor, values: torch.Tensor, edges: Sequence[float] = DEPTH_BANDS
) -> list[float]:
    """Median of ``values`` per band (lower median, as ``torch.median``), then over all bands; NaN for an
    empty band.

    Args:
        distance: (N,) camera -> point distance, metres (picks the band).
        values: (N,) e.g. signed rendered-depth errors in metres.
        edges: B + 1 band edges in metres.
    Returns:
        B + 1 floats.
    """
    if distance.shape != values.shape or distance.ndim != 1:
        raise ValueError(f"band_medians: expected two (N,) tensors, got {tuple(distance.shape)}, "
                         f"{tuple(values.shape)}")
    band = band_index(distance, edges)
    picks = [band == b for b in range(len(edges) - 1)] + [band >= 0]
    return [float(values[p].median()) if bool(p.any()) else math.nan for p in picks]
