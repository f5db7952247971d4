"""Preview figure of the mask cache tool: the image, its masks in random colours and, where a class
distribution is available, the argmax and the fused pseudo-labels, stacked top to bottom with titles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.io_utils import atomic_write

TITLE_HEIGHT = 14


def mask_colors(mask_ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """Random but stable colour per mask id.

    Args:
        mask_ids: (H, W) int mask ids, -1 = no mask.
    Returns:
        (H, W, 3) uint8 RGB; black where no mask.
    """
    mask_ids = np.asarray(mask_ids)
    top = int(mask_ids.max()) + 1 if mask_ids.size and mask_ids.max() >= 0 else 0
    palette = np.random.default_rng(seed).integers(40, 256, size=(max(top, 1), 3), dtype=np.uint8)
    out = np.zeros(mask_ids.shape + (3,), dtype=np.uint8)
    valid = mask_ids >= 0
    out[valid] = palette[mask_ids[valid]]
    return out


def label_colors(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) train ids -> (H, W, 3) uint8 with ``palette`` (C, 3); black for IGNORE_INDEX."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape + (3,), dtype=np.uint8)
    valid = (labels != IGNORE_INDEX) & (labels >= 0) & (labels < len(palette))
    out[valid] = np.asarray(palette, dtype=np.uint8)[labels[valid]]
    return out


def compose_panels(panels: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
    """Stack (title, (H, W, 3) uint8) panels of one size top to bottom, each under a title strip.

    Returns (n * (H + TITLE_HEIGHT), W, 3) uint8.
    """
    from PIL import Image, ImageDraw

    rows = []
    for title, panel in panels:
        strip = Image.new("RGB", (panel.shape[1], TITLE_HEIGHT), (255, 255, 255))
        ImageDraw.Draw(strip).text((3, 1), title, fill=(0, 0, 0))
        rows += [np.asarray(strip), np.asarray(panel, dtype=np.uint8)]
    return np.concatenate(rows, axis=0)


def save_masks_preview(
    path: str | Path,
    image: np.ndarray,
    mask_ids: np.ndarray,
    probs: np.ndarray | None = None,
    pseudo_labels: np.ndarray | None = None,
    palette: np.ndarray | None = None,
    probs_title: str = "class distribution (argmax)",
) -> Path:
    """Write the preview PNG atomically.

    Args:
        path: output .png.
        image: (H, W, 3) uint8 RGB.
        mask_ids: (H, W) int mask ids (-1 none).
        probs: optional (H, W, C) class distribution; its argmax is shown (black where all zero).
        pseudo_labels: optional (H, W) fused train ids with IGNORE_INDEX (black).
        palette: (C, 3) uint8 class colours, needed with probs / pseudo_labels.
    """
    from PIL import Image

    num_masks = int(mask_ids.max()) + 1 if mask_ids.size and mask_ids.max() >= 0 else 0
    panels = [("image", image), (f"masks ({num_masks})", mask_colors(mask_ids))]
    if probs is not None:
        argmax = np.where(probs.max(-1) > 0, probs.argmax(-1), IGNORE_INDEX)
        panels.append((probs_title, label_colors(argmax, palette)))
    if pseudo_labels is not None:
        share = float((pseudo_labels != IGNORE_INDEX).mean())
        title = f"fused pseudo-labels ({share:.0%} of pixels labeled)"
        panels.append((title, label_colors(pseudo_labels, palette)))
    figure = compose_panels(panels)

    def write(f):
        Image.fromarray(figure).save(f, format="PNG")

    return atomic_write(path, write)
