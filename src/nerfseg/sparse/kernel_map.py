"""Kernel maps: which input voxel feeds which output voxel through which kernel offset.

A kernel map lists (input row, output row) pairs grouped by kernel offset. It is built from sorted
voxel keys with ``searchsorted`` (no Python loop over voxels) and cached per stride level in a
:class:`KernelMapCache` that travels with the :class:`~nerfseg.sparse.tensor.SparseTensor` through
the U-Net, so the decoder reuses the encoder's maps.

Coordinate convention (see :mod:`nerfseg.sparse.tensor`): at stride ``s`` a voxel's spatial index is
``floor(base_index / s)``; neighbouring voxels at any stride differ by 1 in index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nerfseg.sparse.hashing import VoxelHash, offset_key_deltas, pack_keys, unpack_keys


@dataclass
class KernelMap:
    """Input/output row pairs of a sparse convolution, grouped by kernel offset.

    Attributes:
        in_rows: (P,) int64 rows of the input features, pairs of offset k in
            ``in_rows[bounds[k]:bounds[k+1]]``.
        out_rows: (P,) int64 rows of the output features, aligned with ``in_rows``.
        bounds: K+1 Python ints, start of each offset's pairs (``bounds[-1] == P``).
        num_out: number of output voxels.
        identity_offset: index k of an offset whose pairs are exactly (i, i) for every row i, stored
            with no pairs (applied as a plain matmul), or None.
    """

    in_rows: torch.Tensor
    out_rows: torch.Tensor
    bounds: list[int]
    num_out: int
    identity_offset: int | None = None

    @property
    def num_offsets(self) -> int:
        return len(self.bounds) - 1

    def transposed(self, num_out: int) -> KernelMap:
        """The map of the transposed convolution (inputs and outputs swapped), ``num_out`` outputs."""
        return KernelMap(self.out_rows, self.in_rows, self.bounds, num_out, self.identity_offset)

    def num_pairs(self, num_in: int) -> int:
        """Number of (input, output) products, counting the identity offset's ``num_in`` pairs."""
        return int(self.in_rows.numel()) + (num_in if self.identity_offset is not None else 0)


def cube_offsets(kernel_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(k**3, 3) int64 offsets of a cubic kernel, x slowest, z fastest.

    ``kernel_size`` 3 gives offsets in {-1, 0, 1}^3 (centre at index 13); 2 gives {0, 1}^3. The
    order matches the flattened spatial dims of a dense ``conv3d`` weight ``(Cout, Cin, kx, ky, kz)``.
    """
    start = -(kernel_size // 2) if kernel_size % 2 == 1 else 0
    r = torch.arange(start, start + kernel_size, device=device)
    return torch.cartesian_prod(r, r, r).reshape(-1, 3)


def submanifold_map(coords: torch.Tensor, table: VoxelHash | None = None) -> KernelMap:
    """Kernel map of a 3x3x3 submanifold convolution: outputs at the input voxels.

    Args:
        coords: (M, 4) int64 unique voxel coordinates [batch, x, y, z] at one stride.
        table: a VoxelHash of ``coords`` (built if None).
    Returns: a KernelMap over the 27 offsets of :func:`cube_offsets` (3); the centre offset (13) is
        the identity. Pairs of offset -d are those of +d swapped, so only 13 lookups are made.
    """
    table = table if table is not None else VoxelHash(coords)
    offsets = cube_offsets(3, coords.device)
    keys = pack_keys(coords)
    deltas = offset_key_deltas(offsets)
    rows = torch.arange(coords.shape[0], device=coords.device)
    pair_in: list[torch.Tensor | None] = [None] * 27
    pair_out: list[torch.Tensor | None] = [None] * 27
    for k in range(13):  # offsets 0..12 are the negatives of 26..14
        src = table.lookup_keys(keys + deltas[k])
        valid = src >= 0
        # output row i reads input src[i] through offset k; by symmetry src[i] reads i through 26-k.
        pair_in[k], pair_out[k] = src[valid], rows[valid]
        pair_in[26 - k], pair_out[26 - k] = rows[valid], src[valid]
    empty = torch.zeros(0, dtype=torch.int64, device=coords.device)
    pair_in[13], pair_out[13] = empty, empty
    counts = [int(p.numel()) for p in pair_in]  # type: ignore[union-attr]
    bounds = [0]
    for c in counts:
        bounds.append(bounds[-1] + c)
    return KernelMap(torch.cat(pair_in), torch.cat(pair_out), bounds, coords.shape[0], identity_offset=13)


@dataclass
class Downsampling:
    """Result of halving a voxel set: the coarse voxels and the map fine -> coarse (k=2, s=2).

    Attributes:
        coarse_coords: (M2, 4) int64 unique coordinates at twice the stride, sorted by key.
        kernel_map: pairs (fine row, coarse row) grouped by the 8 offsets ``fine - 2 * coarse`` in the
            order of :func:`cube_offsets` (2).
    """

    coarse_coords: torch.Tensor
    kernel_map: KernelMap


def downsampling_map(coords: torch.Tensor) -> Downsampling:
    """Coarse voxels ``floor(c / 2)`` of (M, 4) int64 coordinates and the k=2, s=2 kernel map."""
    spatial = coords[:, 1:]
    parent = torch.cat([coords[:, :1], torch.div(spatial, 2, rounding_mode="floor")], dim=1)
    unique_keys, parent_row = torch.unique(pack_keys(parent), sorted=True, return_inverse=True)
    child = spatial - 2 * parent[:, 1:]
    offset_index = child[:, 0] * 4 + child[:, 1] * 2 + child[:, 2]
    order = torch.argsort(offset_index, stable=True)
    counts = torch.bincount(offset_index, minlength=8).tolist()
    bounds = [0]
    for c in counts:
        bounds.append(bounds[-1] + c)
    kmap = KernelMap(order, parent_row[order], bounds, int(unique_keys.numel()))
    return Downsampling(unpack_keys(unique_keys), kmap)


@dataclass
class KernelMapCache:
    """Kernel maps and voxel sets per stride, shared by every layer that works on the same voxels.

    ``coords[s]`` holds the (M_s, 4) coordinates at stride s; ``submanifold[s]`` the 3x3x3 map there;
    ``down[s]`` the map from stride s to 2s. Strided and transposed convolutions look up and fill it,
    so an up-sampling convolution lands exactly on the voxels the matching encoder level had.
    """

    coords: dict[int, torch.Tensor] = field(default_factory=dict)
    submanifold: dict[int, KernelMap] = field(default_factory=dict)
    down: dict[int, Downsampling] = field(default_factory=dict)

    def submanifold_map(self, coords: torch.Tensor, stride: int) -> KernelMap:
        """The cached 3x3x3 map of the voxels at ``stride`` (built on first use)."""
        if stride not in self.submanifold:
            self.coords.setdefault(stride, coords)
            self.submanifold[stride] = submanifold_map(coords)
        return self.submanifold[stride]

    def downsampling(self, coords: torch.Tensor, stride: int) -> Downsampling:
        """The cached halving of the voxels at ``stride`` (built on first use)."""
        if stride not in self.down:
            self.coords.setdefault(stride, coords)
            result = downsampling_map(coords)
            self.down[stride] = result
            self.coords.setdefault(2 * stride, result.coarse_coords)
        return self.down[stride]
