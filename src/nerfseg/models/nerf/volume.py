"""The render volume of the NeRF head: the segmentor's stride-1 voxel features pooled into coarser cells and
dilated around the observed surface, so a camera ray passing between LiDAR scan lines still meets support
(DESIGN.md, method step 3; issue 10 item 3 measures why: raw 0.15 m voxels leave gaps that grow with range).

Construction (pure tensor ops, no loop over voxels; gradients reach the stride-1 features through both steps):

1. Pool: stride-1 voxel (b, i, j, k) belongs to cell (b, floor(i / s), floor(j / s), floor(k / s)) of edge
   ``s * voxel_size`` (the SparseTensor stride convention); a cell's feature is the mean of its voxels'.
2. Dilate by ``r`` cells: every cell within the (2r + 1)^3 cube of an observed cell joins the volume. An
   observed cell keeps its pooled feature; a dilated cell gets the mean of the observed cells in its cube.
3. Two extra channels tell the field where the evidence is: ``observed`` (1 for cells holding LiDAR voxels,
   0 for dilated ones) and ``neighbour_share`` (observed cells in the (2r + 1)^3 cube / (2r + 1)^3). A cell
   between two scan lines of a wall has many observed neighbours; a cell in front of it has few.

Stride 1 with no dilation is the raw grid: the features are returned unchanged (no extra channels).
"""

from __future__ import annotations

import torch

from nerfseg.sparse.hashing import offset_key_deltas, pack_keys, unpack_keys
from nerfseg.sparse.kernel_map import cube_offsets

EXTRA_CHANNELS = 2
"""Channels appended by :func:`render_volume` when it pools or dilates: observed, neighbour_share."""


def is_raw(stride: int, dilation: int) -> bool:
    """Whether (stride, dilation) leaves the stride-1 voxels as they are."""
    return stride == 1 and dilation == 0


def volume_channels(feature_dim: int, stride: int, dilation: int, fine_features: bool = False) -> int:
    """Feature channels the field reads from a render volume built from ``feature_dim``-channel voxels
    (``fine_features``: the stride-1 features read beside the volume's, see ``NerfConfig``)."""
    if is_raw(stride, dilation):
        return feature_dim
    return 2 * feature_dim + EXTRA_CHANNELS if fine_features else feature_dim + EXTRA_CHANNELS


def pool_voxels(
    coords: torch.Tensor, feats: torch.Tensor, stride: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean-pool stride-1 voxels into cells of ``stride`` voxels per axis.

    Args:
        coords: (M, 4) int [batch, i, j, k] stride-1 voxel indices (unique); feats: (M, F).
        stride: s >= 1.

    Returns:
        cells (K, 4) int64 [batch, floor(i / s), ...] sorted by packed key; pooled (K, F) mean features
        (feats' dtype, differentiable); inverse (M,) int64 cell row of each voxel.
    """
    coords = coords.to(torch.int64)
    cell = torch.cat([coords[:, :1], torch.div(coords[:, 1:], stride, rounding_mode="floor")], dim=1)
    keys, inverse = torch.unique(pack_keys(cell), return_inverse=True)
    counts = torch.zeros(keys.shape[0], dtype=feats.dtype, device=feats.device)
    counts.index_add_(0, inverse, torch.ones_like(inverse, dtype=feats.dtype))
    pooled = feats.new_zeros((keys.shape[0], feats.shape[1])).index_add(0, inverse, feats)
    return unpack_keys(keys), pooled / counts.unsqueeze(1), inverse


def dilate_cells(
    cells: torch.Tensor, feats: torch.Tensor, radius: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grow a set of observed cells by ``radius`` cells (cube neighbourhood).

    Args:
        cells: (K, 4) int64 unique [batch, i, j, k]; feats: (K, F) their features; radius: r >= 0.

    Returns:
        coords (L, 4) int64 (the K observed cells first, in their order, then the new ones by key);
        feats (L, F): observed cells keep theirs, new cells get the mean of the observed cells in their cube;
        neighbours (L,) float32: observed cells in each cell's (2r + 1)^3 cube (itself included).
    """
    num_cells = cells.shape[0]
    if radius == 0 or num_cells == 0:
        ones = torch.ones(num_cells, dtype=torch.float32, device=cells.device)
        return cells, feats, ones
    keys = pack_keys(cells)
    deltas = offset_key_deltas(cube_offsets(2 * radius + 1, cells.device))  # (D,)
    targets = (keys.unsqueeze(1) + deltas).reshape(-1)  # (K * D,) neighbour keys, source-major
    sources = torch.arange(num_cells, device=cells.device).repeat_interleave(deltas.shape[0])
    unique_keys, target_rows = torch.unique(targets, return_inverse=True)
    # Order: observed cells first (their own rows), new cells after, by key.
    sorted_obs, obs_order = torch.sort(keys)
    pos = torch.searchsorted(sorted_obs, unique_keys).clamp_(max=num_cells - 1)
    is_obs = sorted_obs[pos] == unique_keys
    new_index = torch.cumsum(~is_obs, 0) - 1 + num_cells
    row_of_unique = torch.where(is_obs, obs_order[pos], new_index)
    rows = row_of_unique[target_rows]
    num_out = num_cells + int((~is_obs).sum())
    neighbours = torch.zeros(num_out, dtype=torch.float32, device=cells.device)
    neighbours.index_add_(0, rows, torch.ones_like(rows, dtype=torch.float32))
    summed = feats.new_zeros((num_out, feats.shape[1])).index_add(0, rows, feats[sources])
    mean = summed / neighbours.to(feats.dtype).unsqueeze(1)
    out_feats = torch.cat([feats, mean[num_cells:]], dim=0)
    out_coords = torch.empty((num_out, 4), dtype=torch.int64, device=cells.device)
    out_coords[row_of_unique] = unpack_keys(unique_keys)
    return out_coords, out_feats, neighbours


def render_volume(
    coords: torch.Tensor, feats: torch.Tensor, voxel_size: float, stride: int, dilation: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The head's render volume from the segmentor's stride-1 voxel features (module docstring).

    Args:
        coords: (M, 4) int [batch, i, j, k] stride-1 voxels; feats: (M, F); voxel_size: metres.
        stride: cell edge in stride-1 voxels (1, 2, 4, ...); dilation: cells added around observed ones.

    Returns:
        coords (L, 4) int64 cell indices (centre ``(index + 0.5) * stride * voxel_size`` metres), feats
        (L, F + 2) = [features, observed, neighbour_share] (F unchanged when raw), and the cell edge, metres.
    """
    if stride < 1 or dilation < 0:
        raise ValueError(f"render volume needs stride >= 1 and dilation >= 0, got {stride}, {dilation}")
    if is_raw(stride, dilation):
        return coords.to(torch.int64), feats, float(voxel_size)
    cells, pooled = coords.to(torch.int64), feats
    if stride > 1:
        cells, pooled, _ = pool_voxels(coords, feats, stride)
    num_observed = cells.shape[0]
    out_coords, out_feats, neighbours = dilate_cells(cells, pooled, dilation)
    observed = torch.zeros(out_coords.shape[0], 1, dtype=feats.dtype, device=feats.device)
    observed[:num_observed] = 1
    share = (neighbours / float((2 * dilation + 1) ** 3)).to(feats.dtype).unsqueeze(1)
    return out_coords, torch.cat([out_feats, observed, share], dim=1), float(voxel_size) * stride
