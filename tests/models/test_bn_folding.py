"""Eval-mode batch-norm folding into sparse convs: same outputs as the separate BN pass, same gradients."""

import pytest
import torch

import nerfseg.models.backbone as backbone
from nerfseg.models.backbone import MinkUNet, backbone_config, folded_batch_norm
from nerfseg.sparse import sparse_conv, submanifold_map, voxelize

# Tiny tensors: one torch thread avoids OpenMP barrier waits on the shared 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def _model_with_running_stats() -> MinkUNet:
    torch.manual_seed(0)
    model = MinkUNet(backbone_config("tiny", in_channels=4))
    for m in model.modules():  # non-trivial statistics and affine parameters
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _scan() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    pts = torch.rand(1200, 4, generator=g) * torch.tensor([3.0, 3.0, 0.6, 1.0])
    return voxelize(pts[:, :3], torch.zeros(len(pts), dtype=torch.int64), pts, 0.1).tensor


def test_folded_eval_forward_matches_separate_batch_norm(monkeypatch):
    model = _model_with_running_stats()
    with torch.no_grad():
        folded = model(_scan()).feats
        monkeypatch.setattr(backbone, "folded_batch_norm", lambda bn: None)  # the unfolded reference
        reference = model(_scan()).feats
    assert folded.abs().max() > 0
    torch.testing.assert_close(folded, reference, rtol=1e-5, atol=1e-5)


def test_folding_only_in_eval_mode():
    bn = torch.nn.BatchNorm1d(5)
    assert folded_batch_norm(bn) is None  # training: batch statistics
    bn.eval().running_var.fill_(4.0)
    scale, shift = folded_batch_norm(bn)
    y = torch.randn(7, 5)
    torch.testing.assert_close(y * scale + shift, bn(y))


def test_sparse_conv_bias_fused_and_differentiable():
    x = _scan()
    kmap = submanifold_map(x.coords, block_rows=16)
    torch.manual_seed(1)
    w = torch.randn(27, 4, 6, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    with torch.no_grad():
        fused = sparse_conv(x.feats, w, kmap, chunk_rows=37, bias=b)
    plain = sparse_conv(x.feats, w, kmap, chunk_rows=37)
    torch.testing.assert_close(fused, plain.detach() + b.detach())
    sparse_conv(x.feats, w, kmap, bias=b).sum().backward()
    torch.testing.assert_close(b.grad, torch.full((6,), float(x.num_voxels)))
    with pytest.raises(ValueError, match="bias"):
        sparse_conv(x.feats, w, kmap, bias=torch.zeros(5))
