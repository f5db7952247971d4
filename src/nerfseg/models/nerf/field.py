"""The NeRF field: trilinear interpolation of sparse voxel features, positional encoding, and the MLP giving
density and semantic logits at each sample.

Voxel convention (the segmentor's, stride 1): a voxel with integer coordinates (batch, i, j, k) covers
``[i, i+1) x [j, j+1) x [k, k+1) * voxel_size`` metres in the scan's LiDAR frame and its feature sits at its
CENTRE ``(index + 0.5) * voxel_size``. A position p is interpolated between the 8 voxel centres around it:
base index ``b = floor(p / voxel_size - 0.5)``, fraction ``f = p / voxel_size - 0.5 - b`` in [0, 1)^3 and
corner ``b + o`` (o in {0,1}^3) gets weight ``prod_axis (o ? f : 1 - f)``. Missing voxels contribute zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nerfseg.sparse.hashing import VoxelHash, pack_keys, unpack_keys

# The 8 corner offsets o in {0,1}^3, ordered x-major: (0,0,0), (0,0,1), (0,1,0), ..., (1,1,1).
CORNER_OFFSETS = torch.tensor([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=torch.int64)
_SPATIAL_LIMIT = (1 << 15) - 2  # keep base and base + 1 inside the hash key's 16-bit signed range


def _key_offsets(device: torch.device) -> torch.Tensor:
    """(8,) int64 key increments of the corner offsets (pack_keys is linear inside its bit fields)."""
    offsets = CORNER_OFFSETS.to(device)
    return (offsets[:, 0] << 32) | (offsets[:, 1] << 16) | offsets[:, 2]


class VoxelGrid:
    """Sparse voxel features of a batch of scans with the lookups the NeRF head needs, built once per batch.

    Args:
        coords: (M, 4) integer voxel coordinates [batch, i, j, k] at stride 1 (unique).
        feats: (M, F) voxel features (any float dtype; gradients flow to them through :meth:`interpolate`).
        voxel_size: edge length of a voxel in metres.

    ``support_keys`` are the sorted keys of the base indices b that have at least one occupied voxel among
    their 8 corners (``coords - o`` for o in {0,1}^3), so the empty-space test of a sample is ONE binary
    search.
    """

    def __init__(self, coords: torch.Tensor, feats: torch.Tensor, voxel_size: float):
        if coords.dim() != 2 or coords.shape[1] != 4:
            raise ValueError(f"voxel coords must be (M, 4) [batch, i, j, k], got {tuple(coords.shape)}")
        if feats.shape[0] != coords.shape[0]:
            raise ValueError(f"{coords.shape[0]} voxel coords but {feats.shape[0]} feature rows")
        if not voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
        self.coords = coords.to(torch.int64)
        self.feats = feats
        self.voxel_size = float(voxel_size)
        self.voxels = VoxelHash(self.coords)
        keys = pack_keys(self.coords)
        # Sorted unique keys of the support (torch.unique sorts), searched directly: no second sort.
        self.support_keys = torch.unique((keys.unsqueeze(1) - _key_offsets(keys.device)).reshape(-1))

    @property
    def device(self) -> torch.device:
        return self.feats.device

    def base_keys(self, positions: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Base corner of each position's interpolation cell.

        Args:
            positions: (S, 3) metres in the LiDAR frame (float32/64).
            batch: (S,) int64 scan index of each position.

        Returns:
            keys (S,) int64 packed keys of the base corner b; frac (S, 3) float32 in [0, 1].
        """
        scaled = positions.float() / self.voxel_size - 0.5
        base = torch.floor(scaled)
        frac = scaled - base
        base = base.to(torch.int64).clamp_(-_SPATIAL_LIMIT, _SPATIAL_LIMIT)
        keys = pack_keys(torch.cat([batch.to(torch.int64).unsqueeze(1), base], dim=1))
        return keys, frac.clamp_(0.0, 1.0)

    def occupied(self, base_keys: torch.Tensor) -> torch.Tensor:
        """(S,) bool: some voxel among the 8 corners of the cell with these base keys exists."""
        if self.support_keys.numel() == 0:
            return torch.zeros_like(base_keys, dtype=torch.bool)
        pos = torch.searchsorted(self.support_keys, base_keys).clamp_(max=self.support_keys.numel() - 1)
        return self.support_keys[pos] == base_keys

    def corner_rows(self, base_keys: torch.Tensor, frac: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the 8 corner voxels and their trilinear weights.

        Returns rows (S, 8) int64 (-1 where the voxel is missing) and weights (S, 8) float32 (zero for missing
        voxels), corners in the order of CORNER_OFFSETS.
        """
        rows = self.voxels.lookup_keys(base_keys.unsqueeze(1) + _key_offsets(base_keys.device))
        offsets = CORNER_OFFSETS.to(frac.device, frac.dtype)  # (8, 3)
        per_axis = offsets * frac.unsqueeze(1) + (1 - offsets) * (1 - frac.unsqueeze(1))  # (S, 8, 3)
        weights = per_axis.prod(dim=2) * (rows >= 0)
        return rows, weights

    def interpolate(self, base_keys: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
        """Trilinear interpolation of the voxel features: (S,) keys, (S, 3) frac -> (S, F) in feats' dtype.

        Uses ``embedding_bag`` (weighted sum of 8 rows) so no (S, 8, F) tensor is built; differentiable with
        respect to the voxel features.
        """
        return self.interpolate_with_support(base_keys, frac)[0]

    def interpolate_with_support(
        self, base_keys: torch.Tensor, frac: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`interpolate` and, from the same corner lookup, the support (S,) float32: the sum of the
        trilinear weights of the corners that exist (1 inside a fully occupied cell, less at the edge of the
        surface, 0 in empty space). Features divided by it are what the present voxels agree on, at the scale
        of a voxel's own feature."""
        rows, weights = self.corner_rows(base_keys, frac)
        support = weights.sum(dim=1)
        if rows.shape[0] == 0 or self.feats.shape[0] == 0:
            return self.feats.new_zeros((rows.shape[0], self.feats.shape[1])), support
        features = F.embedding_bag(
            rows.clamp_min(0), self.feats, per_sample_weights=weights.to(self.feats.dtype), mode="sum"
        )
        return features, support


def trilinear_features(
    coords: torch.Tensor, feats: torch.Tensor, voxel_size: float, positions: torch.Tensor, batch: torch.Tensor
) -> torch.Tensor:
    """Trilinear interpolation of sparse voxel features at positions (missing voxels = zero).

    Args:
        coords: (M, 4) int voxel coordinates [batch, i, j, k]; feats: (M, F); voxel_size: metres.
        positions: (S, 3) metres in the LiDAR frame; batch: (S,) int64 scan index.

    Returns:
        (S, F) interpolated features (dtype of feats).
    """
    grid = VoxelGrid(coords, feats, voxel_size)
    keys, frac = grid.base_keys(positions, batch)
    return grid.interpolate(keys, frac)


def positional_encoding(positions: torch.Tensor, num_frequencies: int, scale: float) -> torch.Tensor:
    """NeRF positional encoding of positions.

    Args:
        positions: (S, 3) metres; scale: metres mapped to 1 (x / scale is encoded).
        num_frequencies: L; frequencies 2^k * pi for k = 0..L-1.

    Returns:
        (S, 3 + 6 L) float32: [x / scale, sin(2^k pi x / scale), cos(2^k pi x / scale)].
    """
    x = positions.float() / scale
    if num_frequencies == 0:
        return x
    freqs = (2.0 ** torch.arange(num_frequencies, device=x.device, dtype=torch.float32)) * math.pi
    angles = (x.unsqueeze(-1) * freqs).reshape(x.shape[0], 3 * num_frequencies)
    return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=1)


class SemanticDensityField(nn.Module):
    """MLP on [interpolated voxel feature, positional encoding] giving density and semantic logits.

    forward(features (S, F), positions (S, 3) metres) -> (sigma (S,) >= 0 per metre, logits (S, C)).
    Density uses softplus (smooth, never negative, finite for finite inputs).
    """

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        width: int = 64,
        depth: int = 2,
        pe_frequencies: int = 4,
        pe_scale: float = 50.0,
        density_bias: float = -1.0,
    ):
        super().__init__()
        self.pe_frequencies = pe_frequencies
        self.pe_scale = pe_scale
        in_dim = feature_dim + 3 + 6 * pe_frequencies
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(in_dim, width), nn.ReLU(inplace=True)]
            in_dim = width
        self.trunk = nn.Sequential(*layers)
        self.density = nn.Linear(in_dim, 1)
        self.semantics = nn.Linear(in_dim, num_classes)
        nn.init.constant_(self.density.bias, density_bias)

    def forward(self, features: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoding = positional_encoding(positions, self.pe_frequencies, self.pe_scale).to(features.dtype)
        hidden = self.trunk(torch.cat([features, encoding], dim=1))
        sigma = F.softplus(self.density(hidden).squeeze(1).float())
        return sigma, self.semantics(hidden)


class StackedVoxelGrid:
    """A coarse render volume with the fine stride-1 voxel features read beside it.

    The coarse grid decides occupancy (its support is what a camera ray can stop on); at every occupied sample
    the features are ``[coarse interpolation (Fc), fine interpolation (Ff)]`` (fine voxels missing around the
    sample contribute zero), so the field sees where within a coarse cell the LiDAR surface lies. Same lookups
    as :class:`VoxelGrid` (``base_keys`` / ``occupied`` / ``interpolate`` on the coarse grid's keys).
    """

    def __init__(self, coarse: VoxelGrid, fine: VoxelGrid):
        self.coarse = coarse
        self.fine = fine
        self.coords = coarse.coords
        self.voxel_size = coarse.voxel_size

    @property
    def device(self) -> torch.device:
        return self.coarse.device

    def base_keys(self, positions: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coarse base keys (S,) and fractions (S, 3) (as :meth:`VoxelGrid.base_keys`)."""
        return self.coarse.base_keys(positions, batch)

    def occupied(self, base_keys: torch.Tensor) -> torch.Tensor:
        """(S,) bool: the coarse cell has an occupied corner."""
        return self.coarse.occupied(base_keys)

    def interpolate(self, base_keys: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
        """(S,) coarse keys, (S, 3) fractions -> (S, Fc + Ff): coarse and fine trilinear features.

        The sample position is recovered from key and fraction: ``(base + 0.5 + frac) * coarse voxel size``.
        """
        return self.interpolate_with_support(base_keys, frac)[0]

    def interpolate_with_support(
        self, base_keys: torch.Tensor, frac: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`interpolate` and the support (S,) of the coarse features
        (:meth:`VoxelGrid.interpolate_with_support`)."""
        coarse, support = self.coarse.interpolate_with_support(base_keys, frac)
        coords = unpack_keys(base_keys)
        positions = (coords[:, 1:].to(frac.dtype) + 0.5 + frac) * self.coarse.voxel_size
        fine_keys, fine_frac = self.fine.base_keys(positions, coords[:, 0])
        fine = self.fine.interpolate(fine_keys, fine_frac)
        return torch.cat([coarse, fine.to(coarse.dtype)], dim=1), support
