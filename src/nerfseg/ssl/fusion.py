"""Fusion of rendered class distributions with class-agnostic masks into pixel pseudo-labels
(DESIGN.md step 8). Pure torch functions, vectorised over masks with scatter-adds."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nerfseg.data.sample import IGNORE_INDEX


@dataclass
class FusionConfig:
    """Thresholds of :func:`fuse_pseudo_labels`.

    Defaults: tau_mask 0.4 gave the best accuracy / coverage trade-off of the fusion benchmark
    (benchmarks/results/fusion_quality.md: 0.985 accuracy on 93% of the pixels, from a 0.679 argmax).

    Attributes:
        tau_mask: a mask's pixels take its class where the mask's mean distribution peaks at >= tau_mask.
        tau_pix: a pixel in no mask keeps its own argmax where its own distribution peaks at >= tau_pix.
    (The opacity gate ``tau_opacity`` lives with the camera-ray settings, ``ssl.camera.tau_opacity``.)
    """

    tau_mask: float = 0.4
    tau_pix: float = 0.9


def fuse_pseudo_labels(
    probs: torch.Tensor,
    opacity: torch.Tensor,
    mask_ids: torch.Tensor,
    tau_mask: float,
    tau_pix: float,
    tau_opacity: float = 0.5,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-labels from a rendered class distribution, its opacity and a mask-id image, gated by opacity.

    A pixel is *opaque* when its ray's opacity ``A(u) >= tau_opacity`` (and it is valid). Only opaque pixels
    carry evidence and only opaque pixels get labels: the rendered P is divided by the opacity, so a ray 1 %
    opaque would otherwise fuse to a confident label.

    For each mask m: ``p̄_m`` = mean of ``P(u)`` over its OPAQUE pixels, ``c_m = argmax p̄_m``,
    ``conf_m = max p̄_m``; the opaque pixels of m get ``c_m`` with confidence ``conf_m`` where
    ``conf_m >= tau_mask`` (a mask with no opaque pixel gives no label; its transparent pixels never get one).
    Opaque pixels in no mask get ``argmax P(u)`` with confidence ``max P(u)`` where ``max P(u) >= tau_pix``.
    Every other pixel gets IGNORE_INDEX and confidence 0.

    Args:
        probs: (H, W, C) float class distribution per pixel: the head's rendered P (``RenderOutput.probs``,
            normalised by the opacity, so rows sum to ~1 wherever a ray is opaque), or any per-pixel class
            distribution; the thresholds tau_mask / tau_pix apply to it as given.
        opacity: (H, W) float rendered opacity A in [0, 1] (``RenderOutput.opacity``).
        mask_ids: (H, W) integer mask ids (any non-negative values, not necessarily consecutive); negative
            = in no mask. Overlaps must already be resolved (one id per pixel).
        tau_mask, tau_pix, tau_opacity: thresholds in [0, 1].
        valid: optional (H, W) bool; invalid pixels (e.g. not rendered) neither contribute to mask means
            nor receive a label.
    Returns:
        labels: (H, W) int64 class ids in [0, C) or IGNORE_INDEX.
        confidence: (H, W) float (dtype of probs) in [0, 1]; 0 where ignored.
    """
    if probs.ndim != 3 or mask_ids.shape != probs.shape[:2] or opacity.shape != probs.shape[:2]:
        raise ValueError(f"expected probs (H, W, C), opacity (H, W) and mask_ids (H, W), got "
                         f"{tuple(probs.shape)}, {tuple(opacity.shape)} and {tuple(mask_ids.shape)}")
    h, w, c = probs.shape
    if c < 1:
        raise ValueError("probs must have at least one class")
    flat_p = probs.reshape(-1, c)
    flat_ids = mask_ids.reshape(-1).to(device=probs.device, dtype=torch.int64)
    ok = opacity.reshape(-1).to(probs.device) >= tau_opacity
    if valid is not None:
        ok = ok & valid.reshape(-1).to(probs.device)
    labels = torch.full((h * w,), IGNORE_INDEX, dtype=torch.int64, device=probs.device)
    confidence = torch.zeros(h * w, dtype=probs.dtype, device=probs.device)

    # Opaque pixels in no mask: their own argmax where confident enough.
    pix_conf, pix_class = flat_p.max(dim=1)
    keep = ok & (flat_ids < 0) & (pix_conf >= tau_pix)
    labels[keep] = pix_class[keep]
    confidence[keep] = pix_conf[keep]

    # Opaque pixels in masks: the mean distribution over the mask's opaque pixels (scatter-add over
    # compacted ids); masks without an opaque pixel never appear here.
    in_mask = ok & (flat_ids >= 0)
    if in_mask.any():
        unique_ids, slot = torch.unique(flat_ids[in_mask], return_inverse=True)
        sums = torch.zeros(unique_ids.numel(), c, dtype=probs.dtype, device=probs.device)
        sums.index_add_(0, slot, flat_p[in_mask])
        counts = torch.bincount(slot, minlength=unique_ids.numel()).to(probs.dtype)
        mask_conf, mask_class = (sums / counts[:, None]).max(dim=1)
        pixel_conf, pixel_class = mask_conf[slot], mask_class[slot]
        accepted = pixel_conf >= tau_mask
        idx = in_mask.nonzero(as_tuple=True)[0][accepted]
        labels[idx] = pixel_class[accepted]
        confidence[idx] = pixel_conf[accepted]
    return labels.reshape(h, w), confidence.reshape(h, w)
