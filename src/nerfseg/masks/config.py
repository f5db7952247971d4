"""Which mask source to use and where its cache lives: the typed config (the run config's ``masks:`` section)
that training and `nerfseg masks` share, and :func:`open_run_mask_cache`, the one way both open the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nerfseg.errors import ConfigError
from nerfseg.masks.cache import MaskCache, default_cache_root
from nerfseg.masks.sam import SamConfig, SamMasks
from nerfseg.masks.source import MaskSource
from nerfseg.masks.superpixel import SuperpixelConfig, SuperpixelMasks

if TYPE_CHECKING:  # nerfseg.config imports this module
    from nerfseg.config import Config

MASK_SOURCES = ("superpixel", "sam")


@dataclass
class MasksConfig:
    """Mask settings.

    Attributes:
        source: ``"superpixel"`` (built-in, no weights) or ``"sam"`` (needs ``sam.checkpoint``).
        superpixel: settings of the superpixel source.
        sam: settings of the SAM source.
        cache_dir: cache root; empty = ``DATASET/.nerfseg_cache/masks``.
        compute_missing: compute masks missing from the cache during training instead of failing.
    """

    source: str = "superpixel"
    superpixel: SuperpixelConfig = field(default_factory=SuperpixelConfig)
    sam: SamConfig = field(default_factory=SamConfig)
    cache_dir: str = ""
    compute_missing: bool = False

    def __post_init__(self) -> None:
        if self.source not in MASK_SOURCES:
            raise ConfigError(f"masks.source must be one of {MASK_SOURCES}, got {self.source!r}")


def build_mask_source(cfg: MasksConfig) -> MaskSource:
    """The mask source ``cfg.source`` names, with its settings (ConfigError for an unknown name, which a
    ``--set masks.source=...`` override can leave behind)."""
    if cfg.source not in MASK_SOURCES:
        raise ConfigError(f"masks.source must be one of {MASK_SOURCES}, got {cfg.source!r}")
    if cfg.source == "sam":  # validated again: --set overrides bypass the dataclasses' own checks
        return SamMasks(cfg.sam.validate("masks.sam."))
    return SuperpixelMasks(cfg.superpixel.validate("masks.superpixel."))


def open_mask_cache(cfg: MasksConfig, dataset_root: str | Path) -> MaskCache:
    """The cache of ``cfg``'s source for a dataset (``cfg.cache_dir`` or the dataset's default folder)."""
    root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_root(dataset_root)
    return MaskCache(root, build_mask_source(cfg))


def open_run_mask_cache(cfg: Config) -> MaskCache:
    """The mask cache of a run config: source and cache folder from its ``masks`` section, dataset root from
    ``data.root``. `nerfseg masks --config` fills exactly this cache and training reads it, so the two cannot
    disagree on the key (every mask setting is part of the cache folder's name)."""
    return open_mask_cache(cfg.masks, cfg.data.root)
