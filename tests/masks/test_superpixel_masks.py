"""The weight-free superpixel mask source."""

import numpy as np
import pytest
from masks_testing import scene_image

from nerfseg.errors import ConfigError
from nerfseg.masks.superpixel import SuperpixelConfig, SuperpixelMasks


@pytest.mark.parametrize("method", ["felzenszwalb", "slic"])
def test_segments_cover_image_and_follow_regions(method):
    image = scene_image(64, 64)
    ids = SuperpixelMasks(SuperpixelConfig(method=method, n_segments=30, min_size=20)).masks(image)
    assert ids.shape == (64, 64) and ids.dtype == np.int32
    assert ids.min() == 0 and np.array_equal(np.unique(ids), np.arange(ids.max() + 1))  # consecutive, no -1
    # The red box (rows 32..47, cols 8..31) is one colour: its interior is covered by few segments that
    # do not leak into the grey road around it.
    box = ids[34:46, 10:30]
    outside = np.concatenate([ids[50:, :], ids[36:44, 34:40].ravel()[None, :]], axis=None)
    dominant = np.bincount(box.ravel()).argmax()
    assert (box == dominant).mean() > 0.8
    assert (outside == dominant).mean() < 0.05


def test_cache_key_names_every_used_setting_and_changes_with_them():
    a = SuperpixelMasks(SuperpixelConfig(scale=100)).cache_key()
    b = SuperpixelMasks(SuperpixelConfig(scale=200)).cache_key()
    assert a != b and "scale=100" in a and "felzenszwalb" in a
    # SLIC does not use felzenszwalb's scale: changing it does not change the key
    assert SuperpixelMasks(SuperpixelConfig(method="slic", scale=1)).cache_key() == SuperpixelMasks(
        SuperpixelConfig(method="slic", scale=2)).cache_key()


def test_bad_config_and_bad_image():
    with pytest.raises(ConfigError, match="watershed"):
        SuperpixelConfig(method="watershed")
    with pytest.raises(ValueError, match="uint8"):
        SuperpixelMasks().masks(np.zeros((4, 4, 3), dtype=np.float32))


@pytest.mark.parametrize("method", ["felzenszwalb", "slic"])
def test_real_kitti_image_segments_follow_edges(real_data, method):
    from skimage.color import rgb2gray
    from skimage.filters import sobel

    from nerfseg.data.io import read_image

    image = np.ascontiguousarray(read_image(real_data / "kitti_object_000008" / "000008.png")[:, :640])
    ids = SuperpixelMasks(SuperpixelConfig(method=method)).masks(image)
    assert ids.shape == image.shape[:2] and ids.min() == 0
    assert 30 < ids.max() + 1 < 3000
    edges = sobel(rgb2gray(image))
    boundary = np.zeros(ids.shape, dtype=bool)
    boundary[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    boundary[:-1, :] |= ids[:-1, :] != ids[1:, :]
    # Segment borders sit on image edges: much stronger gradients there than on average (a grid of the
    # same number of cells would give a ratio near 1).
    assert edges[boundary].mean() > 1.5 * edges.mean()
