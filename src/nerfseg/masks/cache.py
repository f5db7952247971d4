"""On-disk cache of mask-id images, one .npz per (image content, mask-source settings).

Layout: ``ROOT/<source name>-<hash of source settings>/<hash of image>.npz`` (default ROOT:
``DATASET/.nerfseg_cache/masks``), with a ``source.txt`` naming the settings. Entries are written atomically
(a killed run leaves either no entry or a complete one, so a rerun resumes); an entry that cannot be read or
does not fit its image is reported with a warning and recomputed. There is no index or manifest: every entry
is an independent file whose bytes depend only on the image and the settings (``np.savez_compressed`` writes
fixed zip timestamps), so several processes or machines (``nerfseg masks --shard i/n``) fill one cache
without conflicts, and a file two of them write gets the same bytes from both.
"""

from __future__ import annotations

import hashlib
import io
import time
import warnings
from pathlib import Path

import numpy as np

from nerfseg.errors import DataError
from nerfseg.io_utils import atomic_write, atomic_write_text
from nerfseg.masks.source import NO_MASK, MaskSource, check_image

CACHE_SUBDIR = Path(".nerfseg_cache") / "masks"


class CorruptEntryWarning(UserWarning):
    """A cache entry was unreadable or did not fit its image (it is recomputed when allowed)."""


def default_cache_root(dataset_root: str | Path) -> Path:
    """``DATASET/.nerfseg_cache/masks``: where masks of a dataset are cached unless told otherwise."""
    return Path(dataset_root) / CACHE_SUBDIR


def image_digest(image: np.ndarray) -> str:
    """SHA-256 (hex, 40 chars) of an image's shape, dtype and pixel bytes: the image part of a cache key."""
    h = hashlib.sha256(f"{image.shape}|{image.dtype}|".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()[:40]


def source_folder_name(source: MaskSource) -> str:
    """Folder of one source's entries: ``<name>-<16 hex of sha256(cache_key)>``."""
    return f"{source.name}-{hashlib.sha256(source.cache_key().encode()).hexdigest()[:16]}"


class MaskCache:
    """Mask-id images of one mask source, cached under ``root``.

    Args:
        root: cache root (e.g. :func:`default_cache_root` of the dataset); one sub-folder per source setting.
        source: the mask source whose output is cached (its ``cache_key()`` picks the sub-folder).
    """

    def __init__(self, root: str | Path, source: MaskSource):
        self.root = Path(root)
        self.source = source
        self.folder = self.root / source_folder_name(source)

    def entry_path(self, image: np.ndarray) -> Path:
        """Path of the entry of an (H, W, 3) uint8 image."""
        return self.folder / f"{image_digest(image)}.npz"

    def read(self, image: np.ndarray) -> np.ndarray | None:
        """The cached (H, W) int32 mask ids of ``image``, or None when there is no entry.

        Raises DataError naming the entry when it exists but is corrupt (unreadable, truncated, wrong
        shape or dtype, ids below -1, or made for another image).
        """
        expected = image_digest(image)  # hashed once: about 1.5 ms for a 1242 x 375 image
        path = self.folder / f"{expected}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                mask_ids = data["mask_ids"]
                digest = str(data["image_digest"])
        except Exception as err:  # truncated zip, zlib error, missing key, bad header, ...
            raise DataError(path, f"corrupt mask cache entry ({type(err).__name__}: {err})") from err
        if mask_ids.shape != image.shape[:2] or not np.issubdtype(mask_ids.dtype, np.integer):
            raise DataError(path, f"corrupt mask cache entry: mask ids {mask_ids.shape} {mask_ids.dtype}, "
                                  f"image {image.shape[:2]}")
        if mask_ids.size and int(mask_ids.min()) < NO_MASK:
            raise DataError(path, "corrupt mask cache entry: mask ids below -1")
        if digest != expected:
            raise DataError(path, "corrupt mask cache entry: written for another image")
        return mask_ids.astype(np.int32, copy=False)

    def write(self, image: np.ndarray, mask_ids: np.ndarray) -> Path:
        """Store the (H, W) mask ids of ``image`` atomically; returns the entry path."""
        mask_ids = np.asarray(mask_ids, dtype=np.int32)
        if mask_ids.shape != image.shape[:2]:
            raise ValueError(f"mask ids {mask_ids.shape} do not match image {image.shape[:2]}")
        source_txt = self.folder / "source.txt"
        if not source_txt.exists():
            atomic_write_text(source_txt, self.source.cache_key() + "\n")
        buffer = io.BytesIO()
        np.savez_compressed(buffer, mask_ids=mask_ids, image_digest=np.array(image_digest(image)))
        return atomic_write(self.entry_path(image), lambda f: f.write(buffer.getvalue()))

    def remove_stale_temporaries(self, older_than_s: float = 3600.0) -> int:
        """Delete temporary files a killed writer left in the folder (``.*.tmp`` older than ``older_than_s``
        seconds, so a concurrent writer's live file is kept). Returns how many were removed."""
        if not self.folder.is_dir():
            return 0
        now = time.time()
        removed = 0
        for tmp in self.folder.glob(".*.tmp"):
            try:
                if now - tmp.stat().st_mtime > older_than_s:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:  # removed by someone else meanwhile
                pass
        return removed

    def ensure(self, image: np.ndarray) -> tuple[np.ndarray, str]:
        """Return the masks of ``image``, computing and storing them unless a valid entry exists.

        Returns:
            (mask ids (H, W) int32, status) with status ``"cached"``, ``"computed"`` (no entry) or
            ``"recomputed"`` (the entry was corrupt; a CorruptEntryWarning is issued).
        """
        check_image(image)
        status = "computed"
        try:
            cached = self.read(image)
        except DataError as err:
            warnings.warn(f"{err}; recomputing it", CorruptEntryWarning, stacklevel=2)
            cached, status = None, "recomputed"
        if cached is not None:
            return cached, "cached"
        mask_ids = self.source.masks(image)
        self.write(image, mask_ids)
        return mask_ids, status

    def get(self, image: np.ndarray, image_path: str | Path | None = None, compute_missing: bool = False
            ) -> np.ndarray:
        """Masks of ``image`` for training: read from the cache; compute missing ones only if asked.

        Args:
            image: (H, W, 3) uint8 RGB.
            image_path: the image's file, named in the error.
            compute_missing: compute (and store) masks that are missing or corrupt instead of failing.
        Returns:
            (H, W) int32 mask ids, -1 where no mask.
        Raises:
            DataError naming the image when its masks are not cached (or corrupt) and compute_missing is off.
        """
        if compute_missing:
            return self.ensure(image)[0]
        try:
            cached = self.read(image)
        except DataError as err:
            warnings.warn(str(err), CorruptEntryWarning, stacklevel=2)
            cached = None
        if cached is None:
            raise DataError(
                image_path if image_path is not None else self.entry_path(image),
                f"no valid cached masks for this image in {self.folder} (run `nerfseg masks --config CONFIG` "
                "with the run's config and --set overrides, or set masks.compute_missing=true)",
            )
        return cached
