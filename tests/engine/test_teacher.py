"""The EMA teacher: update rule against a hand computation, BatchNorm buffers, eval mode, and the NeRF head's
shared point classifier pointing at the teacher's own segmentor."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nerfseg.config import load_config
from nerfseg.engine.build import build_model
from nerfseg.engine.teacher import MeanTeacher
from nerfseg.ssl.config import TeacherConfig
from train_testing import TINY_SEGMENTOR_OVERRIDES


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


@pytest.mark.parametrize("buffers", ["ema", "copy"])
def test_update_is_the_exponential_moving_average(buffers):
    student = _net()
    teacher = MeanTeacher({"model": student}, TeacherConfig(ema_decay=0.9, ema_warmup=False, buffers=buffers))
    t0 = {k: v.clone() for k, v in teacher["model"].state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    student.train()
    student(torch.randn(8, 3))  # moves the running statistics and num_batches_tracked
    s = student.state_dict()
    assert teacher.update({"model": student}, step=1) == 0.9
    after = teacher["model"].state_dict()
    for key in ("0.weight", "0.bias", "1.weight", "1.bias"):
        assert torch.allclose(after[key], 0.9 * t0[key] + 0.1 * s[key])
    for key in ("1.running_mean", "1.running_var"):
        expected = 0.9 * t0[key] + 0.1 * s[key] if buffers == "ema" else s[key]
        assert torch.allclose(after[key], expected)
    assert after["1.num_batches_tracked"] == s["1.num_batches_tracked"] == 1
    assert not teacher.training and not teacher["model"].training
    teacher.train()
    assert not teacher["model"].training
    assert all(not p.requires_grad for p in teacher.parameters())


def test_warmup_ramps_the_decay():
    teacher = MeanTeacher({"model": _net()}, TeacherConfig(ema_decay=0.99, ema_warmup=True))
    assert teacher.decay_at(1) == pytest.approx(2 / 11)
    assert teacher.decay_at(10_000) == 0.99


def test_shared_point_classifier_follows_the_copy():
    cfg = load_config(
        None, ["method=nerf", "model.nerf.semantics_from_point_head=true", *TINY_SEGMENTOR_OVERRIDES]
    )
    model, head = build_model(cfg, 19)
    assert head.point_classifier.__self__ is model.head
    teacher = MeanTeacher({"model": model, "head": head}, TeacherConfig())
    assert teacher["head"].point_classifier.__self__ is teacher["model"].head
    assert teacher["model"].head is not model.head
    # the render path's logits are the point classifier's: gradients reach the classifier's weights
    feats = torch.randn(5, head.feature_dim, requires_grad=True)
    head.point_classifier(feats).sum().backward()
    assert model.head.mlp[4].weight.grad is not None and feats.grad is not None
    assert model.head.mlp[1].num_batches_tracked == 0  # samples do not move the batch-norm statistics
