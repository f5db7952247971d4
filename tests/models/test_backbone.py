"""MinkUNet backbone: voxel bookkeeping, equivariance, batch independence, gradients, configs."""

import pytest
import torch

from nerfseg.errors import ConfigError
from nerfseg.models.backbone import BACKBONE_PRESETS, BackboneConfig, MinkUNet, backbone_config
from nerfseg.sparse import SparseTensor, voxelize

# Tiny tensors: one torch thread avoids OpenMP barrier waits on the shared 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")



def surface_scan(seed: int, n: int = 1500) -> torch.Tensor:
    """(n, 4) points on a ground plane and a wall, x, y, z metres and intensity."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 2, generator=g) * 4
    ground = torch.stack([u[:, 0], u[:, 1], torch.zeros(n)], 1)
    wall = torch.stack([u[:, 0], torch.full((n,), 4.0), u[:, 1] * 0.5], 1)
    xyz = torch.where(torch.rand(n, 1, generator=g) < 0.6, ground, wall)
    return torch.cat([xyz, torch.rand(n, 1, generator=g)], 1)


def voxel_input(points: list[torch.Tensor], voxel_size: float = 0.1) -> SparseTensor:
    xyz = torch.cat([p[:, :3] for p in points])
    batch = torch.cat([torch.full((len(p),), i) for i, p in enumerate(points)])
    return voxelize(xyz, batch, torch.cat(points), voxel_size).tensor


def tiny(**kw) -> MinkUNet:
    torch.manual_seed(0)
    return MinkUNet(backbone_config("tiny", in_channels=4, **kw))


def test_output_lies_on_the_input_voxels():
    x = voxel_input([surface_scan(0), surface_scan(1)])
    net = tiny()
    y = net(x)
    assert torch.equal(y.coords, x.coords) and y.stride == 1
    assert y.feats.shape == (x.num_voxels, net.out_channels) and bool(torch.isfinite(y.feats).all())
    # every encoder level was visited and cached
    assert sorted(x.cache.coords) == [1, 2, 4, 8]


def test_translation_by_the_total_stride_gives_the_same_features():
    net = tiny().eval()
    x = voxel_input([surface_scan(2)])
    shift = torch.tensor([0, 8 * 3, -8 * 5, 8])  # a multiple of the coarsest stride (8) on every axis
    moved = SparseTensor(x.coords + shift, x.feats.clone())
    with torch.no_grad():
        torch.testing.assert_close(net(moved).feats, net(x).feats, rtol=1e-5, atol=1e-5)
        # a shift by one voxel regroups the strided levels: the features change
        one = SparseTensor(x.coords + torch.tensor([0, 1, 0, 0]), x.feats.clone())
        assert not torch.allclose(net(one).feats, net(x).feats, atol=1e-3)


def test_scans_of_a_batch_do_not_see_each_other():
    net = tiny().eval()
    a, b = surface_scan(3), surface_scan(4)  # same region of space: would be neighbours if batch ignored
    with torch.no_grad():
        both = net(voxel_input([a, b]))
        alone = net(voxel_input([b]))
    second = both.coords[:, 0] == 1
    torch.testing.assert_close(both.feats[second], alone.feats, rtol=1e-5, atol=1e-5)


def test_every_parameter_receives_a_gradient():
    net = tiny()
    y = net(voxel_input([surface_scan(5), surface_scan(6)]))
    (y.feats * torch.randn_like(y.feats)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_presets_and_validation():
    full = BACKBONE_PRESETS["full"]
    assert full.stem_channels == 32 and full.encoder_channels == (32, 64, 128, 256)
    assert full.decoder_channels == (256, 128, 96, 96) and full.out_channels == 96
    cfg = backbone_config("tiny", 3, encoder_channels=[8, 8, 8], decoder_channels=None)
    assert cfg.encoder_channels == (8, 8, 8) and cfg.in_channels == 3
    with pytest.raises(ConfigError, match="unknown preset"):
        backbone_config("huge", 4)
    with pytest.raises(ConfigError, match="equal length"):
        backbone_config("tiny", 4, encoder_channels=(8, 8))
    with pytest.raises(ConfigError, match="at least one"):
        MinkUNet(BackboneConfig(encoder_depths=(0, 1, 1, 1)))
    with pytest.raises(ValueError, match="stride-1"):
        tiny()(SparseTensor(torch.zeros(1, 4, dtype=torch.int64), torch.zeros(1, 4), stride=2))


def test_full_preset_builds_with_minkunet18_size():
    net = MinkUNet(backbone_config("full", 4))
    params = sum(p.numel() for p in net.parameters())
    # MinkUNet18 (SPVNAS widths, 3x3x3 kernels everywhere but the 2x2x2 resampling) has about 21.7M weights
    assert 20e6 < params < 23e6
