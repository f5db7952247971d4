"""The one interface every class-agnostic mask source implements (DESIGN.md step 7)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

NO_MASK = -1
"""Mask id of pixels that belong to no mask."""


class MaskSource(ABC):
    """A class-agnostic mask generator for camera images.

    Every source returns the same thing: an (H, W) int32 image of mask ids in ``[0, M)``, ``NO_MASK`` (-1)
    where no mask covers the pixel; where masks overlap the smallest mask wins.
    """

    name: str = "mask-source"

    @abstractmethod
    def masks(self, image: np.ndarray) -> np.ndarray:
        """Masks of one image.

        Args:
            image: (H, W, 3) uint8 RGB.
        Returns:
            (H, W) int32 mask ids, -1 where no mask.
        """

    @abstractmethod
    def cache_key(self) -> str:
        """A string of every setting that changes the output (used to key cache entries)."""

    def prepare(self) -> None:  # noqa: B027 - optional hook: most sources need nothing
        """Load and check whatever the source needs (model weights) before its first image, so that a bad
        setting is one error up front rather than one per image. Raises a
        :class:`~nerfseg.errors.UserFacingError` naming the file or setting. Default: nothing to do."""


def check_image(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is an (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {shape} dtype {dtype}")
