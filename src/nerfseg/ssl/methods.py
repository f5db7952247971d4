"""The losses of one training step, part by part (DESIGN.md step 10):

    L = L_sup(labeled) [+ w_mt L_consistency] [+ w_mix L_lasermix] [+ w_proj L_projection]
        [+ lambda_nerf L_render] [+ w_pts L_camera_points] [+ L_geometry(labeled) + L_geometry(unlabeled)]

:func:`method_losses` adds the parts a :class:`~nerfseg.ssl.recipe.Recipe` names. Unlabeled scans reach
the losses only through the teacher's pseudo-labels, their masks and their geometry: the
:class:`~nerfseg.engine.streams.UnlabeledBatch` carries no labels into this module except
``metric_labels``, which only the accuracy logs read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nerfseg.data.collate import PointBatch
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.engine.losses import SegmentationLoss
from nerfseg.ssl.config import SslConfig
from nerfseg.ssl.recipe import Recipe


@dataclass
class StepModels:
    """What a step trains and reads: the student segmentor, the NeRF head (or None), the EMA teacher (or
    None, a :class:`~nerfseg.engine.teacher.MeanTeacher` holding ``model`` and ``head`` copies) and the frozen
    appearance net of ``ssl.camera.appearance`` (or None)."""

    model: nn.Module
    head: nn.Module | None
    teacher: nn.Module | None
    appearance: nn.Module | None = None


@dataclass
class TeacherPoints:
    """The teacher's point predictions on an unlabeled batch's teacher view.

    Attributes:
        classes: (N,) int64 argmax classes; confidence: (N,) float32 their softmax probability.
        output: the teacher segmentor's output (voxel features for the teacher's renders).
    """

    classes: torch.Tensor
    confidence: torch.Tensor
    output: object


def pseudo_label_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the points with a pseudo-label (0, in the graph, when there is none).

    Shapes: logits (N, C), labels (N,) int64 train ids or IGNORE_INDEX."""
    if bool((labels != IGNORE_INDEX).any()):
        return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)
    return logits.float().sum() * 0.0


def class_balanced_pseudo_label_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the points with a pseudo-label, each class weighing the same in total: a point of
    class c weighs ``n / (k * n_c)`` (n labeled points, k classes present, n_c points of class c), so the mean
    weight over the labeled points is 1 and a class with few pseudo-labeled points is not drowned by road
    (0, in the graph, when no point has a label).

    Shapes: logits (N, C), labels (N,) int64 train ids or IGNORE_INDEX."""
    labeled = labels != IGNORE_INDEX
    if not bool(labeled.any()):
        return logits.float().sum() * 0.0
    kept = labels[labeled]
    counts = torch.bincount(kept, minlength=logits.shape[1]).float()
    present = int((counts > 0).sum())
    weights = kept.numel() / (present * counts[kept])
    per_point = F.cross_entropy(logits.float()[labeled], kept, reduction="none")
    return (weights * per_point).sum() / kept.numel()


@torch.no_grad()
def teacher_points(teacher: nn.Module, batch: PointBatch) -> TeacherPoints:
    """Run the teacher segmentor (eval mode, no gradients) on a batch."""
    out = teacher["model"](batch)
    probs = out.point_logits.float().softmax(dim=1)
    confidence, classes = probs.max(dim=1)
    return TeacherPoints(classes, confidence, out)


def confident_labels(points: TeacherPoints, threshold: float) -> torch.Tensor:
    """(N,) int64 teacher classes where the teacher's confidence >= threshold, IGNORE_INDEX elsewhere."""
    ignore = torch.full_like(points.classes, IGNORE_INDEX)
    return torch.where(points.confidence >= threshold, points.classes, ignore)


def teacher_filtered_labels(
    labels: torch.Tensor, points: TeacherPoints, agree: bool, min_confidence: float
) -> torch.Tensor:
    """Camera pseudo-labels kept only where the teacher's point classifier backs them.

    Args:
        labels: (N,) int64 pseudo-labels of the teacher view's points, IGNORE_INDEX where none.
        points: the teacher's point classes and softmax confidences of the same N points.
        agree: keep a label only where the teacher's point class is the same.
        min_confidence: and only where the teacher's softmax peaks at >= this (0 = no condition).
    Returns:
        (N,) int64 labels, IGNORE_INDEX where dropped.
    """
    keep = labels != IGNORE_INDEX
    if agree:
        keep = keep & (labels == points.classes)
    if min_confidence > 0:
        keep = keep & (points.confidence >= min_confidence)
    return torch.where(keep, labels, torch.full_like(labels, IGNORE_INDEX))


def label_accuracy(pseudo: torch.Tensor, truth: torch.Tensor | None) -> dict[str, float]:
    """Share of points given a pseudo-label and the accuracy of those labels against the ground truth the
    training never sees (``truth`` IGNORE_INDEX points are left out of the accuracy)."""
    pseudo = pseudo.detach().cpu()
    labeled = pseudo != IGNORE_INDEX
    result = {"coverage": float(labeled.float().mean()) if pseudo.numel() else 0.0}
    if truth is not None:
        scored = labeled & (truth != IGNORE_INDEX)
        if bool(scored.any()):
            result["accuracy"] = float((pseudo[scored] == truth[scored]).float().mean())
    return result


def method_losses(
    recipe: Recipe,
    models: StepModels,
    loss_fn: SegmentationLoss,
    ssl: SslConfig,
    labeled: PointBatch,
    unlabeled,
    generator: torch.Generator,
    num_classes: int,
    ramp: float = 1.0,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The named losses of one step and the scalar metrics to log.

    Args:
        recipe: the method's parts.
        models: student, head, teacher (on the batches' device).
        loss_fn: CE + Lovász of the labeled points (also used on LaserMix's mixed scans).
        ssl: the parts' settings.
        labeled: labeled PointBatch (with labels).
        unlabeled: an :class:`~nerfseg.engine.streams.UnlabeledBatch` on the device, or None when the recipe
            draws none.
        generator: random source of LiDAR rays, camera rays, LaserMix areas (on the device).
        num_classes: C.
        ramp: weight of the pseudo-label terms at this step (:func:`nerfseg.ssl.ramp.pseudo_label_ramp`),
            applied on top of each term's own weight.

    Returns:
        (losses: each weighted term and ``total``, all scalar tensors; metrics: floats such as
        ``ce``, ``lovasz``, ``geo_depth``, ``pseudo_accuracy``).
    """
    terms: dict[str, torch.Tensor] = {}
    metrics: dict[str, float] = {}
    if recipe.uses_teacher:
        metrics["pseudo_ramp"] = ramp
    out_labeled = models.model(labeled)
    sup = loss_fn(out_labeled.point_logits, labeled.labels)
    terms["supervised"] = sup["total"]
    metrics.update(ce=float(sup["ce"].detach()), lovasz=float(sup["lovasz"].detach()))
    if recipe.geometry:
        _add_geometry(terms, metrics, "labeled", models.head, out_labeled, labeled, generator)
    if unlabeled is not None and recipe.uses_unlabeled:
        _unlabeled_terms(
            recipe, models, loss_fn, ssl, labeled, unlabeled, generator, num_classes, terms, metrics, ramp
        )
    terms["total"] = torch.stack([v.float() for v in terms.values()]).sum()
    return terms, metrics


def _add_geometry(
    terms, metrics, which: str, head, seg_out, batch: PointBatch, generator, volume=None
) -> None:
    from nerfseg.models.nerf.losses import lidar_ray_losses

    geo = lidar_ray_losses(head, seg_out, batch, generator, volume)
    terms[f"geometry_{which}"] = geo["total"]
    for key in ("depth", "opacity", "free", "semantic", "num_rays"):
        metrics[f"geo_{which}_{key}"] = float(geo[key].detach())


def _unlabeled_terms(
    recipe, models, loss_fn, ssl, labeled, unlabeled, generator, num_classes, terms, metrics, ramp
) -> None:
    truth = unlabeled.metric_labels
    teacher = teacher_points(models.teacher, unlabeled.teacher) if recipe.uses_teacher else None
    student = models.model(unlabeled.student)
    # the student head's volume of the unlabeled scans, built once for the camera and the geometry losses
    student_volume = models.head.build_volume(student) if recipe.uses_head else None
    if recipe.consistency:
        pseudo = confident_labels(teacher, ssl.pseudo.threshold)
        terms["consistency"] = ramp * ssl.pseudo.weight * pseudo_label_ce(student.point_logits, pseudo)
        _log_accuracy(metrics, "consistency", pseudo, truth)
    if recipe.lasermix:
        from nerfseg.ssl.lasermix import lasermix_batch

        pseudo = confident_labels(teacher, ssl.pseudo.threshold)
        mixed = lasermix_batch(
            labeled, unlabeled.student, pseudo, ssl.lasermix.areas, ssl.lasermix.pitch_min,
            ssl.lasermix.pitch_max, generator,
        )
        out_mixed = models.model(mixed.batch)
        mixed_loss = loss_fn(out_mixed.point_logits, mixed.batch.labels)["total"]
        terms["lasermix"] = ramp * ssl.lasermix.weight * mixed_loss
    if recipe.projection:
        from nerfseg.ssl.projection_step import projection_labels

        pseudo = projection_labels(unlabeled, teacher.classes, num_classes, ssl.projection)
        terms["projection"] = ramp * ssl.projection.weight * pseudo_label_ce(student.point_logits, pseudo)
        _log_accuracy(metrics, "projection", pseudo, truth)
    if recipe.camera:
        from nerfseg.ssl.camera_step import camera_render_loss

        camera = camera_render_loss(
            models, teacher, student, unlabeled, ssl.camera, num_classes, generator, student_volume
        )
        terms["render"] = ramp * ssl.camera.weight * camera.loss
        metrics.update(camera.metrics)
        if camera.point_labels is not None:
            pseudo = teacher_filtered_labels(
                camera.point_labels, teacher, ssl.camera.points.agree_with_teacher,
                ssl.camera.points.min_teacher_confidence,
            )
            weight = ramp * ssl.camera.points.weight
            ce = class_balanced_pseudo_label_ce if ssl.camera.points.class_balanced else pseudo_label_ce
            terms["camera_points"] = weight * ce(student.point_logits, pseudo)
            _log_accuracy(metrics, "camera_points", pseudo, truth)
    if recipe.geometry:
        _add_geometry(
            terms, metrics, "unlabeled", models.head, student, unlabeled.student, generator, student_volume
        )


def _log_accuracy(metrics: dict[str, float], name: str, pseudo: torch.Tensor, truth) -> None:
    scores = label_accuracy(pseudo, truth)
    metrics[f"{name}_pseudo_coverage"] = scores["coverage"]
    if "accuracy" in scores:
        metrics[f"{name}_pseudo_accuracy"] = scores["accuracy"]
