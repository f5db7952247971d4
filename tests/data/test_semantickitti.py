"""SemanticKITTI / ScribbleKITTI reader: real sample, splits, labels, camera geometry, ego motion, errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kitti_testing import calib_text, write_scan, write_tree
from nerfseg.data.labelmaps import SEMANTICKITTI
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.data.semantickitti import SemanticKittiDataset
from nerfseg.errors import DataError

# A hand-made calibration: velodyne (x fwd, y left, z up) -> cam0 (x right, y down, z fwd), no offset;
# camera 2 sits 6 cm to the right of cam0 (P2[:, 3] = K @ (0.06, 0, 0)).
FX, CX, CY = 718.856, 607.1928, 185.2157
SIMPLE_TR = [0, -1, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0]
SIMPLE_P2 = [FX, 0, CX, FX * 0.06, 0, FX, CY, 0, 0, 0, 1, 0]


def simple_calib() -> str:
    text = calib_text(tr=SIMPLE_TR)
    p2_line = "P2: " + " ".join(f"{v:.12e}" for v in SIMPLE_P2) + "\n"
    return "".join(p2_line if line.startswith("P2:") else line for line in text.splitlines(keepends=True))


def test_real_sample(real_data):
    ds = SemanticKittiDataset(real_data / "semantickitti_50pt", split="train")
    assert len(ds) == 1 and ds.sample_ids == ["00/000000"]
    sample = ds[0]
    assert sample.sample_id == "00/000000" and sample.points.shape == (50, 4)
    assert (
        sample.points.dtype == np.float32 and 0 <= sample.points[:, 3].min() <= sample.points[:, 3].max() <= 1
    )
    assert sample.labels.dtype == np.int64 and sample.labels.shape == (50,)
    assert set(np.unique(sample.labels)) <= {12, 14, 15, 17, IGNORE_INDEX}
    np.testing.assert_array_equal(sample.instance_ids, 0)
    assert sample.cameras == []  # the sample ships no image_2 / calib.txt
    with pytest.raises(DataError, match="none of the sequences of split 'val'"):
        SemanticKittiDataset(real_data / "semantickitti_50pt", split="val")


def test_splits_labels_and_instances(tmp_path):
    raw = write_tree(tmp_path, {"00": 2, "08": 2, "11": 1, "21": 1})
    for seq in ("11", "21"):
        for p in (tmp_path / "sequences" / seq / "labels").iterdir():
            p.unlink()
        (tmp_path / "sequences" / seq / "labels").rmdir()
    train = SemanticKittiDataset(tmp_path, "train")
    assert train.sample_ids == ["00/000000", "00/000001"]
    assert SemanticKittiDataset(tmp_path, "val").sample_ids == ["08/000000", "08/000001"]
    test = SemanticKittiDataset(tmp_path, "test")
    assert test.sample_ids == ["11/000000", "21/000000"] and test[1].labels is None
    sample = train[1]
    expected = SEMANTICKITTI.to_train(raw["00/000001"] & 0xFFFF)
    np.testing.assert_array_equal(sample.labels, expected)
    np.testing.assert_array_equal(sample.instance_ids, raw["00/000001"] >> 16)
    assert sample.timestamp == pytest.approx(0.1)
    assert train[-1].sample_id == "00/000001"
    only = SemanticKittiDataset(tmp_path, "train", sequences=[8])
    assert only.sample_ids == ["08/000000", "08/000001"]


def test_scribblekitti_train_scribbles_val_dense(tmp_path):
    scribbles = write_tree(tmp_path, {"00": 1}, label_dir="scribbles", raw_ids=(0, 10), seed=1)
    dense = write_tree(tmp_path, {"08": 1}, raw_ids=(40, 50), seed=2)
    train = SemanticKittiDataset.scribblekitti(tmp_path, "train")
    np.testing.assert_array_equal(train[0].labels, SEMANTICKITTI.to_train(scribbles["00/000000"] & 0xFFFF))
    val = SemanticKittiDataset.scribblekitti(tmp_path, "val")
    np.testing.assert_array_equal(val[0].labels, SEMANTICKITTI.to_train(dense["08/000000"] & 0xFFFF))
    # SemanticKITTI itself finds no dense labels in the scribbled sequence: unlabeled samples.
    assert SemanticKittiDataset(tmp_path, "train")[0].labels is None


def _camera_tree(tmp_path, times_image_2=None, poses=None):
    folder = tmp_path / "sequences" / "00"
    rng = np.random.default_rng(0)
    for frame in range(3):
        write_scan(folder, frame, rng.uniform(1, 5, (6, 4)).astype(np.float32), np.full(6, 10, np.uint32))
        (folder / "image_2").mkdir(exist_ok=True)
        Image.fromarray(np.full((12, 40, 3), 7, np.uint8)).save(folder / "image_2" / f"{frame:06d}.png")
    (folder / "calib.txt").write_text(simple_calib())
    (folder / "times.txt").write_text("0.0\n0.1\n0.2\n")
    if times_image_2 is not None:
        (folder / "times_image_2.txt").write_text("".join(f"{t}\n" for t in times_image_2))
    if poses is not None:
        (folder / "poses.txt").write_text(
            "".join(" ".join(f"{v:.15e}" for v in p[:3].ravel()) + "\n" for p in poses)
        )
    return folder


def test_camera_without_ego_motion(tmp_path):
    folder = _camera_tree(tmp_path)
    (folder / "semantic_2").mkdir()
    Image.fromarray(np.zeros((12, 40), np.uint16)).save(folder / "semantic_2" / "000001.png")
    ds = SemanticKittiDataset(tmp_path, "train", load_images=True)
    cam = ds[1].cameras[0]
    assert cam.name == "image_2" and cam.image_size == (40, 12) and cam.image.shape == (12, 40, 3)
    assert cam.timestamp == pytest.approx(0.1) and cam.image_path == folder / "image_2" / "000001.png"
    assert cam.semantic_path == folder / "semantic_2" / "000001.png" and cam.depth_path is None
    np.testing.assert_allclose(cam.K, [[FX, 0, CX], [0, FX, CY], [0, 0, 1]])
    # Hand: a point 10 m ahead of the LiDAR is 10 m ahead of cam0, and cam2 sees it 6 cm to the right.
    cam_point = cam.lidar_to_cam @ np.array([10.0, 0, 0, 1])
    np.testing.assert_allclose(cam_point[:3], [0.06, 0, 10], atol=1e-12)
    assert ds[1].cameras[0].image is not None
    lazy = SemanticKittiDataset(tmp_path, "train")[0].cameras[0]
    assert lazy.image is None and lazy.load_image().shape == (12, 40, 3)


def rot_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def cam0_pose(t):
    """Analytic cam0 pose: 10 m/s straight ahead (cam z) while turning at 0.5 rad/s about cam y."""
    pose = np.eye(4)
    pose[:3, :3] = rot_y(0.5 * t)
    pose[:3, 3] = [0.0, 0.0, 10.0 * t]
    return pose


def test_ego_motion_compensation(tmp_path):
    scan_times = [0.0, 0.1, 0.2]
    cam_times = [0.05, 0.15, 0.23]  # the last one extrapolates beyond the final scan
    _camera_tree(tmp_path, cam_times, np.stack([cam0_pose(t) for t in scan_times]))
    ds = SemanticKittiDataset(tmp_path, "train")
    tr = np.array(SIMPLE_TR + [0, 0, 0, 1], dtype=np.float64).reshape(4, 4)
    shift = np.eye(4)
    shift[0, 3] = 0.06
    world_point = np.array([1.0, -0.5, 20.0, 1.0])  # a static point in the world (cam0 at scan 0) frame
    for i in range(3):
        cam = ds[i].cameras[0]
        assert cam.timestamp == pytest.approx(cam_times[i]) and ds[i].timestamp == pytest.approx(
            scan_times[i]
        )
        lidar_pose = cam0_pose(scan_times[i]) @ tr  # velodyne -> world at the scan time
        in_lidar = np.linalg.inv(lidar_pose) @ world_point
        expected_in_cam = shift @ np.linalg.inv(cam0_pose(cam_times[i])) @ world_point
        np.testing.assert_allclose(cam.lidar_to_cam @ in_lidar, expected_in_cam, atol=1e-9)
    # Moving forward 0.5 m in 0.05 s: the point is ~0.5 m closer to the camera than to the LiDAR's cam0.
    no_motion = shift @ np.linalg.inv(cam0_pose(0.0)) @ world_point
    moved = ds[0].cameras[0].lidar_to_cam @ np.linalg.inv(cam0_pose(0.0) @ tr) @ world_point
    assert no_motion[2] - moved[2] == pytest.approx(0.5, abs=0.05)


def test_ego_motion_needs_poses_and_matching_times(tmp_path):
    folder = _camera_tree(tmp_path, [0.05, 0.15, 0.25])
    with pytest.raises(DataError, match="poses.txt.*not found"):
        SemanticKittiDataset(tmp_path, "train")
    (folder / "times_image_2.txt").write_text("0.05\n0.15\n")
    with pytest.raises(DataError, match="has 2 times but times.txt has 3") as err:
        SemanticKittiDataset(tmp_path, "train")
    assert err.value.path.name == "times_image_2.txt"


def test_reader_errors_name_the_file(tmp_path):
    write_tree(tmp_path, {"00": 3}, points_per_scan=8)
    folder = tmp_path / "sequences" / "00"
    np.zeros(7, np.uint32).tofile(folder / "labels" / "000000.label")
    np.full(8, 7, np.uint32).tofile(folder / "labels" / "000001.label")
    (folder / "velodyne" / "000002.bin").write_bytes(b"\x00" * 30)
    ds = SemanticKittiDataset(tmp_path, "train")
    with pytest.raises(DataError, match="has 7 labels but the scan has 8 points") as err:
        ds[0]
    assert err.value.path == folder / "labels" / "000000.label"
    with pytest.raises(DataError, match=r"unknown raw label ids \[7\]"):
        ds[1]
    with pytest.raises(DataError, match="whole number of points") as err:
        ds[2]
    assert err.value.path == folder / "velodyne" / "000002.bin"


def test_missing_calib_and_labels(tmp_path):
    write_tree(tmp_path, {"08": 1}, with_calib=False, with_images=True)
    ds = SemanticKittiDataset(tmp_path, "val")  # images without calib.txt: read as LiDAR only
    assert ds[0].cameras == []
    assert ds.missing_cameras() == ["sequences/08 (1 scan: image_2/ but no calib.txt)"]
    (tmp_path / "sequences" / "08" / "calib.txt").write_text("P0: 1 2\n")
    with pytest.raises(DataError, match="expected 12") as err:  # a calib.txt that is there must be right
        SemanticKittiDataset(tmp_path, "val")
    assert err.value.path.name == "calib.txt"
    (tmp_path / "sequences" / "08" / "calib.txt").write_text(calib_text())
    assert len(SemanticKittiDataset(tmp_path, "val")[0].cameras) == 1
    for p in (tmp_path / "sequences" / "08" / "labels").iterdir():
        p.unlink()
    (tmp_path / "sequences" / "08" / "labels").rmdir()
    with pytest.raises(DataError, match="label folder not found"):
        SemanticKittiDataset(tmp_path, "val")


def test_real_odometry_calib_camera_looks_forward(tmp_path, real_data):
    folder = tmp_path / "sequences" / "00"
    points = np.array([[10.0, 0, 0, 0.5], [-10, 0, 0, 0.5], [20, 5, 0, 0.5]], np.float32)
    write_scan(folder, 0, points, np.array([10, 10, 10], np.uint32))
    (folder / "image_2").mkdir()
    Image.fromarray(np.zeros((376, 1241, 3), np.uint8)).save(folder / "image_2" / "000000.png")
    (folder / "calib.txt").write_bytes((real_data / "kitti_odometry_calib" / "calib.txt").read_bytes())
    from nerfseg.geometry.transforms import project_points

    sample = SemanticKittiDataset(tmp_path, "train")[0]
    cam = sample.cameras[0]
    assert cam.image_size == (1241, 376)
    uv, depth, visible = project_points(sample.points[:, :3], cam.lidar_to_cam, cam.K, cam.image_size)
    np.testing.assert_array_equal(visible, [True, False, True])  # ahead: in view; behind: not
    assert abs(uv[0, 0] - 607.19) < 15 and abs(uv[0, 1] - 185.2) < 60  # near the principal point
    assert uv[2, 0] < uv[0, 0]  # a point to the left (+y in the LiDAR frame) lands left in the image
    # The camera centre sits within a metre of the LiDAR (KITTI rig: ~0.27 m behind, ~0.08 m below).
    assert np.linalg.norm(cam.cam_to_lidar[:3, 3]) < 1.0
