"""Voxelize / devoxelize against hand-computed values and the real nuScenes sweep."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nerfseg.sparse import devoxelize, point_offsets, voxelize


def test_hand_computed_voxels_and_means():
    xyz = torch.tensor([[0.05, 0.05, 0.05], [0.09, 0.01, 0.02], [-0.01, 0.0, 0.0], [0.05, 0.05, 0.05]])
    batch = torch.tensor([0, 0, 0, 1])
    feats = torch.tensor([[1.0], [3.0], [10.0], [7.0]])
    vox = voxelize(xyz, batch, feats, voxel_size=0.1)
    t = vox.tensor
    # floor(xyz / 0.1): points 0 and 1 share voxel (0,0,0); point 2 is in (-1,0,0); point 3 in scan 1
    assert t.coords.tolist() == [[0, -1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]
    assert t.feats[:, 0].tolist() == [10.0, 2.0, 7.0]
    assert vox.point_to_voxel.tolist() == [1, 1, 0, 2]
    assert vox.counts.tolist() == [1, 2, 1]
    torch.testing.assert_close(t.centres(0.1), torch.tensor([[-0.05, 0.05, 0.05], [0.05] * 3, [0.05] * 3]))
    assert devoxelize(t.feats, vox.point_to_voxel)[:, 0].tolist() == [2.0, 2.0, 10.0, 7.0]


def test_voxel_mean_is_differentiable():
    xyz = torch.tensor([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0], [1.0, 0.0, 0.0]])
    feats = torch.ones(3, 2, requires_grad=True)
    vox = voxelize(xyz, torch.zeros(3, dtype=torch.int64), feats, voxel_size=0.5)
    vox.tensor.feats.sum().backward()
    assert feats.grad[:, 0].tolist() == [0.5, 0.5, 1.0]


def test_bad_input_is_rejected():
    ok = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="beyond"):
        voxelize(torch.tensor([[0.0, 0.0, 0.0], [5000.0, 0.0, 0.0]]), ok, torch.zeros(2, 1), 0.05)
    with pytest.raises(ValueError, match="NaN"):
        voxelize(torch.tensor([[0.0, 0.0, float("nan")], [0.0, 0.0, 0.0]]), ok, torch.zeros(2, 1), 0.05)
    with pytest.raises(ValueError, match="positive"):
        voxelize(torch.zeros(2, 3), ok, torch.zeros(2, 1), 0.0)
    with pytest.raises(ValueError, match="expects"):
        voxelize(torch.zeros(2, 3), ok, torch.zeros(3, 1), 0.1)


@given(
    arrays(np.float32, (40, 3), elements=st.floats(-20, 20, width=32)),
    st.sampled_from([0.05, 0.1, 0.37]),
)
@settings(max_examples=30, deadline=None)
def test_every_point_lies_in_its_voxel(xyz_np, voxel_size):
    xyz = torch.from_numpy(xyz_np).double()
    batch = torch.arange(40) % 3
    vox = voxelize(xyz, batch, xyz, voxel_size)
    t = vox.tensor
    off = point_offsets(xyz, t.coords, vox.point_to_voxel, voxel_size)
    assert bool((off >= -0.5 - 1e-9).all()) and bool((off < 0.5 + 1e-9).all())
    assert torch.equal(t.coords[vox.point_to_voxel, 0], batch)
    assert len(torch.unique(t.coords, dim=0)) == t.num_voxels  # unique voxels
    # per-voxel mean of the positions lies inside the voxel too
    mean_off = (t.feats - t.centres(voxel_size, torch.float64)) / voxel_size
    assert bool((mean_off.abs() <= 0.5 + 1e-9).all())


def test_real_nuscenes_sweep(real_data):
    files = sorted((real_data / "nuscenes_keyframe").glob("*LIDAR_TOP*.pcd.bin"))
    pts = np.fromfile(files[0], dtype=np.float32).reshape(-1, 5)
    xyz = torch.from_numpy(pts[:, :3].copy())
    vox = voxelize(xyz, torch.zeros(len(xyz), dtype=torch.int64), xyz, voxel_size=0.1)
    assert len(xyz) == 34688
    assert 0 < vox.tensor.num_voxels <= len(xyz)
    assert int(vox.counts.sum()) == len(xyz)
    recon = (vox.tensor.feats[vox.point_to_voxel] - xyz).abs().max()
    assert float(recon) <= 0.1 * np.sqrt(3)  # each point is within one voxel diagonal of its voxel's mean
