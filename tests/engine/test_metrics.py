"""Confusion-matrix metrics: hand-computed matrices for both official rules, and a dense reference that
follows the official code's own conventions (semantic-kitti-api: conf[pred, gt] with class 0 = unlabeled;
nuscenes-devkit: cm[gt, pred] with class 0 = ignore)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.data.sample import IGNORE_INDEX as I
from nerfseg.engine.metrics import ConfusionMatrix, nuscenes_scores, semantickitti_scores

GT = [0, 0, 0, 1, 1, I, 2, I]
PRED = [0, 0, 1, 1, I, 0, 2, 2]


def _cm(num_classes, pred=PRED, gt=GT):
    cm = ConfusionMatrix(num_classes)
    cm.update(np.array(pred), np.array(gt))
    return cm


def test_semantickitti_hand_computed():
    # gt0: pred 0,0,1 -> tp 2, fn 1;  gt1: pred 1,ignore -> tp 1, fn 1;  gt2: tp 1;  fp1 = 1 (pred 1 on gt 0).
    # Points with ignored ground truth are dropped; the ignore prediction leaves the accuracy denominator.
    scores = semantickitti_scores(_cm(3), ["a", "b", "c"])
    np.testing.assert_allclose(scores.per_class_iou, [2 / 3, 1 / 3, 1.0])
    assert scores.miou == pytest.approx(2 / 3)
    assert scores.accuracy == pytest.approx(4 / 5)
    # A class absent from both prediction and ground truth counts 0 in the mean.
    scores4 = semantickitti_scores(_cm(4), ["a", "b", "c", "d"])
    assert scores4.per_class_iou[3] == 0.0 and scores4.miou == pytest.approx(0.5)


def test_nuscenes_hand_computed():
    # Valid (gt, pred) pairs: (0,0)x2 (0,1) (1,1) (2,2); union0 = 3 + 2 - 2, union1 = 1 + 2 - 1.
    scores = nuscenes_scores(_cm(4), ["a", "b", "c", "d"])
    np.testing.assert_allclose(scores.per_class_iou[:3], [2 / 3, 1 / 2, 1.0])
    assert np.isnan(scores.per_class_iou[3])
    assert scores.miou == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert scores.freq_weighted_iou == pytest.approx((3 * 2 / 3 + 1 * 1 / 2 + 1) / 5)
    assert scores.accuracy == pytest.approx(4 / 5)


def test_accumulation_and_torch_input():
    import torch

    cm = ConfusionMatrix(3)
    cm.update(torch.tensor(PRED[:4]), torch.tensor(GT[:4]))
    cm.update(np.array(PRED[4:], dtype=np.uint8), np.array(GT[4:], dtype=np.int32))
    np.testing.assert_array_equal(cm.matrix, _cm(3).matrix)
    assert cm.matrix.sum() == len(GT)


def test_invalid_ids_rejected():
    with pytest.raises(ValueError, match="prediction"):
        _cm(3, pred=[0, 3], gt=[0, 1])
    with pytest.raises(ValueError, match="shape"):
        _cm(3, pred=[0], gt=[0, 1])


def test_format_table_and_dict():
    scores = semantickitti_scores(_cm(3), ["car", "road", "pole"])
    table = scores.format_table()
    assert "road" in table and "66.67" in table and "mIoU" in table and "80.00" in table
    assert scores.to_dict()["per_class_iou"]["pole"] == pytest.approx(1.0)
    nus = nuscenes_scores(_cm(4), ["a", "b", "c", "d"]).to_dict()
    assert nus["per_class_iou"]["d"] is None


def reference_semantickitti(pred, gt, c):
    """semantic-kitti-api procedure: shift to its ids (0 = unlabeled), conf[pred, gt], zero column 0."""
    p = np.where(pred == I, 0, pred + 1)
    g = np.where(gt == I, 0, gt + 1)
    conf = np.zeros((c + 1, c + 1), np.int64)
    np.add.at(conf, (p, g), 1)
    conf[:, 0] = 0
    tp = np.diag(conf)
    fp = conf.sum(axis=1) - tp
    fn = conf.sum(axis=0) - tp
    union = tp + fp + fn + 1e-15
    iou = tp / union
    include = np.arange(1, c + 1)
    acc = tp.sum() / (tp[include].sum() + fp[include].sum() + 1e-15)
    return iou[include], (tp[include] / union[include]).mean(), acc


def reference_nuscenes(pred, gt, c):
    """nuscenes-devkit procedure: ids 0 = ignore, cm[gt, pred], zero row and column 0, nanmean."""
    p = np.where(pred == I, 0, pred + 1)
    g = np.where(gt == I, 0, gt + 1)
    cm = np.bincount((c + 1) * g + p, minlength=(c + 1) ** 2).reshape(c + 1, c + 1)
    cm[0, :] = 0
    cm[:, 0] = 0
    tp = np.diagonal(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (cm.sum(axis=1) + cm.sum(axis=0) - tp).astype(np.float32)
        fw = np.nansum(cm.sum(axis=1) * iou) / cm.sum()
    return iou[1:], np.nanmean(iou), fw


labels = st.lists(st.sampled_from([0, 1, 2, 3, 4, I]), min_size=1, max_size=60)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_rules_match_dense_references(data):
    gt = np.array(data.draw(labels))
    pred = np.array(
        data.draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, I]), min_size=gt.size, max_size=gt.size))
    )
    names = list("abcde")
    iou, miou, acc = reference_semantickitti(pred, gt, 5)
    kitti = semantickitti_scores(_cm(5, pred, gt), names)
    np.testing.assert_allclose(kitti.per_class_iou, iou, atol=1e-12)
    assert kitti.miou == pytest.approx(miou, abs=1e-12) and kitti.accuracy == pytest.approx(acc, abs=1e-12)
    # The devkit forbids ignore predictions; drop them for its reference.
    keep = pred != I
    if keep.any() and (gt[keep] != I).any():
        iou, miou, fw = reference_nuscenes(pred[keep], gt[keep], 5)
        nus = nuscenes_scores(_cm(5, pred[keep], gt[keep]), names)
        np.testing.assert_allclose(nus.per_class_iou, iou, atol=1e-12)
        assert nus.miou == pytest.approx(miou, abs=1e-12) and nus.freq_weighted_iou == pytest.approx(fw)
