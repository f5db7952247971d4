"""The one reader of 16-bit ground-truth PNGs (semantic ids, depth in millimetres)."""

import numpy as np
import pytest
from PIL import Image

from nerfseg.data.ground_truth import read_uint16_png
from nerfseg.errors import DataError


def test_read_uint16_png_round_trips_and_names_bad_files(tmp_path):
    raw = np.array([[0, 10, 252], [40, 48, 65535]], dtype=np.uint16)
    path = tmp_path / "000000.png"
    Image.fromarray(raw).save(path)
    assert np.array_equal(read_uint16_png(path), raw.astype(np.int64))
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="rgb.png.*single-channel"):
        read_uint16_png(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="missing.png"):
        read_uint16_png(tmp_path / "missing.png")
