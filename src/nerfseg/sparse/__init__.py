"""Sparse voxel tensors and convolutions in pure PyTorch (CPU and CUDA): see DESIGN.md, backbone."""

from nerfseg.sparse.conv import DownConv3d, SubmanifoldConv3d, UpConv3d, sparse_conv
from nerfseg.sparse.hashing import VoxelHash, pack_keys, unpack_keys
from nerfseg.sparse.kernel_map import (
    KernelMap,
    KernelMapCache,
    cube_offsets,
    downsampling_map,
    submanifold_map,
)
from nerfseg.sparse.layers import SparseBatchNorm, SparseLinear, SparseReLU
from nerfseg.sparse.tensor import SparseTensor
from nerfseg.sparse.voxelize import Voxelization, devoxelize, point_offsets, voxel_indices, voxelize

__all__ = [
    "DownConv3d", "KernelMap", "KernelMapCache", "SparseBatchNorm", "SparseLinear", "SparseReLU",
    "SparseTensor", "SubmanifoldConv3d", "UpConv3d", "VoxelHash", "Voxelization", "cube_offsets",
    "devoxelize", "downsampling_map", "pack_keys", "point_offsets", "sparse_conv", "submanifold_map",
    "unpack_keys", "voxel_indices", "voxelize",
]
