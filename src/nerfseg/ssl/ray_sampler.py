"""Confidence sampler (DESIGN.md step 9): which pseudo-labeled pixels become training rays.

Each pixel with a pseudo-label is drawn with probability proportional to
``confidence(u) ** confidence_power / count(class(u))`` (the second factor, inverse class frequency, only when
class balancing is on), so every class gets about the same share of the budget and confident pixels
dominate within a class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nerfseg.data.sample import IGNORE_INDEX

MIN_WEIGHT = 1e-6
"""Floor of a pixel's confidence weight, so labeled pixels with confidence 0 can still be drawn."""


@dataclass
class RaySamplerConfig:
    """Settings of :func:`sample_rays`.

    Attributes:
        budget: rays drawn per image.
        class_balanced: weight pixels by the inverse frequency of their class in the image.
        confidence_power: exponent of the confidence weight (0 = ignore confidence, 1 = proportional).
        fill_budget: when fewer labeled pixels than ``budget`` exist, draw the rest again with replacement
            so exactly ``budget`` rays come back (default: return each labeled pixel once).
    """

    budget: int = 1024
    class_balanced: bool = True
    confidence_power: float = 1.0
    fill_budget: bool = False


def ray_weights(labels: torch.Tensor, confidence: torch.Tensor, class_balanced: bool = True,
                confidence_power: float = 1.0) -> torch.Tensor:
    """Unnormalised draw weight per pixel.

    Args:
        labels: (H, W) or (N,) int64 pseudo-labels, IGNORE_INDEX where none.
        confidence: same shape, float in [0, 1].
    Returns:
        float32 weights of the same shape; 0 exactly where the label is IGNORE_INDEX, > 0 elsewhere.
    """
    labeled = labels != IGNORE_INDEX
    weights = confidence.float().clamp(min=MIN_WEIGHT) ** confidence_power
    if class_balanced and labeled.any():
        classes = torch.where(labeled, labels, 0).long()
        counts = torch.bincount(classes[labeled], minlength=int(classes.max()) + 1).float()
        weights = weights / counts[classes].clamp(min=1.0)
    return torch.where(labeled, weights, torch.zeros_like(weights))


def sample_rays(
    labels: torch.Tensor,
    confidence: torch.Tensor,
    budget: int,
    generator: torch.Generator | None = None,
    class_balanced: bool = True,
    confidence_power: float = 1.0,
    fill_budget: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw up to ``budget`` pseudo-labeled pixels of one image, weighted by confidence and class balance.

    Args:
        labels: (H, W) int64 pseudo-labels, IGNORE_INDEX where none.
        confidence: (H, W) float pseudo-label confidence in [0, 1].
        budget: rays wanted.
        generator: torch random generator (seed it for repeatable draws).
        class_balanced, confidence_power, fill_budget: see :class:`RaySamplerConfig`.
    Returns:
        pixels: (R, 2) int64 ``(col, row)`` of each drawn pixel of the (H, W) label image (the order of
            ``nerfseg.geometry.rays``; for labels on a reduced grid these are REDUCED indices: the flat index
            ``row * W + col`` picks the ray of a row-major rendering, and the full-resolution pixel is
            ``PixelGrid.pixels[row * W + col]``). Flat indices: :func:`pixel_flat_index`.
        ray_labels: (R,) int64 their pseudo-labels.
        Without replacement: R = budget when at least ``budget`` pixels carry a label; otherwise every labeled
        pixel once (R < budget), plus draws with replacement up to ``budget`` when ``fill_budget``.
        R = 0 when no pixel is labeled.
    """
    if labels.ndim != 2 or confidence.shape != labels.shape:
        raise ValueError(f"expected labels and confidence of one (H, W) shape, got {tuple(labels.shape)} and "
                         f"{tuple(confidence.shape)}")
    h, w = labels.shape
    weights = ray_weights(labels.reshape(-1), confidence.reshape(-1), class_balanced, confidence_power)
    available = int((weights > 0).sum())
    if available == 0 or budget <= 0:
        empty = torch.zeros(0, dtype=torch.int64, device=labels.device)
        return torch.zeros(0, 2, dtype=torch.int64, device=labels.device), empty
    if available >= budget:
        flat = torch.multinomial(weights, budget, replacement=False, generator=generator)
    else:
        flat = (weights > 0).nonzero(as_tuple=True)[0]
        if fill_budget:
            extra = torch.multinomial(weights, budget - available, replacement=True, generator=generator)
            flat = torch.cat([flat, extra])
    pixels = torch.stack([flat % w, flat // w], dim=1)
    return pixels, labels.reshape(-1)[flat].long()


def pixel_flat_index(pixels: torch.Tensor, width: int) -> torch.Tensor:
    """Row-major flat index ``row * width + col`` (R,) int64 of pixels (R, 2) ``(col, row)`` of an image
    ``width`` pixels wide: the index of the pixel's ray in a row-major rendering (e.g. of ``pixel_grid``)."""
    return pixels[:, 1].long() * width + pixels[:, 0].long()


def sample_rays_with(cfg: RaySamplerConfig, labels: torch.Tensor, confidence: torch.Tensor,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sample_rays` with the settings of a :class:`RaySamplerConfig`."""
    return sample_rays(labels, confidence, cfg.budget, generator, cfg.class_balanced, cfg.confidence_power,
                       cfg.fill_budget)
