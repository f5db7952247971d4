"""Where a ray can meet density: the box around each scan's render volume (camera rays spend most of their
samples in the sky and beyond the scan, where every sample is an empty-space lookup).

A sample at ``p`` has density only when a voxel among its 8 trilinear neighbours exists
(``VoxelGrid.occupied``): with base ``b = floor(p / cell - 0.5)`` and corners ``b`` and ``b + 1``, a
voxel ``v`` is a neighbour when ``p / cell - 0.5`` lies in ``[v - 1, v + 1)``, i.e. ``p`` in
``[(v - 0.5) cell, (v + 1.5) cell)``. So the box ``[(min v - 0.5) cell, (max v + 1.5) cell]`` per axis holds
every sample that can carry density.
"""

from __future__ import annotations

import torch


def volume_bounds(coords: torch.Tensor, cell: float, num_scans: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-scan boxes of the render volume.

    Args:
        coords: (M, 4) int [scan, i, j, k] cell indices; cell: cell edge in metres; num_scans: B.

    Returns:
        lo, hi: (B, 3) float32 corners in each scan's LiDAR frame, metres (lo = +inf, hi = -inf for a scan
        without cells, so every ray misses it).
    """
    device = coords.device
    scan = coords[:, 0].long()
    ijk = coords[:, 1:].float()
    lo = torch.full((num_scans, 3), float("inf"), device=device)
    hi = torch.full((num_scans, 3), float("-inf"), device=device)
    index = scan.unsqueeze(1).expand(-1, 3)
    lo = lo.scatter_reduce(0, index, ijk, reduce="amin")
    hi = hi.scatter_reduce(0, index, ijk, reduce="amax")
    return (lo - 0.5) * cell, (hi + 1.5) * cell


def clip_to_boxes(
    origins: torch.Tensor,
    dirs: torch.Tensor,
    scan: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    near: float,
    far: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The part of each ray's [near, far] inside its scan's box (slab test).

    Args:
        origins, dirs: (R, 3) metres / unit directions in the scan's LiDAR frame; scan: (R,) int64.
        lo, hi: (B, 3) boxes (:func:`volume_bounds`); near, far: the ray interval, metres.

    Returns:
        near (R,), far (R,) float32 clipped distances and hit (R,) bool (False: the ray never enters the box
        within [near, far]; its clipped interval is then empty).
    """
    box_lo, box_hi = lo[scan], hi[scan]
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    t1 = (box_lo - origins) * inv
    t2 = (box_hi - origins) * inv
    enter = torch.minimum(t1, t2).amax(dim=1).nan_to_num(nan=float("inf")).clamp_min(near)
    leave = torch.maximum(t1, t2).amin(dim=1).nan_to_num(nan=float("-inf")).clamp_max(far)
    hit = leave > enter
    return enter.where(hit, torch.full_like(enter, near)), leave.where(hit, torch.full_like(leave, near)), hit
