"""LidarSegmentor: output layout and voxel convention, permutation invariance, learning, real sweep."""

import numpy as np
import pytest
import torch

from nerfseg.data.collate import PointBatch
from nerfseg.errors import ConfigError
from nerfseg.models.segmentor import LidarSegmentor, SegmentorConfig

# Tiny tensors: one torch thread avoids OpenMP barrier waits on the shared 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")



def two_class_scan(seed: int, n: int = 800) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 4) points on the ground (class 0) and on a box (class 1); labels (n,)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 3, generator=g)
    ground = torch.stack([u[:, 0] * 6 - 3, u[:, 1] * 6 - 3, torch.full((n,), -1.7)], 1)
    box = torch.stack([u[:, 0] - 0.5, torch.full((n,), 1.0), u[:, 2] * 1.2 - 1.7], 1)
    is_box = torch.rand(n, generator=g) < 0.4
    xyz = torch.where(is_box[:, None], box, ground)
    return torch.cat([xyz, torch.rand(n, 1, generator=g)], 1), is_box.long()


def batch_of(scans: list[torch.Tensor], labels: list[torch.Tensor] | None = None) -> PointBatch:
    return PointBatch(
        points=torch.cat(scans),
        batch_index=torch.cat([torch.full((len(s),), i) for i, s in enumerate(scans)]),
        labels=None if labels is None else torch.cat(labels),
        sample_ids=[str(i) for i in range(len(scans))],
    )


def make(num_classes: int = 3, **kw) -> LidarSegmentor:
    torch.manual_seed(0)
    kw.setdefault("voxel_size", 0.1)
    return LidarSegmentor(SegmentorConfig(preset="tiny", **kw), num_classes)


def test_output_layout_and_voxel_convention():
    (a, _), (b, _) = two_class_scan(0), two_class_scan(1)
    batch = batch_of([a, b])
    model = make()
    out = model(batch)
    n = len(batch.points)
    assert out.point_logits.shape == (n, 3) and out.point_to_voxel.shape == (n,)
    assert out.point_to_voxel.dtype == torch.int64 and out.voxel_size == 0.1
    vf = out.voxel_features
    assert vf.stride == 1 and vf.num_channels == model.voxel_feature_channels == 32
    # base voxel index = floor(xyz / voxel_size) in the scan's lidar frame, batch index first
    own = vf.coords[out.point_to_voxel]
    assert torch.equal(own[:, 0], batch.batch_index)
    assert torch.equal(own[:, 1:], torch.floor(batch.points[:, :3] / 0.1).long())
    centres = vf.centres(0.1)[out.point_to_voxel]
    assert float((centres - batch.points[:, :3]).abs().max()) <= 0.05 + 1e-6


def test_point_order_does_not_matter():
    a, _ = two_class_scan(2)
    model = make().eval()
    perm = torch.randperm(len(a), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(batch_of([a])).point_logits
        permuted = model(batch_of([a[perm]])).point_logits
    torch.testing.assert_close(permuted, ref[perm], rtol=1e-4, atol=1e-4)


def test_learns_a_two_class_scene():
    scan, labels = two_class_scan(3)
    batch = batch_of([scan], [labels])
    model = make(num_classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(model(batch).point_logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        test_scan, test_labels = two_class_scan(4)
        pred = model(batch_of([test_scan])).point_logits.argmax(1)
    assert float((pred == test_labels).float().mean()) > 0.95


def test_config_errors_and_overrides():
    with pytest.raises(ConfigError, match="voxel_size"):
        make(voxel_size=0.0)
    with pytest.raises(ConfigError, match="in_channels"):
        make(in_channels=5)
    with pytest.raises(ConfigError, match="dropout"):
        make(dropout=1.0)
    m = make(encoder_channels=(8, 8, 16), decoder_channels=(8, 8, 12), point_hidden=16, in_channels=3)
    assert m.voxel_feature_channels == 12
    a, _ = two_class_scan(5)
    assert m(batch_of([a])).point_logits.shape == (len(a), 3)
    with pytest.raises(ValueError, match="points"):
        m(batch_of([torch.zeros(0, 4)]))


def test_real_nuscenes_sweep(real_data):
    path = sorted((real_data / "nuscenes_keyframe").glob("*LIDAR_TOP*.pcd.bin"))[0]
    pts = np.fromfile(path, dtype=np.float32).reshape(-1, 5)[:, :4].copy()
    pts[:, 3] /= 255.0
    batch = batch_of([torch.from_numpy(pts)])
    model = make(num_classes=16).eval()
    with torch.no_grad():
        out = model(batch)
    assert out.point_logits.shape == (34688, 16) and bool(torch.isfinite(out.point_logits).all())
    assert out.voxel_features.num_voxels == int(out.point_to_voxel.max()) + 1


@pytest.mark.parametrize("training", [True, False])
def test_point_head_equals_its_mlp_on_each_points_concatenated_input(training):
    """The head applies its first Linear per voxel and gathers it per point (and folds its batch norm in
    eval mode); the reference is the plain MLP on [voxel feature of the point, offset, intensity]."""
    from nerfseg.models.segmentor import PointHead

    torch.manual_seed(4)
    head = PointHead(voxel_channels=6, hidden=5, num_classes=3, dropout=0.0)
    bn = head.mlp[1]
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.2, 0.2)
    head.train(training)
    voxel_feats = torch.randn(9, 6, requires_grad=True)
    point_to_voxel = torch.randint(0, 9, (40,))
    offsets, intensity = torch.rand(40, 3) - 0.5, torch.rand(40, 1)
    reference_input = torch.cat([voxel_feats[point_to_voxel], offsets, intensity], dim=1)
    reference = head.mlp(reference_input)
    reference.square().sum().backward()
    expected_grads = [voxel_feats.grad.clone(), head.mlp[0].weight.grad.clone()]
    voxel_feats.grad = head.mlp[0].weight.grad = None
    logits = head(voxel_feats, point_to_voxel, offsets, intensity)
    torch.testing.assert_close(logits, reference, rtol=1e-5, atol=1e-5)
    logits.square().sum().backward()
    torch.testing.assert_close(voxel_feats.grad, expected_grads[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(head.mlp[0].weight.grad, expected_grads[1], rtol=1e-4, atol=1e-5)
