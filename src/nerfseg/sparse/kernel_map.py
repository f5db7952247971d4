"""Kernel maps: which input voxel feeds which output voxel through which kernel offset.

A kernel map lists (input row, output row) pairs grouped by kernel offset. It is built from sorted
voxel keys with ``searchsorted`` (no Python loop over voxels) and cached per stride level in a
:class:`KernelMapCache` that travels with the :class:`~nerfseg.sparse.tensor.SparseTensor` through
the U-Net, so the decoder reuses the encoder's maps.

Coordinate convention (see :mod:`nerfseg.sparse.tensor`): at stride ``s`` a voxel's spatial index is
``floor(base_index / s)``; neighbouring voxels at any stride differ by 1 in index.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from nerfseg.sparse.hashing import VoxelHash, offset_key_deltas, pack_keys, unpack_keys
from nerfseg.threads import single_thread


@dataclass
class OutputBlock:
    """Pairs ``[pair_start, pair_end)`` write only output rows ``[row_start, row_end)``; their segments
    are ``KernelMap.segments[seg_start:seg_end]``."""

    row_start: int
    row_end: int
    pair_start: int
    pair_end: int
    seg_start: int
    seg_end: int


@dataclass
class KernelMap:
    """Input/output row pairs of a sparse convolution, in runs (segments) of one kernel offset.

    Attributes:
        in_rows: (P,) int64 rows of the input features.
        out_rows: (P,) int64 rows of the output features, aligned with ``in_rows``.
        segments: (k, start, end) runs covering ``[0, P)`` in order: pairs ``start:end`` use offset k.
        num_offsets: kernel volume K (27 or 8).
        num_out: number of output voxels.
        identity_offset: index of an offset whose pairs are exactly (i, i) for every row i, stored with
            no pairs (applied as one plain matmul), or None.
        blocks: for output-blocked maps, the blocks of consecutive output rows (each block's pairs are
            contiguous, so their scatter-add stays in cache); None otherwise.
        out_local: (P,) int64 ``out_rows`` minus the row start of their block (blocked maps only).
        symmetric: the pairs of offset ``K-1-k`` are those of offset k swapped (submanifold maps), so the
            input gradient is the same map applied with flipped, transposed weights.
    """

    in_rows: torch.Tensor
    out_rows: torch.Tensor
    segments: list[tuple[int, int, int]]
    num_offsets: int
    num_out: int
    identity_offset: int | None = None
    blocks: list[OutputBlock] | None = None
    out_local: torch.Tensor | None = None
    symmetric: bool = False
    work_units: dict = field(default_factory=dict, repr=False, compare=False)
    """Cache of the chunked work steps per chunk size (filled by :mod:`nerfseg.sparse.conv`)."""

    def transposed(self, num_out: int) -> KernelMap:
        """The map of the transposed convolution (inputs and outputs swapped), ``num_out`` outputs.

        The result is unblocked (its scatter targets are not grouped) and not marked symmetric."""
        return KernelMap(
            self.out_rows, self.in_rows, self.segments, self.num_offsets, num_out, self.identity_offset
        )

    def num_pairs(self, num_in: int) -> int:
        """Number of (input, output) products, counting the identity offset's ``num_in`` pairs."""
        return int(self.in_rows.numel()) + (num_in if self.identity_offset is not None else 0)

    def pairs_of(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input rows, output rows) of offset k (identity pairs not included)."""
        parts = [(s, e) for kk, s, e in self.segments if kk == k]
        empty = self.in_rows[:0]
        ins = torch.cat([self.in_rows[s:e] for s, e in parts]) if parts else empty
        outs = torch.cat([self.out_rows[s:e] for s, e in parts]) if parts else empty
        return ins, outs


def _runs(keys: torch.Tensor, num_keys: int) -> list[tuple[int, int, int]]:
    """(key, start, end) runs of a sorted (P,) int64 key array, keys in [0, num_keys), empty runs dropped."""
    counts = torch.bincount(keys, minlength=num_keys).tolist()
    runs, start = [], 0
    for key, c in enumerate(counts):
        if c:
            runs.append((key, start, start + c))
            start += c
    return runs


def _grouped_by_offset(in_rows: torch.Tensor, out_rows: torch.Tensor, offset: torch.Tensor, num_offsets: int):
    """Sort pairs by offset (stable) and return (in_rows, out_rows, segments)."""
    order = torch.argsort(offset, stable=True)
    return in_rows[order], out_rows[order], _runs(offset[order], num_offsets)


def cube_offsets(kernel_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(k**3, 3) int64 offsets of a cubic kernel, x slowest, z fastest.

    ``kernel_size`` 3 gives offsets in {-1, 0, 1}^3 (centre at index 13); 2 gives {0, 1}^3. The
    order matches the flattened spatial dims of a dense ``conv3d`` weight ``(Cout, Cin, kx, ky, kz)``.
    """
    start = -(kernel_size // 2) if kernel_size % 2 == 1 else 0
    r = torch.arange(start, start + kernel_size, device=device)
    return torch.cartesian_prod(r, r, r).reshape(-1, 3)


def _small_ops(device: torch.device):
    """Scope of a map build: ~30-60 ops on ~1e5-1e6 elements, run on one CPU thread.

    A second thread saves little here (1 thread 40 ms, 2 threads 60-90 ms with sleeping threads for the
    84k-voxel submanifold map) and, where OpenMP threads spin-wait (no ``OMP_WAIT_POLICY=PASSIVE`` when
    torch loaded) on a shared machine, costs 1.2-2.1 s (benchmarks/README.md). GPUs are unaffected."""
    return single_thread() if device.type == "cpu" else contextlib.nullcontext()


DEFAULT_BLOCK_ROWS = 32768
"""Output rows per block of a CPU submanifold map: each scatter-add writes one block (8 MB at 64 float32
channels) while the per-offset matmuls of a block stay large (~5k rows on a LiDAR scan). Measured with the
conv's 32 MiB buffers on a 2-core AVX512/AMX Xeon (benchmarks/results/conv_chunking.md): 8192-row blocks
were 1.2-1.4x slower, a single block 2-8 % faster (kept bounded for larger scans); on an AMD EPYC earlier,
2048 rows were slower than 8192 (168 against 152 ms, 64 -> 64 forward + backward, 4 MiB buffers)."""


def submanifold_map(
    coords: torch.Tensor, table: VoxelHash | None = None, block_rows: int | None = None
) -> KernelMap:
    """Kernel map of a 3x3x3 submanifold convolution: outputs at the input voxels.

    Args:
        coords: (M, 4) int64 unique voxel coordinates [batch, x, y, z] at one stride.
        table: a VoxelHash of ``coords`` (built if None).
        block_rows: output rows per block (pairs ordered by output block, then offset); default
            DEFAULT_BLOCK_ROWS on CPU and one block for everything on GPUs.
    Returns: a symmetric, output-blocked KernelMap over the 27 offsets of :func:`cube_offsets` (3); the
        centre offset (13) is the identity. Pairs of offset -d are those of +d swapped, so only 13 offsets
        are looked up, in 5 binary searches (one per z-column of offsets).
    """
    device = coords.device
    num = int(coords.shape[0])
    if block_rows is None:
        block_rows = DEFAULT_BLOCK_ROWS if device.type == "cpu" else max(num, 1)
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    with _small_ops(device):
        return _submanifold_map(coords, table, block_rows)


def _submanifold_map(coords: torch.Tensor, table: VoxelHash | None, block_rows: int) -> KernelMap:
    """:func:`submanifold_map`'s work, ``block_rows`` given."""
    device = coords.device
    num = int(coords.shape[0])
    table = table if table is not None else VoxelHash(coords)
    keys = pack_keys(coords)
    deltas = offset_key_deltas(cube_offsets(3, device))
    # offsets 0..12 are the negatives of 26..14; they are the z-columns (dx, dy) = (-1, -1), (-1, 0),
    # (-1, 1), (0, -1) with dz = -1, 0, 1 (offsets 0-2, 3-5, 6-8, 9-11) and (0, 0, -1) (offset 12):
    # one binary search per column
    neighbours = torch.cat(
        [table.lookup_z_runs(keys + deltas[k], 3) for k in (0, 3, 6, 9)]
        + [table.lookup_z_runs(keys + deltas[12], 1)]
    )  # (13, M): row of the neighbour of each voxel through offset k, -1 where none
    valid = neighbours >= 0
    k, i = valid.nonzero(as_tuple=True)
    src = neighbours[valid]  # row-major, aligned with (k, i)
    # output row i reads input src through offset k; by symmetry src reads i through 26-k
    in_rows, out_rows, offset = torch.cat([src, i]), torch.cat([i, src]), torch.cat([k, 26 - k])
    block = torch.div(out_rows, block_rows, rounding_mode="floor")
    block_offset, order = torch.sort(block * 27 + offset)  # by output block, then offset
    in_rows, out_rows = in_rows.index_select(0, order), out_rows.index_select(0, order)
    block = torch.div(block_offset, 27, rounding_mode="floor")
    num_blocks = (num + block_rows - 1) // block_rows
    segments, blocks, seg_start = [], [], 0
    for run_key, s, e in _runs(block_offset, num_blocks * 27):
        segments.append((run_key % 27, s, e))
    # group the runs into blocks (every block of rows gets one entry, even without neighbour pairs)
    pair_counts = torch.bincount(block, minlength=num_blocks).tolist()
    pair_start = 0
    for b_index, count in enumerate(pair_counts):
        seg_end = seg_start
        while seg_end < len(segments) and segments[seg_end][1] < pair_start + count:
            seg_end += 1
        row_start = b_index * block_rows
        row_end = min(row_start + block_rows, num)
        blocks.append(OutputBlock(row_start, row_end, pair_start, pair_start + count, seg_start, seg_end))
        pair_start += count
        seg_start = seg_end
    out_local = out_rows - block * block_rows
    return KernelMap(in_rows, out_rows, segments, 27, num, identity_offset=13, blocks=blocks,
                     out_local=out_local, symmetric=True)


@dataclass
class Downsampling:
    """Result of halving a voxel set: the coarse voxels and the map fine -> coarse (k=2, s=2).

    Attributes:
        coarse_coords: (M2, 4) int64 unique coordinates at twice the stride, sorted by key.
        kernel_map: pairs (fine row, coarse row) grouped by the 8 offsets ``fine - 2 * coarse`` (index
            in the order of :func:`cube_offsets` (2)); not blocked, so it can be transposed.
    """

    coarse_coords: torch.Tensor
    kernel_map: KernelMap


def downsampling_map(coords: torch.Tensor) -> Downsampling:
    """Coarse voxels ``floor(c / 2)`` of (M, 4) int64 coordinates and the k=2, s=2 kernel map."""
    with _small_ops(coords.device):
        return _downsampling_map(coords)


def _downsampling_map(coords: torch.Tensor) -> Downsampling:
    """:func:`downsampling_map`'s work."""
    spatial = coords[:, 1:]
    parent = torch.cat([coords[:, :1], torch.div(spatial, 2, rounding_mode="floor")], dim=1)
    unique_keys, parent_row = torch.unique(pack_keys(parent), sorted=True, return_inverse=True)
    child = spatial - 2 * parent[:, 1:]
    offset_index = child[:, 0] * 4 + child[:, 1] * 2 + child[:, 2]
    rows = torch.arange(coords.shape[0], device=coords.device)
    in_rows, out_rows, segments = _grouped_by_offset(rows, parent_row, offset_index, 8)
    kmap = KernelMap(in_rows, out_rows, segments, 8, int(unique_keys.numel()))
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
