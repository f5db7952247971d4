"""nuScenes-lidarseg submission files: layout, bytes, round trip and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nerfseg.data.nuscenes import (
    SubmissionMeta,
    read_nuscenes_prediction,
    write_nuscenes_prediction,
    write_nuscenes_submission_json,
)
from nerfseg.errors import DataError

TOKEN = "5f6c1e0a0c3b444b97e78d2aa3fa34d2"


def test_file_layout_and_bytes(tmp_path):
    path = write_nuscenes_prediction(tmp_path, "val", TOKEN, np.array([0, 3, 15, 10]))
    assert path == tmp_path / "lidarseg" / "val" / f"{TOKEN}_lidarseg.bin"
    # challenge class index = train id + 1, one uint8 per point
    assert path.read_bytes() == bytes([1, 4, 16, 11])
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left behind


@settings(max_examples=30, deadline=None)
@given(train_ids=arrays(np.int64, st.integers(0, 300), elements=st.integers(0, 15)))
def test_round_trip(tmp_path_factory, train_ids):
    root = tmp_path_factory.mktemp("pred")
    write_nuscenes_prediction(root, "mini_val", TOKEN, train_ids)
    back = read_nuscenes_prediction(root, "mini_val", TOKEN, expected_count=train_ids.size)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, train_ids)


def test_read_errors_name_the_file(tmp_path):
    path = write_nuscenes_prediction(tmp_path, "val", TOKEN, np.arange(16))
    with pytest.raises(DataError, match="has 16 predictions but the point cloud has 17 points") as err:
        read_nuscenes_prediction(tmp_path, "val", TOKEN, expected_count=17)
    assert err.value.path == path
    with pytest.raises(DataError, match="not found") as err:
        read_nuscenes_prediction(tmp_path, "test", TOKEN, expected_count=16)
    assert err.value.path == tmp_path / "lidarseg" / "test" / f"{TOKEN}_lidarseg.bin"
    path.write_bytes(bytes([1, 0, 5, 17, 17]))  # 0 = ignore and 17 are not challenge classes
    with pytest.raises(
        DataError, match=r"3 prediction\(s\) outside the class indices 1..16: \[0, 17\]"
    ) as err:
        read_nuscenes_prediction(tmp_path, "val", TOKEN, expected_count=5)
    assert err.value.path == path


def test_write_rejects_ids_that_cannot_be_submitted(tmp_path):
    with pytest.raises(ValueError):
        write_nuscenes_prediction(tmp_path, "val", TOKEN, np.array([0, 255]))  # IGNORE_INDEX
    with pytest.raises(ValueError):
        write_nuscenes_prediction(tmp_path, "val", TOKEN, np.array([16]))
    assert not (tmp_path / "lidarseg").exists()


def test_submission_json(tmp_path):
    path = write_nuscenes_submission_json(tmp_path, "test")
    assert path == tmp_path / "test" / "submission.json"
    meta = json.loads(path.read_text())["meta"]
    # the five keys the devkit's validate_submission requires, all booleans; LiDAR only at test time
    assert meta == {
        "use_camera": False,
        "use_lidar": True,
        "use_radar": False,
        "use_map": False,
        "use_external": False,
    }
    path = write_nuscenes_submission_json(
        tmp_path, "test", SubmissionMeta(use_camera=True, use_external=True)
    )
    meta = json.loads(path.read_text())["meta"]
    assert meta["use_camera"] is True and meta["use_external"] is True and meta["use_lidar"] is True


def test_submission_json_from_a_mapping(tmp_path):
    values = {
        "use_camera": False,
        "use_lidar": True,
        "use_radar": False,
        "use_map": True,
        "use_external": False,
    }
    path = write_nuscenes_submission_json(tmp_path, "val", values)
    assert json.loads(path.read_text()) == {"meta": values}
    with pytest.raises(ValueError, match="exactly the keys"):
        write_nuscenes_submission_json(tmp_path, "val", {"use_lidar": True})
    with pytest.raises(ValueError, match="booleans"):
        write_nuscenes_submission_json(tmp_path, "val", {**values, "use_map": 1})
