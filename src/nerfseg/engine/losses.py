"""Supervised point losses: cross-entropy + Lovász-softmax, both ignoring IGNORE_INDEX (weights:
``nerfseg.config.LossConfig``, the run config's ``loss:`` section).

Lovász-softmax (Berman, Rannen Triki, Blaschko, CVPR 2018) is the convex Lovász extension of the
per-class Jaccard loss, evaluated on the errors ``|fg_c - p_c|`` sorted in decreasing order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nerfseg.config import LossConfig
from nerfseg.data.sample import IGNORE_INDEX


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors.

    Args:
        gt_sorted: (P, K) float foreground indicators (1 / 0) of K classes, each column sorted by decreasing
            error of that class.

    Returns:
        (P, K) float weights ``g`` so that the class loss is ``sum_i errors_sorted[i] * g[i]``.
    """
    gts = gt_sorted.sum(dim=0, keepdim=True)
    intersection = gts - gt_sorted.cumsum(dim=0)
    union = gts + (1.0 - gt_sorted).cumsum(dim=0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.shape[0] > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], dim=0)
    return jaccard


def lovasz_softmax(
    probs: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Lovász-softmax loss averaged over the classes present in ``labels``.

    Args:
        probs: (N, C) float class probabilities (softmax of the logits).
        labels: (N,) int64 train ids in [0, C) or ``ignore_index``.

    Returns:
        scalar float tensor; 0 (connected to the graph) when no point is labeled.
    """
    valid = labels != ignore_index
    probs = probs[valid].float()
    labels = labels[valid]
    if labels.numel() == 0:
        return probs.sum() * 0.0
    num_classes = probs.shape[1]
    foreground = F.one_hot(labels, num_classes).to(probs.dtype)  # (P, C)
    present = foreground.sum(dim=0) > 0
    errors = (foreground - probs).abs()[:, present]
    foreground = foreground[:, present]
    errors_sorted, order = torch.sort(errors, dim=0, descending=True)
    gt_sorted = torch.gather(foreground, 0, order)
    per_class = (errors_sorted * lovasz_grad(gt_sorted)).sum(dim=0)
    return per_class.mean()


class SegmentationLoss(torch.nn.Module):
    """Cross-entropy + Lovász-softmax on point logits; returns the terms and their weighted total."""

    def __init__(self, cfg: LossConfig, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.cfg = cfg
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """logits (N, C) float (computed in float32), labels (N,) int64 -> {"ce", "lovasz", "total"}."""
        logits = logits.float()
        if bool((labels != self.ignore_index).any()):
            ce = F.cross_entropy(
                logits, labels, ignore_index=self.ignore_index, label_smoothing=self.cfg.label_smoothing
            )
        else:
            ce = logits.sum() * 0.0
        lovasz = lovasz_softmax(logits.softmax(dim=1), labels, self.ignore_index)
        total = self.cfg.ce_weight * ce + self.cfg.lovasz_weight * lovasz
        return {"ce": ce, "lovasz": lovasz, "total": total}
