"""ScribbleKITTI-style sparse labels: points along short straight strokes drawn in bird's-eye view across
same-class regions, until about a target fraction of the points carries a label."""

from __future__ import annotations

import numpy as np


def scribble_mask(
    xyz: np.ndarray,
    semantic: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    stroke_width_m: float = 0.25,
    max_strokes: int = 4000,
) -> np.ndarray:
    """(N,) bool: the points a scribbler would label.

    xyz: (N, 3) metres; semantic: (N,) raw ids (0 = unlabeled, never scribbled). Each stroke starts at a
    random unlabeled point of a class drawn with probability proportional to sqrt(class size) (so small
    classes get strokes too), runs 2-12 m in a random horizontal direction through it, and labels the
    points of that class within ``stroke_width_m`` (horizontal distance) of the segment and within 1 m
    of the seed's height. Strokes are added until ``fraction`` of the points is labeled.
    """
    n = xyz.shape[0]
    mask = np.zeros(n, bool)
    target = int(round(fraction * n))
    classes, counts = np.unique(semantic[semantic > 0], return_counts=True)
    if target == 0 or classes.size == 0:
        return mask
    members = {int(c): np.nonzero(semantic == c)[0] for c in classes}
    prob = np.sqrt(counts) / np.sqrt(counts).sum()
    for _ in range(max_strokes):
        if mask.sum() >= target:
            break
        c = int(classes[rng.choice(len(classes), p=prob)])
        idx = members[c]
        free = idx[~mask[idx]]
        if free.size == 0:
            continue
        seed = xyz[free[rng.integers(free.size)]]
        angle = rng.uniform(0, np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        half = rng.uniform(1.0, 6.0)
        rel = xyz[idx, :2] - seed[:2]
        along = np.clip(rel @ direction, -half, half)
        dist = np.linalg.norm(rel - along[:, None] * direction, axis=1)
        hit = (dist <= stroke_width_m) & (np.abs(xyz[idx, 2] - seed[2]) <= 1.0)
        mask[idx[hit]] = True
    return mask
