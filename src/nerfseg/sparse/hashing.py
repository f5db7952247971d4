"""Voxel keys and the sorted-key voxel hash shared by the sparse convolution (kernel maps) and the
NeRF head (trilinear lookups of voxel features).

A voxel coordinate is (batch, x, y, z) integer grid indices (int32/int64). Spatial indices may be
negative; each must lie in [-2**15, 2**15) and batch in [0, 2**15).
"""

from __future__ import annotations

import torch

_SPATIAL_BITS = 16
_OFFSET = 1 << (_SPATIAL_BITS - 1)
_MASK = (1 << _SPATIAL_BITS) - 1


def pack_keys(coords: torch.Tensor) -> torch.Tensor:
    """Pack (N, 4) integer coordinates [batch, x, y, z] into (N,) int64 keys.

    Keys sort by batch first, then x, y, z, so a sorted key array groups each batch's voxels.
    """
    c = coords.to(torch.int64)
    spatial = c[:, 1:] + _OFFSET
    return (
        (c[:, 0] << (3 * _SPATIAL_BITS))
        | (spatial[:, 0] << (2 * _SPATIAL_BITS))
        | (spatial[:, 1] << _SPATIAL_BITS)
        | spatial[:, 2]
    )


def unpack_keys(keys: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_keys`: (N,) int64 keys -> (N, 4) int64 coordinates [batch, x, y, z]."""
    batch = keys >> (3 * _SPATIAL_BITS)
    x = ((keys >> (2 * _SPATIAL_BITS)) & _MASK) - _OFFSET
    y = ((keys >> _SPATIAL_BITS) & _MASK) - _OFFSET
    z = (keys & _MASK) - _OFFSET
    return torch.stack([batch, x, y, z], dim=1)


class VoxelHash:
    """Lookup table from voxel coordinates to row indices, built from sorted keys.

    ``VoxelHash(coords)`` with coords (N, 4) unique voxel coordinates; ``lookup(query)`` with query
    (M, 4) returns (M,) int64 row indices into ``coords``, -1 where the voxel is not present.
    Works on any device (uses ``torch.sort`` and ``torch.searchsorted``).
    """

    def __init__(self, coords: torch.Tensor):
        keys = pack_keys(coords)
        self.num_voxels = int(keys.numel())
        if bool((keys[1:] > keys[:-1]).all()):  # already sorted (voxelize and downsampling give that)
            self.sorted_keys, self.order = keys, None
        else:
            self.sorted_keys, self.order = torch.sort(keys)

    def _rows(self, pos: torch.Tensor, found: torch.Tensor) -> torch.Tensor:
        """Rows of the sorted positions ``pos`` where ``found``, -1 elsewhere."""
        rows = pos if self.order is None else torch.take(self.order, pos)
        return torch.where(found, rows, -1)

    def lookup_keys(self, query_keys: torch.Tensor) -> torch.Tensor:
        """(M,) int64 keys -> (M,) int64 row indices, -1 where absent (any query shape)."""
        if self.num_voxels == 0:
            return torch.full_like(query_keys, -1)
        pos = torch.searchsorted(self.sorted_keys, query_keys).clamp_(max=self.num_voxels - 1)
        return self._rows(pos, torch.take(self.sorted_keys, pos) == query_keys)

    def lookup_z_runs(self, start_keys: torch.Tensor, length: int) -> torch.Tensor:
        """Rows of the keys ``start_keys + j`` (the voxels ``j`` steps up in z), j = 0 .. length-1.

        One binary search per query for the whole run: keys differing only in z are adjacent in sorted
        order, so the next key of a run, when present, sits right after the last one found.
        Args: start_keys (M,) int64; length >= 1. Returns (length, M) int64 rows, -1 where absent.
        Whenever ``start_keys + j`` packs a valid coordinate the result equals ``lookup_keys``'s.
        """
        if self.num_voxels == 0:
            return torch.full((length, *start_keys.shape), -1, dtype=torch.int64, device=start_keys.device)
        pos = torch.searchsorted(self.sorted_keys, start_keys)
        last = self.num_voxels - 1
        runs = []
        for j in range(length):
            clamped = pos.clamp(max=last)
            found = torch.take(self.sorted_keys, clamped) == start_keys + j
            runs.append(self._rows(clamped, found))
            if j + 1 < length:
                pos = pos + found  # past the key just found: the next one of the run, if present
        return torch.stack(runs)

    def lookup(self, query: torch.Tensor) -> torch.Tensor:
        """(M, 4) coordinates -> (M,) int64 row indices, -1 where absent."""
        return self.lookup_keys(pack_keys(query))


def offset_key_deltas(offsets: torch.Tensor) -> torch.Tensor:
    """(K, 3) integer spatial offsets [dx, dy, dz] -> (K,) int64 key deltas.

    ``pack_keys(c) + delta == pack_keys(c + [0, dx, dy, dz])`` whenever both ``c`` and the shifted
    coordinate lie inside the packable range, so neighbour keys come from one addition per voxel.
    """
    d = offsets.to(torch.int64)
    return (d[:, 0] << (2 * _SPATIAL_BITS)) + (d[:, 1] << _SPATIAL_BITS) + d[:, 2]


SPATIAL_LIMIT = _OFFSET
"""Spatial voxel indices must lie in [-SPATIAL_LIMIT, SPATIAL_LIMIT) to be packed."""
