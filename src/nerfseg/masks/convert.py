"""Conversions between mask representations: stacks of boolean masks and mask-id images."""

from __future__ import annotations

import numpy as np

from nerfseg.masks.source import NO_MASK


def masks_to_id_image(masks: np.ndarray) -> np.ndarray:
    """Turn a stack of boolean masks into one mask-id image; the smallest mask wins where masks overlap.

    Args:
        masks: (K, H, W) bool, one boolean mask per entry (K may be 0).
    Returns:
        (H, W) int32 mask ids: pixel gets the index k of the smallest (fewest pixels) mask covering it,
        ties broken by the lower index; -1 where no mask covers it. Ids are then renumbered to the
        consecutive range [0, M) in the order of the masks in the stack (masks hidden entirely by
        smaller ones get no id).
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"expected a (K, H, W) stack of masks, got shape {masks.shape}")
    k, h, w = masks.shape
    if k == 0:
        return np.full((h, w), NO_MASK, dtype=np.int32)
    areas = masks.reshape(k, -1).sum(axis=1)
    order = np.argsort(areas, kind="stable")  # smallest first, ties by lower index
    ids = np.full((h, w), NO_MASK, dtype=np.int64)
    chunk = max(1, (1 << 24) // max(1, k * w))  # bound the (K, rows, W) temporary to ~16 MB
    for start in range(0, h, chunk):  # loop over row blocks only (memory bound), vectorised inside
        block = masks[order, start : start + chunk]  # (K, rows, W), smallest mask first
        covered = block.any(axis=0)
        first = block.argmax(axis=0)  # first True = smallest covering mask
        ids[start : start + chunk] = np.where(covered, order[first], NO_MASK)
    return compact_ids(ids)


def compact_ids(mask_ids: np.ndarray) -> np.ndarray:
    """Renumber the mask ids of an (H, W) int image to [0, M) keeping their order; -1 (or any negative) -> -1.

    Returns (H, W) int32.
    """
    mask_ids = np.asarray(mask_ids)
    out = np.full(mask_ids.shape, NO_MASK, dtype=np.int32)
    valid = mask_ids >= 0
    if valid.any():
        _, inverse = np.unique(mask_ids[valid], return_inverse=True)
        out[valid] = inverse.astype(np.int32)
    return out
