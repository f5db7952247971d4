"""The sparse tensor: integer voxel coordinates with a batch index, features, and a stride.

Coordinate convention (all strides): ``coords[:, 0]`` is the batch index (scan) and
``coords[:, 1:]`` are integer voxel indices along the x, y, z axes of the scan's own ``lidar`` frame.
At stride 1 the index of a point at ``xyz`` metres is ``floor(xyz / voxel_size)`` (no offset); the
voxel covers ``[i, i+1) * voxel_size`` and its centre is ``(i + 0.5) * voxel_size``. At stride
``s`` (a power of two) the index is ``floor(base_index / s)``: voxel ``i`` covers base indices
``[i*s, (i+1)*s)``, i.e. ``[i*s, (i+1)*s) * voxel_size`` metres, centre ``(i + 0.5) * s * voxel_size``.
Neighbours therefore differ by 1 in index at every stride.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nerfseg.sparse.kernel_map import KernelMapCache


@dataclass
class SparseTensor:
    """Features on a set of occupied voxels.

    Attributes:
        coords: (M, 4) int64 unique coordinates [batch, x, y, z] at ``stride`` (see module docstring).
        feats: (M, C) float features, row i belongs to ``coords[i]``.
        stride: voxel size of this level in base voxels (1, 2, 4, ...).
        cache: kernel maps shared by all tensors derived from the same voxelization.
    """

    coords: torch.Tensor
    feats: torch.Tensor
    stride: int = 1
    cache: KernelMapCache = field(default_factory=KernelMapCache, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.coords.ndim != 2 or self.coords.shape[1] != 4:
            raise ValueError(f"SparseTensor coords must have shape (M, 4), got {tuple(self.coords.shape)}")
        if self.feats.ndim != 2 or self.feats.shape[0] != self.coords.shape[0]:
            raise ValueError(
                f"SparseTensor feats must have shape (M, C) with M={self.coords.shape[0]}, "
                f"got {tuple(self.feats.shape)}"
            )

    @property
    def num_voxels(self) -> int:
        return int(self.coords.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.feats.shape[1])

    def replace(self, feats: torch.Tensor) -> SparseTensor:
        """Same voxels, stride and cache with new (M, C') features."""
        return SparseTensor(self.coords, feats, self.stride, self.cache)

    def centres(self, voxel_size: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(M, 3) voxel centres in metres in the scan's lidar frame: (index + 0.5) * stride * voxel_size."""
        return (self.coords[:, 1:].to(dtype) + 0.5) * (self.stride * voxel_size)

    def to_dense(self, shape: tuple[int, int, int], batch_size: int) -> torch.Tensor:
        """(B, C, X, Y, Z) dense grid with the features at their (non-negative) coordinates, zero elsewhere.

        For tests and small grids only; coordinates must lie in [0, shape).
        """
        dense = self.feats.new_zeros((batch_size, *shape, self.num_channels))
        c = self.coords
        dense[c[:, 0], c[:, 1], c[:, 2], c[:, 3]] = self.feats
        return dense.permute(0, 4, 1, 2, 3)
