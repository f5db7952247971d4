"""The projection baseline's pseudo-labels for an unlabeled batch: the teacher's point classes vote inside
each cached mask of the chosen cameras (:func:`nerfseg.ssl.projection.projection_pseudo_labels`), computed
on the teacher's view of each scan (its cameras follow that view's augmentation)."""

from __future__ import annotations

import torch

from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.ssl.config import ProjectionConfig
from nerfseg.ssl.projection import pixel_label_of_points, project_to_pixels, projection_pseudo_labels


def projection_labels(unlabeled, teacher_classes: torch.Tensor, num_classes: int, cfg: ProjectionConfig
                      ) -> torch.Tensor:
    """(N,) int64 pseudo-labels of the unlabeled batch's points (IGNORE_INDEX where no mask decides).

    Args:
        unlabeled: an UnlabeledBatch (teacher view, chosen cameras, their mask ids).
        teacher_classes: (N,) int64 the teacher's argmax class per point of the teacher view.
    """
    view = unlabeled.teacher
    out = torch.full_like(teacher_classes, IGNORE_INDEX)
    for scan, cameras in enumerate(unlabeled.cameras):
        if not cameras:
            continue
        rows = torch.nonzero(view.batch_index == scan).squeeze(1)
        sample = view.samples[scan]
        if cfg.oracle:
            out[rows] = _oracle_labels(view.points[rows, :3], sample, cameras, unlabeled.pixel_truth[scan])
            continue
        labels = projection_pseudo_labels(
            view.points[rows, :3],
            [sample.cameras[c] for c in cameras],
            unlabeled.mask_ids[scan],
            teacher_classes[rows],
            num_classes,
            cfg.min_votes,
            cfg.min_agreement,
        )
        out[rows] = labels
    return out


def _oracle_labels(xyz: torch.Tensor, sample, cameras: list[int], truth: list) -> torch.Tensor:
    """(N,) int64 ground-truth pixel class where each point projects (first camera that sees it)."""
    out = torch.full((xyz.shape[0],), IGNORE_INDEX, dtype=torch.int64, device=xyz.device)
    for c, image in zip(cameras, truth, strict=True):
        camera = sample.cameras[c]
        if image is None:
            raise ValueError(f"{camera.image_path}: ssl.projection.oracle needs a ground-truth image")
        pixels, visible = project_to_pixels(xyz, camera.K, camera.lidar_to_cam, camera.image_size)
        labels = pixel_label_of_points(pixels, visible, image).to(out.device)
        out = torch.where(out == IGNORE_INDEX, labels, out)
    return out
