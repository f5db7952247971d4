"""The render volume: pooled means, dilation by hand on single cells, gradients to the stride-1 features,
the raw pass-through, and the head's build_volume."""

from __future__ import annotations

import pytest
import torch

from nerfseg.models.nerf.head import NerfConfig, NerfHead
from nerfseg.models.nerf.volume import dilate_cells, pool_voxels, render_volume, volume_channels
from nerfseg.sparse import SparseTensor


def test_pool_voxels_means_and_negative_indices():
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [0, -1, 0, 0], [0, -2, 1, 0], [1, 0, 0, 0]])
    feats = torch.tensor([[1.0], [3.0], [10.0], [20.0], [7.0]])
    cells, pooled, inverse = pool_voxels(coords, feats, 2)
    got = {tuple(c.tolist()): float(f) for c, f in zip(cells, pooled, strict=True)}
    assert got == {(0, 0, 0, 0): 2.0, (0, -1, 0, 0): 15.0, (1, 0, 0, 0): 7.0}
    assert torch.equal(cells[inverse][:, 1:], torch.div(coords[:, 1:], 2, rounding_mode="floor"))


def test_dilate_one_cell_by_one():
    cells = torch.tensor([[0, 5, -3, 2]])
    coords, feats, neighbours = dilate_cells(cells, torch.tensor([[2.0, -1.0]]), 1)
    assert coords.shape == (27, 4) and torch.equal(coords[0], cells[0])
    assert len({tuple(c.tolist()) for c in coords}) == 27
    assert (coords[:, 1:] - cells[0, 1:]).abs().max() == 1
    assert torch.allclose(feats, torch.tensor([[2.0, -1.0]]).expand(27, 2))
    assert torch.equal(neighbours, torch.ones(27))


def test_dilate_two_cells_averages_observed_neighbours():
    cells = torch.tensor([[0, 0, 0, 0], [0, 2, 0, 0]])
    feats = torch.tensor([[1.0], [5.0]])
    coords, out, neighbours = dilate_cells(cells, feats, 1)
    rows = {tuple(c.tolist()): i for i, c in enumerate(coords)}
    assert coords.shape[0] == 27 + 27 - 9  # the x = 1 plane is shared
    assert out[0] == 1.0 and out[1] == 5.0  # observed cells keep their own features
    between = rows[(0, 1, 0, 0)]
    assert out[between] == 3.0 and neighbours[between] == 2
    assert out[rows[(0, -1, 1, 1)]] == 1.0 and neighbours[rows[(0, -1, 1, 1)]] == 1
    assert neighbours[0] == 1  # the other observed cell is two cells away


def test_render_volume_channels_gradients_and_raw():
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 4, 0, 0]])
    feats = torch.randn(3, 4, requires_grad=True)
    c, f, cell = render_volume(coords, feats, 0.15, 2, 1)
    assert cell == pytest.approx(0.3) and f.shape == (c.shape[0], volume_channels(4, 2, 1)) == (c.shape[0], 6)
    assert f[:2, 4].tolist() == [1.0, 1.0] and (f[2:, 4] == 0).all()  # observed flag: the 2 pooled cells
    assert torch.allclose(f[0, :4], feats[:2].mean(0))
    f[:, :4].sum().backward()
    assert feats.grad is not None and (feats.grad != 0).all()
    raw_c, raw_f, raw_cell = render_volume(coords, feats, 0.15, 1, 0)
    assert raw_f is feats and raw_cell == 0.15 and torch.equal(raw_c, coords)
    with pytest.raises(ValueError, match="stride >= 1"):
        render_volume(coords, feats, 0.15, 0, 0)


def test_head_build_volume_feeds_the_field():
    class Out:
        voxel_features = SparseTensor(torch.tensor([[0, 10, 0, 0], [0, 11, 0, 0]]), torch.randn(2, 8))
        voxel_size = 0.15

    head = NerfHead(NerfConfig(volume_stride=2, volume_dilation=1), feature_dim=8, num_classes=3)
    grid = head.build_volume(Out())
    assert grid.voxel_size == pytest.approx(0.3) and grid.coords.shape[0] == 27
    assert head.field.trunk[0].in_features == 8 + 2 + 3 + 6 * head.cfg.pe_frequencies
    raw = NerfHead(NerfConfig(volume_stride=1, volume_dilation=0), feature_dim=8, num_classes=3)
    assert raw.build_volume(Out()).coords.shape[0] == 2


def test_stacked_grid_reads_coarse_and_fine_features_at_the_sample():
    from nerfseg.models.nerf.field import StackedVoxelGrid, VoxelGrid, trilinear_features

    gen = torch.Generator().manual_seed(0)
    fine_coords = torch.cat(
        [torch.zeros(40, 1, dtype=torch.int64), torch.randint(-6, 6, (40, 3), generator=gen)], 1
    )
    fine_coords = torch.unique(fine_coords, dim=0)
    fine_feats = torch.randn(fine_coords.shape[0], 3, generator=gen)
    coords, feats, cell = render_volume(fine_coords, fine_feats, 0.15, 2, 1)
    stacked = StackedVoxelGrid(VoxelGrid(coords, feats, cell), VoxelGrid(fine_coords, fine_feats, 0.15))
    positions = (torch.rand(200, 3, generator=gen) - 0.5) * 1.8
    batch = torch.zeros(200, dtype=torch.int64)
    keys, frac = stacked.base_keys(positions, batch)
    got = stacked.interpolate(keys, frac)
    want = torch.cat(
        [
            trilinear_features(coords, feats, cell, positions, batch),
            trilinear_features(fine_coords, fine_feats, 0.15, positions, batch),
        ],
        dim=1,
    )
    assert torch.allclose(got, want, atol=1e-5)
    cfg = NerfConfig(volume_stride=2, volume_dilation=1, volume_fine_features=True)
    head = NerfHead(cfg, feature_dim=3, num_classes=2)
    assert head.field.trunk[0].in_features == 3 + 2 + 3 + 3 + 6 * head.cfg.pe_frequencies
