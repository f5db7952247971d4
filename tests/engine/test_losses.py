"""Supervised losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from nerfseg.config import LossConfig
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.engine.losses import SegmentationLoss, lovasz_grad, lovasz_softmax


def test_lovasz_grad_hand_computed():
    # gt sorted by decreasing error: [1, 0, 1]; gts = 2
    # i=0: inter = 2-1 = 1, union = 2+0 = 2 -> J = 1 - 1/2 = 0.5
    # i=1: inter = 1, union = 2+1 = 3 -> J = 2/3 ; i=2: inter = 0, union = 3 -> J = 1
    # grad = [0.5, 2/3 - 1/2, 1 - 2/3]
    g = lovasz_grad(torch.tensor([[1.0], [0.0], [1.0]]))
    assert torch.allclose(g[:, 0], torch.tensor([0.5, 1 / 6, 1 / 3]))


def test_lovasz_softmax_hand_computed_two_classes():
    # 3 points, 2 classes, labels [0, 1, 0] and a 4th point ignored.
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 0, IGNORE_INDEX])
    # class 0: fg [1,0,1], errors |fg - p0| = [0.1, 0.6, 0.7]; sorted desc: 0.7(fg1), 0.6(fg0), 0.1(fg1)
    #   gt_sorted [1,0,1] -> grad [0.5, 1/6, 1/3] -> loss0 = 0.35 + 0.1 + 0.1/3
    # class 1: fg [0,1,0], errors |fg - p1| = [0.1, 0.6, 0.7]; sorted desc: 0.7(fg0), 0.6(fg1), 0.1(fg0)
    #   gts = 1: i0 inter 1 union 2 -> 0.5; i1 inter 0 union 2 -> 1; i2 inter 0 union 3 -> 1
    #   grad [0.5, 0.5, 0] -> loss1 = 0.35 + 0.3
    expected = ((0.35 + 0.1 + 0.1 / 3) + 0.65) / 2
    assert lovasz_softmax(probs, labels).item() == pytest.approx(expected, abs=1e-6)


def test_lovasz_perfect_prediction_is_zero_and_only_present_classes_count():
    probs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert lovasz_softmax(probs, torch.tensor([0, 1])).item() == pytest.approx(0.0)
    # class 2 absent from labels: a wrong probability on it does not enter the mean over present classes
    probs = torch.tensor([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    # class 0: fg [1,0], errors [0.5, 0]; gts=1: i0 inter 0 union 1 -> J 1; i1 inter 0 union 2 -> J 1
    # grad [1, 0] -> loss0 = 0.5
    expected = (1.0 * 0.5 + 0.0) / 2  # class 1 is perfect
    assert lovasz_softmax(probs, torch.tensor([0, 1])).item() == pytest.approx(expected)


def test_all_ignored_gives_zero_with_graph():
    logits = torch.randn(5, 3, requires_grad=True)
    out = SegmentationLoss(LossConfig())(logits, torch.full((5,), IGNORE_INDEX))
    assert out["total"].item() == 0.0
    out["total"].backward()
    assert torch.all(logits.grad == 0)


def test_cross_entropy_term_ignores_and_matches_reference():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]], requires_grad=True)
    labels = torch.tensor([0, 1, IGNORE_INDEX])
    out = SegmentationLoss(LossConfig(ce_weight=1.0, lovasz_weight=0.0))(logits, labels)
    expected = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2
    assert out["ce"].item() == pytest.approx(expected, rel=1e-6)
    assert out["total"].item() == pytest.approx(expected, rel=1e-6)
    out["total"].backward()
    assert torch.all(logits.grad[2] == 0)


def test_lovasz_gradient_lowers_the_loss():
    torch.manual_seed(0)
    logits = torch.randn(200, 4, requires_grad=True)
    labels = torch.randint(0, 4, (200,))
    loss_fn = SegmentationLoss(LossConfig())
    before = loss_fn(logits, labels)["lovasz"].item()
    for _ in range(20):
        loss = loss_fn(logits, labels)["total"]
        (grad,) = torch.autograd.grad(loss, logits)
        with torch.no_grad():
            logits -= 5.0 * grad
    assert loss_fn(logits, labels)["lovasz"].item() < before - 0.05
