"""The weight-free built-in mask source: graph-based superpixels from scikit-image."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from nerfseg.errors import ConfigError
from nerfseg.masks.convert import compact_ids
from nerfseg.masks.source import MaskSource, check_image

SUPERPIXEL_METHODS = ("felzenszwalb", "slic")


@dataclass
class SuperpixelConfig:
    """Settings of :class:`SuperpixelMasks`.

    Attributes:
        method: ``"felzenszwalb"`` (graph-based, follows edges; the default) or ``"slic"`` (k-means in
            colour + position, compact regions).
        scale: Felzenszwalb's observation scale; larger = larger segments.
        sigma: width (pixels) of the Gaussian pre-smoothing (both methods).
        min_size: Felzenszwalb's minimum segment size in pixels.
        n_segments: SLIC's approximate number of segments.
        compactness: SLIC's colour / space trade-off; larger = more square segments.
    """

    method: str = "felzenszwalb"
    scale: float = 100.0
    sigma: float = 0.8
    min_size: int = 50
    n_segments: int = 400
    compactness: float = 10.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, prefix: str = "") -> SuperpixelConfig:
        """Raise ConfigError naming the first invalid setting as ``prefix + name`` (e.g.
        ``masks.superpixel.n_segments must be >= 1, got 0``); return self otherwise."""
        if self.method not in SUPERPIXEL_METHODS:
            raise ConfigError(f"{prefix}method must be one of {SUPERPIXEL_METHODS}, got {self.method!r}")
        checks = (
            ("scale", self.scale > 0, "> 0"), ("compactness", self.compactness > 0, "> 0"),
            ("min_size", self.min_size >= 1, ">= 1"), ("n_segments", self.n_segments >= 1, ">= 1"),
            ("sigma", self.sigma >= 0, ">= 0"),
        )  # fmt: skip
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"{prefix}{name} must be {rule}, got {getattr(self, name)!r}")
        return self


class SuperpixelMasks(MaskSource):
    """Superpixels as masks: every pixel lies in exactly one segment (no -1, no overlap)."""

    name = "superpixel"

    def __init__(self, cfg: SuperpixelConfig | None = None):
        self.cfg = cfg or SuperpixelConfig()

    def masks(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) int32 segment ids in [0, M)."""
        check_image(image)
        from skimage.segmentation import felzenszwalb, slic

        c = self.cfg
        if c.method == "felzenszwalb":
            segments = felzenszwalb(image, scale=c.scale, sigma=c.sigma, min_size=c.min_size, channel_axis=-1)
        else:
            segments = slic(
                image,
                n_segments=c.n_segments,
                compactness=c.compactness,
                sigma=c.sigma,
                start_label=0,
                channel_axis=-1,
            )
        return compact_ids(segments)

    def cache_key(self) -> str:
        c = asdict(self.cfg)
        used = ("scale", "sigma", "min_size") if self.cfg.method == "felzenszwalb" else (
            "n_segments", "compactness", "sigma")
        return "superpixel:" + self.cfg.method + ":" + ",".join(f"{k}={c[k]!r}" for k in used)
