"""Glue of `nerfseg masks --preview`: masks of one camera image, plus (when the camera has per-pixel ground
truth) a noisy stand-in teacher distribution and its fused pseudo-labels, drawn by nerfseg.viz. A command
helper, not a sub-command: it composes masks, ssl.fusion and viz, which only a command may import together."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfseg.data.sample import CameraFrame


def write_preview(
    path: str | Path,
    image: np.ndarray,
    mask_ids: np.ndarray,
    camera: CameraFrame,
    dataset: str,
    tau_mask: float,
    tau_pix: float,
    seed: int = 0,
) -> Path:
    """Write the preview PNG of one image.

    Args:
        path: output .png.
        image: (H, W, 3) uint8 RGB.
        mask_ids: (H, W) int32 mask ids.
        camera: its CameraFrame; ``semantic_path`` (raw ids of the dataset) enables the pseudo-label panels.
        dataset: dataset kind (picks the label map for the ground truth and class colours).
        tau_mask, tau_pix: fusion thresholds.
        seed: seed of the stand-in teacher's noise.
    """
    from nerfseg.viz.masks_preview import save_masks_preview

    if camera.semantic_path is None:
        return save_masks_preview(path, image, mask_ids)
    import torch

    from nerfseg.data.datasets import DatasetKind
    from nerfseg.data.ground_truth import read_semantic_train
    from nerfseg.masks.noisy_teacher import TeacherNoiseConfig, noisy_teacher_opacity, noisy_teacher_probs
    from nerfseg.ssl.fusion import fuse_pseudo_labels

    label_map = DatasetKind(dataset).label_map
    labels = read_semantic_train(camera, label_map)
    probs = noisy_teacher_probs(
        labels, label_map.num_classes, TeacherNoiseConfig(), np.random.default_rng(seed)
    )
    opacity = noisy_teacher_opacity(labels)  # 0 where the ground truth has no class (sky)
    fused, _ = fuse_pseudo_labels(
        torch.from_numpy(probs), torch.from_numpy(opacity), torch.from_numpy(mask_ids), tau_mask, tau_pix
    )
    return save_masks_preview(
        path,
        image,
        mask_ids,
        probs=probs,
        pseudo_labels=fused.numpy(),
        palette=label_map.colors,
        probs_title="noisy ground truth (stand-in teacher, argmax)",
    )
