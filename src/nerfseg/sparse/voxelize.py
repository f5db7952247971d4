"""Point <-> voxel maps: voxelize points (mean of point features per voxel) and devoxelize.

Base voxel index of a point = ``floor(xyz / voxel_size)`` in the scan's own ``lidar`` frame (no
offset); the voxel centre is ``(index + 0.5) * voxel_size`` metres (see :mod:`nerfseg.sparse.tensor`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nerfseg.sparse.hashing import SPATIAL_LIMIT, pack_keys, unpack_keys
from nerfseg.sparse.tensor import SparseTensor


@dataclass
class Voxelization:
    """Result of :func:`voxelize`.

    Attributes:
        tensor: SparseTensor at stride 1, coordinates sorted by key (batch, x, y, z), features the
            mean of the features of the points in each voxel.
        point_to_voxel: (N,) int64 row of each point's voxel in ``tensor``.
        counts: (M,) int64 number of points per voxel.
    """

    tensor: SparseTensor
    point_to_voxel: torch.Tensor
    counts: torch.Tensor


def voxel_indices(xyz: torch.Tensor, voxel_size: float) -> torch.Tensor:
    """(N, 3) float positions in metres -> (N, 3) int64 base voxel indices ``floor(xyz / voxel_size)``."""
    return torch.floor(xyz / voxel_size).to(torch.int64)


def voxelize(
    xyz: torch.Tensor, batch_index: torch.Tensor, feats: torch.Tensor, voxel_size: float
) -> Voxelization:
    """Group points into voxels of ``voxel_size`` metres and average their features.

    Args:
        xyz: (N, 3) float point positions in metres, each in its own scan's lidar frame.
        batch_index: (N,) int64 scan index of each point, in [0, 2**15).
        feats: (N, C) float point features to average per voxel (differentiable).
        voxel_size: edge length of a base voxel in metres (> 0).
    Returns: a :class:`Voxelization` (sparse tensor at stride 1, point->voxel rows, counts).
    Raises: ValueError when a voxel index falls outside the packable range (+-2**15 voxels, kept one
        voxel away from the limit so neighbour keys never overflow).
    """
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    n = xyz.shape[0]
    if xyz.ndim != 2 or xyz.shape[1] != 3 or feats.shape[0] != n or batch_index.shape != (n,):
        raise ValueError(
            f"voxelize expects xyz (N, 3), batch_index (N,), feats (N, C); got {tuple(xyz.shape)}, "
            f"{tuple(batch_index.shape)}, {tuple(feats.shape)}"
        )
    if not bool(torch.isfinite(xyz).all()):
        raise ValueError("voxelize: point coordinates contain NaN or infinity")
    index = voxel_indices(xyz, voxel_size)
    if index.numel() and int(index.abs().max()) >= SPATIAL_LIMIT - 1:
        raise ValueError(
            f"voxelize: a point lies {float(xyz.abs().max()):.1f} m from the origin, beyond the "
            f"{(SPATIAL_LIMIT - 1) * voxel_size:.1f} m reach of voxel size {voxel_size} m"
        )
    coords = torch.cat([batch_index.to(torch.int64)[:, None], index], dim=1)
    keys, point_to_voxel = torch.unique(pack_keys(coords), sorted=True, return_inverse=True)
    num_voxels = int(keys.numel())
    counts = torch.bincount(point_to_voxel, minlength=num_voxels)
    summed = feats.new_zeros((num_voxels, feats.shape[1])).index_add(0, point_to_voxel, feats)
    mean = summed / counts.clamp(min=1).to(feats.dtype)[:, None]
    return Voxelization(SparseTensor(unpack_keys(keys), mean, 1), point_to_voxel, counts)


def devoxelize(voxel_feats: torch.Tensor, point_to_voxel: torch.Tensor) -> torch.Tensor:
    """(M, C) voxel features, (N,) int64 point->voxel rows -> (N, C) features of each point's voxel."""
    return voxel_feats.index_select(0, point_to_voxel)


def point_offsets(
    xyz: torch.Tensor, coords: torch.Tensor, point_to_voxel: torch.Tensor, voxel_size: float
) -> torch.Tensor:
    """(N, 3) position of each point inside its stride-1 voxel, in voxel units, in [-0.5, 0.5)."""
    centre = (coords[point_to_voxel, 1:].to(xyz.dtype) + 0.5) * voxel_size
    return (xyz - centre) / voxel_size
