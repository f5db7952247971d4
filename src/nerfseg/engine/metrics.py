"""Confusion-matrix segmentation metrics following the official evaluators.

:class:`ConfusionMatrix` accumulates (prediction, ground truth) pairs of train ids, IGNORE_INDEX
included, in a (C + 1) x (C + 1) int64 matrix indexed ``[gt, pred]`` whose last row / column is "ignore".
The two scoring rules then read it:

* :func:`semantickitti_scores` - semantic-kitti-api ``np_ioueval.iouEval`` with ``ignore=[unlabeled]``:
  points whose ground truth is ignored are dropped; a prediction of "ignore" on a labeled point is a
  false negative of its class (and a false positive of the excluded class only). IoU_c = tp / (tp + fp +
  fn + 1e-15); mIoU is the mean over all C classes (a class absent from both prediction and ground truth
  counts 0); accuracy = sum(tp) / (sum over classes of tp + fp + 1e-15), i.e. labeled points predicted as a
  class form the denominator.
* :func:`nuscenes_scores` - nuscenes-devkit ``lidarseg`` ``ConfusionMatrix`` with ``ignore_idx=0``: the
  row (ground truth) and column (prediction) of the ignore class are zeroed; IoU_c = tp / (gt_c + pred_c -
  tp) computed with the union cast to float32 as the devkit does, NaN where a class is absent from both;
  mIoU = nanmean over the 16 classes; frequency-weighted IoU = nansum(gt_c * IoU_c) / total. The devkit
  rejects predictions of the ignore class; here they are dropped like its zeroed column. Accuracy (not
  reported by the devkit; ours) = sum(tp) / (points with a valid ground truth and a valid prediction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nerfseg.data.sample import IGNORE_INDEX

SEMANTICKITTI_EPS = 1e-15


class ConfusionMatrix:
    """Accumulates (pred, gt) train-id pairs; class ids in [0, num_classes) or IGNORE_INDEX.

    Attributes:
        matrix: (C + 1, C + 1) int64 counts indexed [gt, pred]; index C stands for IGNORE_INDEX.
    """

    def __init__(self, num_classes: int):
        self.num_classes = int(num_classes)
        self.matrix = np.zeros((self.num_classes + 1, self.num_classes + 1), dtype=np.int64)

    def _index(self, ids: np.ndarray, what: str) -> np.ndarray:
        ids = np.asarray(ids).reshape(-1).astype(np.int64)
        bad = ((ids < 0) | (ids >= self.num_classes)) & (ids != IGNORE_INDEX)
        if bad.any():
            raise ValueError(
                f"{what} ids must lie in [0, {self.num_classes}) or be IGNORE_INDEX={IGNORE_INDEX}; "
                f"got {np.unique(ids[bad])[:10].tolist()}"
            )
        return np.where(ids == IGNORE_INDEX, self.num_classes, ids)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add (N,) predicted and (N,) ground-truth train ids (numpy or torch tensors, any int dtype)."""
        pred, gt = _to_numpy(pred), _to_numpy(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
        size = self.num_classes + 1
        flat = self._index(gt, "ground-truth") * size + self._index(pred, "prediction")
        self.matrix += np.bincount(flat, minlength=size * size).reshape(size, size)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix of the same size (e.g. from another worker)."""
        if other.num_classes != self.num_classes:
            raise ValueError("confusion matrices of different sizes")
        self.matrix += other.matrix

    @property
    def class_matrix(self) -> np.ndarray:
        """(C, C) counts [gt, pred] over points with a valid ground truth and a valid prediction."""
        return self.matrix[: self.num_classes, : self.num_classes]


def _to_numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


@dataclass
class Scores:
    """Segmentation scores of one evaluation.

    Attributes:
        class_names: the C class names.
        per_class_iou: (C,) float64 IoU per class (NaN where a rule leaves a class undefined).
        miou: mean IoU as the dataset's rule defines it.
        accuracy: overall point accuracy as the rule defines it.
        freq_weighted_iou: frequency-weighted IoU (nuScenes rule only), else None.
        rule: "semantickitti" or "nuscenes".
        confusion: the (C + 1, C + 1) int64 counts [gt, pred] the scores were read from (last row / column
            = IGNORE_INDEX), or None.
    """

    class_names: tuple[str, ...]
    per_class_iou: np.ndarray
    miou: float
    accuracy: float
    freq_weighted_iou: float | None = None
    rule: str = ""
    confusion: np.ndarray | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN -> None)."""

        def clean(value: float) -> float | None:
            return None if np.isnan(value) else float(value)

        out = {
            "rule": self.rule,
            "miou": clean(self.miou),
            "accuracy": clean(self.accuracy),
            "per_class_iou": {n: clean(v) for n, v in zip(self.class_names, self.per_class_iou, strict=True)},
        }
        if self.freq_weighted_iou is not None:
            out["freq_weighted_iou"] = clean(self.freq_weighted_iou)
        return out

    def format_table(self) -> str:
        """Per-class IoU table (percent) followed by mIoU and accuracy lines."""
        width = max(len("mIoU"), *(len(n) for n in self.class_names))
        lines = [f"{'class':<{width}}  IoU (%)", "-" * (width + 10)]
        for name, iou in zip(self.class_names, self.per_class_iou, strict=True):
            lines.append(f"{name:<{width}}  {_percent(iou)}")
        lines.append("-" * (width + 10))
        lines.append(f"{'mIoU':<{width}}  {_percent(self.miou)}")
        if self.freq_weighted_iou is not None:
            lines.append(f"{'fwIoU':<{width}}  {_percent(self.freq_weighted_iou)}")
        lines.append(f"{'accuracy':<{width}}  {_percent(self.accuracy)}")
        return "\n".join(lines)


def _percent(value: float) -> str:
    return "    n/a" if np.isnan(value) else f"{100.0 * value:7.2f}"


def semantickitti_scores(cm: ConfusionMatrix, class_names: Sequence[str]) -> Scores:
    """Scores by the semantic-kitti-api rule (see the module docstring)."""
    c = cm.num_classes
    _check_names(cm, class_names)
    labeled = cm.matrix[:c, :]  # rows of points whose ground truth is a class; all predictions
    tp = np.diag(labeled[:, :c]).astype(np.float64)
    fp = labeled[:, :c].sum(axis=0) - tp  # predicted as c on labeled points of another class
    fn = labeled.sum(axis=1) - tp  # labeled c, predicted as anything else, "ignore" included
    iou = tp / (tp + fp + fn + SEMANTICKITTI_EPS)
    accuracy = tp.sum() / (tp.sum() + fp.sum() + SEMANTICKITTI_EPS)
    return Scores(
        tuple(class_names), iou, float(iou.mean()), float(accuracy), None, "semantickitti", cm.matrix.copy()
    )


def nuscenes_scores(cm: ConfusionMatrix, class_names: Sequence[str]) -> Scores:
    """Scores by the nuscenes-devkit lidarseg rule (see the module docstring)."""
    _check_names(cm, class_names)
    conf = cm.class_matrix
    tp = np.diag(conf)
    gt_count = conf.sum(axis=1)
    union = gt_count + conf.sum(axis=0) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / union.astype(np.float32)
        miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
        total = conf.sum()
        fw_iou = float(np.nansum(gt_count * iou) / total) if total else float("nan")
        accuracy = float(tp.sum() / total) if total else float("nan")
    return Scores(
        tuple(class_names), iou.astype(np.float64), miou, accuracy, fw_iou, "nuscenes", cm.matrix.copy()
    )


def _check_names(cm: ConfusionMatrix, class_names: Sequence[str]) -> None:
    if len(class_names) != cm.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {cm.num_classes}-class confusion matrix")
