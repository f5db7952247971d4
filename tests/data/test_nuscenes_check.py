"""check_nuscenes on a tiny NATIVE-layout tree built from the real files, clean and deliberately broken."""

from __future__ import annotations

import json

import numpy as np
import pytest
from nuscenes_tree import build_real_tree, replace_with_bytes

from nerfseg.data.nuscenes import check_nuscenes


@pytest.fixture
def tree(tmp_path, real_data):
    return build_real_tree(tmp_path, real_data)


def _messages_for(problems, path):
    return [p.message for p in problems if p.path == path]


def test_clean_tree_has_no_problems(tree):
    assert check_nuscenes(tree.root, "v1.0-mini", progress=False) == []


def test_names_truncated_sweep_wrong_length_labels_and_nan_point(tree):
    """The three faults the issue asks for, all in one tree; each problem names its file."""
    points_a = np.fromfile(tree.lidar_file_a, dtype=np.float32)
    replace_with_bytes(tree.lidar_file_a, points_a.tobytes()[:-7])  # truncated .pcd.bin
    points_b = np.fromfile(tree.lidar_file_b, dtype=np.float32).reshape(-1, 5)
    points_b[12, 1] = np.nan
    replace_with_bytes(tree.lidar_file_b, points_b.tobytes())  # a NaN point
    problems = check_nuscenes(tree.root, "v1.0-mini", progress=False)
    truncated = _messages_for(problems, tree.lidar_file_a)
    assert len(truncated) == 1 and "not a whole number of points" in truncated[0]
    nan = _messages_for(problems, tree.lidar_file_b)
    assert len(nan) == 1 and "non-finite" in nan[0] and "point index 12" in nan[0]
    assert len(problems) == 2

    points_b[12, 1] = 0.0
    replace_with_bytes(tree.lidar_file_b, points_b.tobytes())
    replace_with_bytes(tree.label_file_b, bytes([24] * 41))  # one label too many
    problems = check_nuscenes(tree.root, "v1.0-mini", progress=False)
    wrong_length = _messages_for(problems, tree.label_file_b)
    assert len(wrong_length) == 1 and "41 labels but the point cloud has 40 points" in wrong_length[0]


def test_names_unknown_raw_ids_and_missing_label_file(tree):
    labels = np.fromfile(tree.label_file_b, dtype=np.uint8)
    labels[[3, 7]] = [32, 200]
    replace_with_bytes(tree.label_file_b, labels.tobytes())
    tree.label_file_a.unlink()
    problems = check_nuscenes(tree.root, "v1.0-mini", progress=False)
    unknown = _messages_for(problems, tree.label_file_b)
    assert len(unknown) == 1 and "[32, 200]" in unknown[0]
    assert _messages_for(problems, tree.label_file_a) == ["lidarseg label file not found"]
    assert len(problems) == 2


def test_names_unreadable_and_missing_images(tree):
    front = tree.image_files["CAM_FRONT"]
    data = front.read_bytes()
    replace_with_bytes(front, data[: len(data) // 3])  # truncated JPEG
    tree.image_files["CAM_BACK"].unlink()
    problems = check_nuscenes(tree.root, "v1.0-mini", progress=False)
    # scene B's cameras use the same files, so each problem is reported once per key frame
    assert (
        len(_messages_for(problems, front)) == 2 and "unreadable image" in _messages_for(problems, front)[0]
    )
    assert _messages_for(problems, tree.image_files["CAM_BACK"]) == ["image file not found"] * 2
    assert len(problems) == 4
    assert check_nuscenes(tree.root, "v1.0-mini", check_images=False, progress=False) == []


def test_names_missing_tables_and_records(tree):
    folder = tree.root / "v1.0-mini"
    (folder / "sensor.json").unlink()
    problems = check_nuscenes(tree.root, "v1.0-mini", progress=False)
    assert [(p.path.name, p.message) for p in problems] == [("sensor.json", "table file not found")]

    tree2_problems = check_nuscenes(tree.root / "nowhere", "v1.0-mini", progress=False)
    assert len(tree2_problems) == 1 and "table folder not found" in tree2_problems[0].message


def test_names_missing_calibration_and_ego_pose_records(tree):
    folder = tree.root / "v1.0-mini"
    sample_data = json.loads((folder / "sample_data.json").read_text())
    lidar_a = next(sd for sd in sample_data if sd["token"] == tree.lidar_token_a)
    ego_poses = json.loads((folder / "ego_pose.json").read_text())
    kept = [e for e in ego_poses if e["token"] != lidar_a["ego_pose_token"]]
    (folder / "ego_pose.json").write_text(json.dumps(kept))
    calibrations = json.loads((folder / "calibrated_sensor.json").read_text())
    front_b = next(
        sd
        for sd in sample_data
        if sd["sample_token"] == tree.info_b["token"] and "CAM_FRONT/" in sd["filename"]
    )
    for record in calibrations:
        if record["token"] == front_b["calibrated_sensor_token"]:
            record["camera_intrinsic"] = [[1.0, 0.0], [0.0, 1.0]]
        if record["token"] == lidar_a["calibrated_sensor_token"]:
            record["rotation"] = [2.0, 0.0, 0.0, 0.0]
    (folder / "calibrated_sensor.json").write_text(json.dumps(calibrations))
    problems = check_nuscenes(tree.root, "v1.0-mini", progress=False)
    ego = _messages_for(problems, folder / "ego_pose.json")
    assert len(ego) == 1 and lidar_a["ego_pose_token"] in ego[0] and lidar_a["token"] in ego[0]
    calib = _messages_for(problems, folder / "calibrated_sensor.json")
    assert len(calib) == 2
    assert any("norm 2" in m for m in calib) and any("camera_intrinsic" in m for m in calib)
    assert len(problems) == 3
