"""Camera-ray self-supervision of one step (DESIGN.md steps 8-10) on an unlabeled batch.

Per unlabeled scan and chosen camera:

1. the teacher renders the camera's reduced pixel grid (:class:`nerfseg.geometry.rays.PixelGrid`, every
   ``stride``-th pixel) through its own volume, without gradients;
2. the rendered distribution is fused with the image's cached masks, read at the same pixels, gated by the
   rendered opacity (:func:`nerfseg.ssl.fusion.fuse_pseudo_labels`);
3. the confidence sampler draws the ray budget among the pseudo-labeled pixels;
4. the student renders exactly those pixels' rays in its own view of the scan (the cameras follow each view's
   augmentation, so a pixel's ray meets the same surface), and the loss is the cross-entropy of its rendered
   distribution against the pseudo-labels.

The oracle diagnostic (``oracle: true``) replaces step 2 by the ground-truth semantic image at the same pixels
(with the same opacity gate), an upper bound for what better pseudo-labels could give.

With ``appearance.enabled`` a fused pixel label is kept only where the frozen appearance net
(:mod:`nerfseg.ssl.appearance`), trained on the labeled scans' images, labels the same cell with the same
class; the rest get no label (step 2b, before the sampler and the point route).

With ``veto.enabled`` a fused pixel label is dropped where a LiDAR point of the teacher's view is the cell's
rendered surface and the teacher's point classifier is sure of another class there (step 2a, before the
appearance gate; :func:`nerfseg.ssl.camera_points.veto_by_surface_points`).

With ``points.weight > 0`` the fused pixel labels also go to the teacher view's points whose distance agrees
with the rendered surface of their cell (:mod:`nerfseg.ssl.camera_points`); the caller learns them with the
point classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.geometry.rays import PixelGrid, RayBundle, camera_ray_bundle, read_at_pixels
from nerfseg.models.appearance import grid_probs
from nerfseg.ssl.appearance import appearance_gate
from nerfseg.ssl.camera_points import camera_point_cells, camera_point_labels, veto_by_surface_points
from nerfseg.ssl.config import CameraRaysConfig
from nerfseg.ssl.fusion import fuse_pseudo_labels
from nerfseg.ssl.ray_sampler import pixel_flat_index, sample_rays_with


@dataclass
class PixelPseudoLabels:
    """The teacher's render of one camera's reduced grid and its fused pseudo-labels, all (H', W'[, C]).

    Attributes:
        labels: int64 pseudo-labels, IGNORE_INDEX where none; confidence: float32 their confidence.
        depth: float32 rendered ``D`` (sum of weight x distance from the camera centre), metres;
        opacity: float32 rendered opacity ``A``; probs: (H', W', C) the rendered class distribution the
        labels were fused from (``RenderOutput.probs``).
    """

    labels: torch.Tensor
    confidence: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    probs: torch.Tensor


@dataclass
class CameraLoss:
    """What :func:`camera_render_loss` returns: the render loss (scalar), the metrics to log, and the point
    route's (N,) int64 pseudo-labels of the teacher view's points (IGNORE_INDEX where none; None when
    ``points.weight`` is 0)."""

    loss: torch.Tensor
    metrics: dict[str, float]
    point_labels: torch.Tensor | None


def camera_pseudo_labels(
    head, volume, camera, grid: PixelGrid, pixels, scan: int, camera_index: int, mask_ids, truth,
    cfg: CameraRaysConfig,
) -> PixelPseudoLabels:
    """Teacher render + fusion of one camera image on its reduced grid.

    Args:
        head: the teacher's NeRF head; volume: its render volume of the batch (``head.build_volume``).
        camera: the teacher view's CameraFrame; grid: its reduced grid; pixels: ``grid.pixels`` on the device.
        scan / camera_index: the camera's scan in the batch and its index.
        mask_ids: (H, W) int mask ids of the full image (-1 = none); truth: (H', W') int64 ground-truth train
            ids on the grid or None (read only by the oracle).
        cfg: the camera-ray settings.

    Returns:
        the pseudo-labels with the render they come from (:class:`PixelPseudoLabels`).
    """
    bundle = camera_ray_bundle(camera, pixels, scan=scan, camera_index=camera_index)
    rendered = head.render_clipped(volume, bundle)
    h, w = grid.shape
    probs = rendered.probs.view(h, w, -1)
    opacity = rendered.opacity.view(h, w)
    depth = rendered.depth.view(h, w)
    if cfg.oracle:
        if truth is None:
            raise ValueError(f"{camera.image_path}: ssl.camera.oracle needs a ground-truth semantic image")
        labels = torch.where(opacity >= cfg.tau_opacity, truth, torch.full_like(truth, IGNORE_INDEX))
        return PixelPseudoLabels(labels, (labels != IGNORE_INDEX).float(), depth, opacity, probs)
    ids = torch.as_tensor(read_at_pixels(mask_ids, grid.pixels)).to(pixels.device).view(h, w)
    labels, confidence = fuse_pseudo_labels(
        probs, opacity, ids, cfg.fusion.tau_mask, cfg.fusion.tau_pix, cfg.tau_opacity
    )
    return PixelPseudoLabels(labels, confidence.float(), depth, opacity, probs)


def camera_render_loss(
    models, teacher, student_out, unlabeled, cfg: CameraRaysConfig, num_classes: int,
    generator: torch.Generator, student_volume=None,
) -> CameraLoss:
    """Cross-entropy of the student's rendered rays against fused pseudo-labels, over the batch's chosen
    cameras; returns the loss, the metrics (rays drawn, pseudo-label coverage / accuracy against the
    ground-truth images where the dataset has them) and, with ``cfg.points.weight > 0``, the point route's
    labels of the teacher view's points. ``teacher``: the teacher's predictions on the teacher view
    (:class:`nerfseg.ssl.methods.TeacherPoints`: its output renders, its point classes veto).
    ``student_volume``: the student head's volume of ``student_out`` when the caller already built it."""
    device = student_out.point_logits.device
    teacher_head = models.teacher["head"]
    with torch.no_grad():
        teacher_volume = teacher_head.build_volume(teacher.output)
    bundles: list[RayBundle] = []
    targets: list[torch.Tensor] = []
    labeled_pixels = total_pixels = correct = scored = fused_pixels = vetoed_pixels = vetoable_pixels = 0
    view = unlabeled.teacher
    point_labels = None
    if cfg.points.weight > 0:
        point_labels = torch.full((view.points.shape[0],), IGNORE_INDEX, dtype=torch.int64, device=device)
    for scan, cameras in enumerate(unlabeled.cameras):
        for slot, c in enumerate(cameras):
            camera = unlabeled.teacher.samples[scan].cameras[c]
            grid = PixelGrid(*camera.image_size, cfg.stride)
            pixels = grid.pixels.to(device)
            truth = unlabeled.pixel_truth[scan][slot] if unlabeled.pixel_truth[scan] else None
            if truth is not None:  # the ground truth on the grid, read once: metrics and the oracle
                truth = torch.as_tensor(read_at_pixels(truth, grid.pixels)).to(device).view(grid.shape).long()
            mask_ids = unlabeled.mask_ids[scan][slot] if unlabeled.mask_ids[scan] else None
            pseudo = camera_pseudo_labels(
                teacher_head, teacher_volume, camera, grid, pixels, scan, c, mask_ids, truth, cfg
            )
            labels, confidence = pseudo.labels, pseudo.confidence
            rows = None
            if (cfg.veto.enabled and not cfg.oracle) or point_labels is not None:
                rows = torch.nonzero(view.batch_index == scan).squeeze(1)  # the scan's points in the view
            if cfg.veto.enabled and not cfg.oracle:
                cells = camera_point_cells(view.points[rows, :3], camera, grid, pseudo.depth, pseudo.opacity,
                                           cfg.veto.depth_tolerance, cfg.tau_opacity)
                before = int((labels != IGNORE_INDEX).sum())
                labels = veto_by_surface_points(
                    labels, cells, teacher.classes[rows], teacher.confidence[rows], cfg.veto.min_confidence
                )
                vetoed_pixels += before - int((labels != IGNORE_INDEX).sum())
                vetoable_pixels += before
            if cfg.appearance.enabled and not cfg.oracle:
                fused_pixels += int((labels != IGNORE_INDEX).sum())
                image = torch.as_tensor(unlabeled.images[scan][slot]).to(device)
                with torch.no_grad():
                    labels = appearance_gate(labels, grid_probs(models.appearance, image, grid))
            if point_labels is not None:
                found = camera_point_labels(
                    view.points[rows, :3], camera, grid, labels, pseudo.depth, pseudo.opacity,
                    cfg.points.depth_tolerance, cfg.tau_opacity,
                )
                # a point seen by several chosen cameras keeps the first camera's label
                kept = point_labels[rows]
                point_labels[rows] = torch.where(kept == IGNORE_INDEX, found, kept)
            has_label = labels != IGNORE_INDEX
            labeled_pixels += int(has_label.sum())
            total_pixels += labels.numel()
            if truth is not None:
                ok = has_label & (truth != IGNORE_INDEX)
                scored += int(ok.sum())
                correct += int((labels[ok] == truth[ok]).sum())
            drawn, ray_labels = sample_rays_with(cfg.sampler, labels, confidence, generator)
            if drawn.shape[0] == 0:
                continue
            student_camera = unlabeled.student.samples[scan].cameras[c]
            drawn_pixels = pixels[pixel_flat_index(drawn, grid.shape[1])]
            bundles.append(camera_ray_bundle(student_camera, drawn_pixels, scan=scan, camera_index=c))
            targets.append(ray_labels)
    metrics = {"render_pseudo_coverage": labeled_pixels / max(total_pixels, 1)}
    if fused_pixels:
        metrics["appearance_kept"] = labeled_pixels / fused_pixels
    if vetoable_pixels:
        metrics["teacher_vetoed"] = vetoed_pixels / vetoable_pixels
    if scored:
        metrics["render_pseudo_accuracy"] = correct / scored
    if not bundles:
        metrics["render_rays"] = 0.0
        return CameraLoss(student_out.point_logits.float().sum() * 0.0, metrics, point_labels)
    bundle = RayBundle.cat(bundles)
    labels = torch.cat(targets)
    student_head = models.head
    volume = student_head.build_volume(student_out) if student_volume is None else student_volume
    rendered = student_head.render_grid(volume, bundle, generator=generator)
    picked = rendered.probs.gather(1, labels.unsqueeze(1)).squeeze(1)
    loss = -torch.log(picked.clamp_min(student_head.cfg.eps)).mean()
    metrics["render_rays"] = float(labels.numel())
    metrics["render_opacity"] = float(rendered.opacity.detach().mean())
    return CameraLoss(loss, metrics, point_labels)
