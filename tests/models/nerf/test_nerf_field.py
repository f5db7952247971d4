"""Trilinear lookup of sparse voxel features against a dense grid_sample reference; positional encoding."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from nerfseg.models.nerf.field import SemanticDensityField, VoxelGrid, positional_encoding, trilinear_features

VOXEL = 0.25


def _random_sparse_grid(gen: torch.Generator, batch: int, lo: int, size: int, channels: int, fill: float):
    """Sparse voxels of `batch` scans inside the cube [lo, lo + size)^3, with their dense (B, C, D, H, W) copy
    (dims: D = z, H = y, W = x, as grid_sample expects)."""
    dense = torch.zeros(batch, channels, size, size, size, dtype=torch.float64)
    occupied = torch.rand(batch, size, size, size, generator=gen) < fill
    b, x, y, z = torch.nonzero(occupied, as_tuple=True)
    feats = torch.randn(b.shape[0], channels, generator=gen, dtype=torch.float64)
    dense[b, :, z, y, x] = feats
    coords = torch.stack([b, x + lo, y + lo, z + lo], dim=1)
    return coords, feats, dense


def _grid_sample_reference(dense, lo, size, positions, batch):
    """Dense reference: voxel centre of index i at (i + 0.5) * VOXEL; align_corners=True maps -1/+1 to the
    first / last centre; padding zeros = missing voxels."""
    cont = positions / VOXEL - 0.5 - lo  # continuous index inside the cube
    normalised = 2.0 * cont / (size - 1) - 1.0
    out = torch.zeros(positions.shape[0], dense.shape[1], dtype=torch.float64)
    for b in range(dense.shape[0]):  # loop over the 2 scans only
        sel = batch == b
        grid = normalised[sel].view(1, 1, 1, -1, 3)  # (x, y, z) order = (W, H, D)
        sampled = F.grid_sample(
            dense[b : b + 1], grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        out[sel] = sampled.view(dense.shape[1], -1).T
    return out


def test_trilinear_matches_dense_reference():
    gen = torch.Generator().manual_seed(0)
    lo, size = -4, 8
    coords, feats, dense = _random_sparse_grid(gen, 2, lo, size, 5, fill=0.4)
    # Positions covering the cube and its border (outside the cube every voxel is missing -> 0).
    positions = (torch.rand(3000, 3, generator=gen, dtype=torch.float64) * (size + 2) + lo - 1) * VOXEL
    batch = torch.randint(0, 2, (3000,), generator=gen)
    got = trilinear_features(coords, feats, VOXEL, positions, batch)
    expected = _grid_sample_reference(dense, lo, size, positions, batch)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)
    # At a voxel centre the value is that voxel's feature.
    centres = (coords[:, 1:].double() + 0.5) * VOXEL
    at_centres = trilinear_features(coords, feats, VOXEL, centres, coords[:, 0])
    np.testing.assert_allclose(at_centres.numpy(), feats.numpy(), atol=1e-5)


def test_occupied_iff_some_corner_exists_and_gradients_are_the_weights():
    gen = torch.Generator().manual_seed(1)
    coords, feats, _ = _random_sparse_grid(gen, 1, 0, 6, 3, fill=0.1)
    feats = feats.float().requires_grad_(True)
    grid = VoxelGrid(coords, feats, VOXEL)
    positions = torch.rand(2000, 3, generator=gen) * 8 * VOXEL - VOXEL
    keys, frac = grid.base_keys(positions, torch.zeros(2000, dtype=torch.int64))
    rows, weights = grid.corner_rows(keys, frac)
    assert torch.equal(grid.occupied(keys), (rows >= 0).any(dim=1))
    assert 0 < int(grid.occupied(keys).sum()) < 2000
    assert torch.allclose(weights.sum(1)[(rows >= 0).all(1)], torch.ones(1))
    # d(sum_s interpolated[s, c]) / d feats[m, c] = sum of the weights with which voxel m was used.
    grid.interpolate(keys, frac).sum().backward()
    expected = torch.zeros(coords.shape[0]).index_add_(0, rows.clamp_min(0).view(-1), weights.view(-1))
    np.testing.assert_allclose(feats.grad[:, 0].numpy(), expected.numpy(), atol=1e-4)
    assert torch.allclose(feats.grad[:, 0], feats.grad[:, 2])


def test_empty_grid_and_far_positions_give_zero():
    grid = VoxelGrid(torch.zeros(0, 4, dtype=torch.int64), torch.zeros(0, 6), 0.1)
    keys, frac = grid.base_keys(
        torch.tensor([[1.0, 2.0, 3.0], [1e6, -1e6, 0.0]]), torch.zeros(2, dtype=torch.int64)
    )
    assert not grid.occupied(keys).any()
    assert torch.equal(grid.interpolate(keys, frac), torch.zeros(2, 6))


def test_positional_encoding_hand_values():
    x = torch.tensor([[12.5, 0.0, -25.0]])  # scale 50 -> 0.25, 0, -0.5
    enc = positional_encoding(x, 2, 50.0)
    expected = [0.25, 0.0, -0.5]
    expected += [math.sin(math.pi * 0.25), math.sin(2 * math.pi * 0.25), 0.0, 0.0]
    expected += [math.sin(-math.pi * 0.5), math.sin(-2 * math.pi * 0.5)]
    expected += [math.cos(math.pi * 0.25), math.cos(2 * math.pi * 0.25), 1.0, 1.0]
    expected += [math.cos(-math.pi * 0.5), math.cos(-2 * math.pi * 0.5)]
    np.testing.assert_allclose(enc[0].numpy(), expected, atol=1e-6)


def test_field_density_nonnegative_and_shapes():
    field = SemanticDensityField(feature_dim=8, num_classes=4, width=16, depth=2, pe_frequencies=3)
    gen = torch.Generator().manual_seed(2)
    sigma, logits = field(torch.randn(100, 8, generator=gen) * 100, torch.randn(100, 3, generator=gen) * 50)
    assert sigma.shape == (100,) and logits.shape == (100, 4)
    assert (sigma >= 0).all() and torch.isfinite(sigma).all()


def test_support_is_the_weight_of_the_present_corners():
    from nerfseg.models.nerf.field import VoxelGrid

    block = torch.tensor([[0, i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    full = VoxelGrid(block, torch.ones(8, 2), 1.0)
    lone = VoxelGrid(block[:1], torch.ones(1, 2), 1.0)
    positions = torch.tensor([[1.0, 1.0, 1.0], [0.75, 0.5, 1.25]])  # inside the block's centre cell
    batch = torch.zeros(2, dtype=torch.int64)
    keys, frac = full.base_keys(positions, batch)
    assert torch.allclose(full.interpolate_with_support(keys, frac)[1], torch.ones(2))
    # only voxel (0, 0, 0), centred at 0.5: weight prod(1 - frac) of the base corner
    expected = (1 - frac).prod(dim=1)
    features, support = lone.interpolate_with_support(keys, frac)
    assert torch.allclose(support, expected)
    assert torch.allclose(features, lone.interpolate(keys, frac))
    assert torch.allclose(lone.interpolate(keys, frac) / expected[:, None], torch.ones(2, 2))
