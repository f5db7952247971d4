"""A stand-in for the teacher's rendered class distribution, made from a ground-truth semantic image with a
documented noise model. Used by the fusion quality benchmark and by `nerfseg masks --preview` when the
dataset has per-pixel ground truth (the built-in simulator's ``semantic_2/``); never used in training.

Noise model (all steps seeded; pixels without ground truth get the all-zero distribution and the zero opacity
of a ray that hits nothing, :func:`noisy_teacher_opacity`):

1. **Blur** — one-hot ground truth, Gaussian-blurred with ``blur_sigma`` pixels: class boundaries bleed as
   in a low-resolution render.
2. **Class confusion** — every class c has one fixed "confuser" class (a random other class); a share
   ``confusion`` of c's probability moves to it: systematic mix-ups such as sidewalk / road.
3. **Noise** — on the log of that distribution (floored at ``floor``), add i.i.d. Gaussian noise of std
   ``pixel_noise`` per pixel and class, plus a spatially smooth Gaussian field (std ``field_noise``,
   correlation length ``field_scale`` pixels) per class; then softmax with ``temperature``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nerfseg.data.sample import IGNORE_INDEX


@dataclass
class TeacherNoiseConfig:
    """Parameters of the noise model above (pixels; probabilities; logit units)."""

    blur_sigma: float = 2.0
    confusion: float = 0.3
    pixel_noise: float = 1.0
    field_noise: float = 0.5
    field_scale: float = 8.0
    floor: float = 0.01
    temperature: float = 1.0


def confuser_classes(num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """(C,) int64: for each class a different random class (identity when C == 1)."""
    if num_classes == 1:
        return np.zeros(1, dtype=np.int64)
    shift = rng.integers(1, num_classes, size=num_classes)
    return (np.arange(num_classes) + shift) % num_classes


def _smooth_noise(shape: tuple[int, int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W, C) Gaussian noise field with unit std per channel and correlation length ``scale`` pixels."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal(shape), sigma=(scale, scale, 0), mode="reflect")
    std = field.reshape(-1, shape[2]).std(axis=0)
    return field / np.where(std > 0, std, 1.0)


def noisy_teacher_probs(
    train_labels: np.ndarray, num_classes: int, cfg: TeacherNoiseConfig, rng: np.random.Generator
) -> np.ndarray:
    """A noisy "rendered" class distribution from ground-truth train ids.

    Args:
        train_labels: (H, W) int train ids in [0, C) or IGNORE_INDEX.
        num_classes: C.
        cfg: noise parameters (see the module docstring).
        rng: numpy random generator (seed it for repeatable benchmarks).
    Returns:
        (H, W, C) float32; rows sum to 1 on labeled pixels and are all zero on IGNORE_INDEX pixels.
    """
    from scipy.ndimage import gaussian_filter

    labels = np.asarray(train_labels)
    h, w = labels.shape
    labeled = labels != IGNORE_INDEX
    onehot = np.zeros((h, w, num_classes), dtype=np.float64)
    vv, uu = np.nonzero(labeled)
    onehot[vv, uu, labels[labeled]] = 1.0
    if cfg.blur_sigma > 0:
        weight = gaussian_filter(labeled.astype(np.float64), cfg.blur_sigma, mode="nearest")
        onehot = gaussian_filter(onehot, (cfg.blur_sigma, cfg.blur_sigma, 0), mode="nearest")
        onehot /= np.maximum(weight, 1e-6)[..., None]  # renormalise next to unlabeled pixels
    confuser = confuser_classes(num_classes, rng)
    mixed = (1.0 - cfg.confusion) * onehot
    np.add.at(mixed, (slice(None), slice(None), confuser), cfg.confusion * onehot)  # class c -> confuser[c]
    logits = np.log(mixed + cfg.floor)
    if cfg.pixel_noise > 0:
        logits += cfg.pixel_noise * rng.standard_normal(logits.shape)
    if cfg.field_noise > 0:
        logits += cfg.field_noise * _smooth_noise(logits.shape, cfg.field_scale, rng)
    logits /= cfg.temperature
    logits -= logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=-1, keepdims=True)
    probs[~labeled] = 0.0
    return probs.astype(np.float32)


def noisy_teacher_opacity(train_labels: np.ndarray) -> np.ndarray:
    """The stand-in teacher's rendered opacity: (H, W) float32, 1 where the ground truth has a class (the ray
    hits a surface), 0 on IGNORE_INDEX pixels (sky: the ray hits nothing). Pass it to ``fuse_pseudo_labels``
    with :func:`noisy_teacher_probs`."""
    return (np.asarray(train_labels) != IGNORE_INDEX).astype(np.float32)
