"""SemanticKITTI submission files: raw ids through the inverse map, read back like the official evaluator."""

from __future__ import annotations

import numpy as np
import pytest

from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.data.submission import (
    read_semantickitti_prediction,
    semantickitti_prediction_path,
    write_semantickitti_prediction,
)
from nerfseg.errors import DataError


def test_roundtrip_and_layout(tmp_path):
    train = np.array([0, 8, 18, 4, 12])
    path = write_semantickitti_prediction(tmp_path, "08/000123", train)
    assert path == tmp_path / "sequences" / "08" / "predictions" / "000123.label"
    assert path == semantickitti_prediction_path(tmp_path, "08/000123")
    np.testing.assert_array_equal(np.fromfile(path, dtype="<u4"), [10, 40, 81, 20, 50])  # hand: inverse map
    np.testing.assert_array_equal(read_semantickitti_prediction(tmp_path, "08/000123", 5), train)
    with pytest.raises(ValueError):
        write_semantickitti_prediction(tmp_path, "08/000124", np.array([IGNORE_INDEX]))


def test_read_like_official(tmp_path):
    path = semantickitti_prediction_path(tmp_path, "08/000000")
    path.parent.mkdir(parents=True)
    # Upper 16 bits ignored; unlabeled / undefined raw ids -> ignore; moving-car -> car.
    np.array([(5 << 16) | 10, 0, 3, 252, 99], dtype="<u4").tofile(path)
    np.testing.assert_array_equal(
        read_semantickitti_prediction(tmp_path, "08/000000", 5),
        [0, IGNORE_INDEX, IGNORE_INDEX, 0, IGNORE_INDEX],
    )


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="prediction file not found") as err:
        read_semantickitti_prediction(tmp_path, "08/000001", 3)
    assert err.value.path == tmp_path / "sequences" / "08" / "predictions" / "000001.label"
    write_semantickitti_prediction(tmp_path, "08/000001", np.zeros(4, np.int64))
    with pytest.raises(DataError, match="has 4 labels but the scan has 3 points"):
        read_semantickitti_prediction(tmp_path, "08/000001", 3)
