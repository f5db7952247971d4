"""Mask cache: keys, atomic entries, corruption detection and recovery, training-time reads."""

import os
import warnings

import numpy as np
import pytest
from masks_testing import scene_image

from nerfseg.errors import DataError
from nerfseg.masks.cache import CorruptEntryWarning, MaskCache, default_cache_root, image_digest
from nerfseg.masks.source import MaskSource


class CountingSource(MaskSource):
    """Mask = 4 x 4 pixel blocks; counts how often it is asked (so the tests see cache hits)."""

    name = "blocks"

    def __init__(self, block: int = 4):
        self.block = block
        self.calls = 0

    def masks(self, image):
        self.calls += 1
        h, w = image.shape[:2]
        rows, cols = np.mgrid[:h, :w] // self.block
        return (rows * ((w + self.block - 1) // self.block) + cols).astype(np.int32)

    def cache_key(self):
        return f"blocks:{self.block}"


def test_roundtrip_and_keys(tmp_path):
    source = CountingSource()
    cache = MaskCache(default_cache_root(tmp_path), source)
    a, b = scene_image(seed=0), scene_image(seed=1)
    ids, status = cache.ensure(a)
    assert status == "computed" and source.calls == 1
    again, status = cache.ensure(a.copy())  # same content, another array: same entry
    assert status == "cached" and source.calls == 1 and np.array_equal(ids, again)
    assert cache.entry_path(a) != cache.entry_path(b)  # keyed by content
    assert cache.entry_path(a).parent.parent == tmp_path / ".nerfseg_cache" / "masks"
    other = MaskCache(default_cache_root(tmp_path), CountingSource(block=8))
    assert other.folder != cache.folder  # keyed by settings
    assert (cache.folder / "source.txt").read_text().strip() == "blocks:4"
    assert len(image_digest(a)) == 40


def _corrupt_truncate(path, image, cache):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_garbage(path, image, cache):
    path.write_bytes(b"\x00garbage" * 10)


def _corrupt_shape(path, image, cache):
    digest = np.array(image_digest(image))
    np.savez(path.with_suffix(""), mask_ids=np.zeros((3, 3), np.int32), image_digest=digest)


def _corrupt_other_image(path, image, cache):
    other = scene_image(seed=5)
    cache.write(other, np.zeros(other.shape[:2], np.int32))
    os.replace(cache.entry_path(other), path)


def _corrupt_empty(path, image, cache):
    path.write_bytes(b"")


@pytest.mark.parametrize(
    "corrupt", [_corrupt_truncate, _corrupt_garbage, _corrupt_shape, _corrupt_other_image, _corrupt_empty]
)
def test_corrupt_entry_is_detected_warned_and_recomputed(tmp_path, corrupt):
    source = CountingSource()
    cache = MaskCache(tmp_path, source)
    image = scene_image()
    good, _ = cache.ensure(image)
    path = cache.entry_path(image)
    corrupt(path, image, cache)
    with pytest.raises(DataError, match=path.name):
        cache.read(image)
    with pytest.warns(CorruptEntryWarning, match=path.name):
        ids, status = cache.ensure(image)
    assert status == "recomputed" and source.calls == 2 and np.array_equal(ids, good)
    assert np.array_equal(cache.read(image), good)  # repaired on disk


def test_training_reads_and_only_computes_when_asked(tmp_path):
    source = CountingSource()
    cache = MaskCache(tmp_path, source)
    image = scene_image()
    with pytest.raises(DataError, match="000042.png.*no valid cached masks"):
        cache.get(image, image_path=tmp_path / "000042.png")
    assert source.calls == 0
    ids = cache.get(image, compute_missing=True)
    assert source.calls == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(cache.get(image), ids)  # a hit: no warning, no compute
    assert source.calls == 1
    cache.entry_path(image).write_bytes(b"broken")
    with pytest.warns(CorruptEntryWarning), pytest.raises(DataError, match="no valid cached masks"):
        cache.get(image, image_path="img.png")


def test_failed_write_leaves_no_entry(tmp_path, monkeypatch):
    cache = MaskCache(tmp_path, CountingSource())
    image = scene_image()
    cache.write(image, np.zeros((64, 64), np.int32))  # creates the folder and source.txt

    def killed(src, dst):
        raise KeyboardInterrupt  # as if the process died between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    other = scene_image(seed=3)
    with pytest.raises(KeyboardInterrupt):
        cache.write(other, np.ones((64, 64), np.int32))
    monkeypatch.undo()
    assert not cache.entry_path(other).exists()
    left = sorted(p.name for p in cache.folder.iterdir())
    assert left == sorted([cache.entry_path(image).name, "source.txt"])  # no temporary file either
    assert cache.ensure(other)[1] == "computed"


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    cache = MaskCache(tmp_path, CountingSource())
    cache.ensure(scene_image())
    old = cache.folder / ".abc.npz.x1.tmp"
    fresh = cache.folder / ".def.npz.x2.tmp"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    os.utime(old, (1, 1))  # written long ago
    assert cache.remove_stale_temporaries(older_than_s=60) == 1
    assert not old.exists() and fresh.exists() and cache.entry_path(scene_image()).exists()
