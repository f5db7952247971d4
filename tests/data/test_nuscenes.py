"""NuScenesDataset on tiny NATIVE-layout trees built from the real nuScenes files (see nuscenes_tree.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from nuscenes_tree import (
    CAMERAS,
    SCENE_A,
    SCENE_B,
    TreeBuilder,
    build_real_tree,
    replace_with_bytes,
)

from nerfseg.data.nuscenes import NuScenesDataset, lidar_to_camera
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.errors import ConfigError, DataError
from nerfseg.geometry.transforms import invert_rigid, make_transform, project_points, quaternion_to_matrix


@pytest.fixture(scope="module")
def tree(tmp_path_factory, real_data):
    """Cameras with their own ego poses (recovered from mmdet3d's ego-motion compensated lidar2cam)."""
    return build_real_tree(tmp_path_factory.mktemp("nus_derived"), real_data, camera_ego="derived")


@pytest.fixture(scope="module")
def tree_same_pose(tmp_path_factory, real_data):
    """Cameras sharing the LiDAR's ego pose."""
    return build_real_tree(tmp_path_factory.mktemp("nus_same"), real_data, camera_ego="lidar")


@pytest.fixture(scope="module")
def sample_a(tree):
    dataset = NuScenesDataset(tree.root, "v1.0-mini", split="mini_train")
    return dataset[0]


def test_splits_select_scenes_and_ids_are_lidar_tokens(tree):
    train = NuScenesDataset(tree.root, "v1.0-mini", split="mini_train")
    val = NuScenesDataset(tree.root, "v1.0-mini", split="mini_val")
    everything = NuScenesDataset(tree.root, "v1.0-mini", split=None)
    assert SCENE_A == "scene-0061" and SCENE_B == "scene-0103"  # devkit: mini_train / mini_val scenes
    assert train.sample_ids == [tree.lidar_token_a]
    assert val.sample_ids == [tree.lidar_token_b]
    assert sorted(everything.sample_ids) == sorted([tree.lidar_token_a, tree.lidar_token_b])
    assert len(train) == 1 and len(everything) == 2


def test_version_detected_and_generic_split_names_mapped(tree):
    """The tree holds only v1.0-mini: no version reads it, and train / val mean mini_train / mini_val."""
    train = NuScenesDataset(tree.root, None, split="train")
    val = NuScenesDataset(tree.root, "auto", split="val")
    assert (train.version, train.split, val.split) == ("v1.0-mini", "mini_train", "mini_val")
    assert train.sample_ids == [tree.lidar_token_a] and val.sample_ids == [tree.lidar_token_b]


def test_points_intensity_and_timestamps(tree, sample_a, real_data):
    raw = np.fromfile(tree.lidar_file_a, dtype=np.float32).reshape(-1, 5)
    assert sample_a.points.shape == (34688, 5) and sample_a.points.dtype == np.float32
    np.testing.assert_array_equal(sample_a.points[:, :3], raw[:, :3])
    np.testing.assert_allclose(sample_a.points[:, 3], raw[:, 3] / 255.0, rtol=1e-6)
    assert 0.0 <= sample_a.points[:, 3].min() and sample_a.points[:, 3].max() <= 1.0
    np.testing.assert_array_equal(sample_a.points[:, 4], raw[:, 4])  # ring index kept
    assert sample_a.sample_id == tree.lidar_token_a
    assert sample_a.lidar_path == tree.lidar_file_a
    # microseconds in the tables -> seconds
    assert sample_a.timestamp == pytest.approx(1532402927.647951, abs=1e-6)
    for camera in sample_a.cameras:
        assert camera.timestamp == pytest.approx(tree.info_a["images"][camera.name]["timestamp"], abs=1e-6)


def test_cameras_intrinsics_and_images(tree, sample_a):
    assert [c.name for c in sample_a.cameras] == list(CAMERAS)
    for camera in sample_a.cameras:
        np.testing.assert_allclose(camera.K, tree.info_a["images"][camera.name]["cam2img"], atol=1e-9)
        assert camera.image_size == (1600, 900)
        assert camera.image is None  # load_images=False
        assert camera.image_path == tree.image_files[camera.name]
        assert camera.load_image().shape == (900, 1600, 3)


def test_load_images_true_reads_them(tree):
    sample = NuScenesDataset(
        tree.root, "v1.0-mini", split="mini_train", load_images=True, cameras=("CAM_BACK",)
    )[0]
    assert [c.name for c in sample.cameras] == ["CAM_BACK"]
    assert sample.cameras[0].image.shape == (900, 1600, 3) and sample.cameras[0].image.dtype == np.uint8


def test_lidar_to_cam_equals_mmdet3d_lidar2cam_with_ego_motion(tree, sample_a):
    """With each camera's own ego pose, the full chain reproduces mmdet3d's lidar2cam (which is ego-motion
    compensated: it differs from inv(cam2ego) @ lidar2ego by up to 0.33 m here)."""
    for camera in sample_a.cameras:
        expected = np.asarray(tree.info_a["images"][camera.name]["lidar2cam"])
        np.testing.assert_allclose(camera.lidar_to_cam, expected, atol=1e-6)


def test_lidar_to_cam_with_coinciding_ego_poses_is_the_calibration_chain(tree_same_pose):
    """When camera and LiDAR share one ego pose the world pose cancels: the reader gives
    inv(cam2ego) @ lidar2ego of the json."""
    info = tree_same_pose.info_a
    sample = NuScenesDataset(tree_same_pose.root, "v1.0-mini", split="mini_train")[0]
    lidar_to_ego = np.asarray(info["lidar_points"]["lidar2ego"])
    for camera in sample.cameras:
        cam_to_ego = np.asarray(info["images"][camera.name]["cam2ego"])
        np.testing.assert_allclose(camera.lidar_to_cam, np.linalg.inv(cam_to_ego) @ lidar_to_ego, atol=1e-6)
    # The front camera fired 35 ms before the sweep while the car moved: 0.33 m of ego motion is lost.
    front = sample.cameras[0]
    motion = np.asarray(info["images"]["CAM_FRONT"]["lidar2cam"])[:3, 3] - front.lidar_to_cam[:3, 3]
    assert np.linalg.norm(motion) > 0.3


def test_thousands_of_points_project_into_each_camera(tree, sample_a):
    """README: about 3-5k of the 34,688 points project into each camera image."""
    for camera in sample_a.cameras:
        _, _, visible = project_points(
            sample_a.points[:, :3], camera.lidar_to_cam, camera.K, camera.image_size
        )
        assert 2500 <= visible.sum() <= 5500, (camera.name, int(visible.sum()))
    # the six views together see most of a 360 degree sweep once each, not the same points six times
    total = sum(
        project_points(sample_a.points[:, :3], c.lidar_to_cam, c.K, c.image_size)[2].sum()
        for c in sample_a.cameras
    )
    assert total < sample_a.num_points


def test_real_lidarseg_labels_map_to_train_ids(tree):
    """The 40 real labels hold raw ids 17, 24, 27, 28, 30, 31. Devkit table: vehicle.car -> 4 (car),
    flat.driveable_surface -> 11, flat.terrain -> 14, static.manmade -> 15, static.vegetation -> 16,
    vehicle.ego -> 0 (ignore); train id = class index - 1."""
    sample = NuScenesDataset(tree.root, "v1.0-mini", split="mini_val")[0]
    raw = np.fromfile(tree.label_file_b, dtype=np.uint8)
    assert sorted(np.unique(raw).tolist()) == [17, 24, 27, 28, 30, 31]
    expected_by_raw = {17: 3, 24: 10, 27: 13, 28: 14, 30: 15, 31: IGNORE_INDEX}
    expected = np.array([expected_by_raw[int(r)] for r in raw])
    assert sample.points.shape == (40, 5)
    assert sample.labels.dtype == np.int64
    np.testing.assert_array_equal(sample.labels, expected)


def test_lidar_to_camera_hand_computed():
    """Identity calibrations; the camera's ego pose is the LiDAR's moved 2 m along world x and turned
    90 degrees about z. A point at (5, 1, 0) in the lidar frame (= world here) is (3, 1, 0) relative to
    the new ego origin, i.e. R^T (3, 1, 0) = (1, -3, 0) in its frame."""
    identity = np.eye(4)
    yaw90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    ego_at_cam = make_transform(yaw90, [2.0, 0.0, 0.0])
    transform = lidar_to_camera(identity, identity, ego_at_cam, identity)
    np.testing.assert_allclose(transform @ [5.0, 1.0, 0.0, 1.0], [1.0, -3.0, 0.0, 1.0], atol=1e-12)
    # calibration on both ends: lidar 1 m above the ego origin, camera 0.5 m ahead of it
    lidar_to_ego = make_transform(np.eye(3), [0.0, 0.0, 1.0])
    cam_to_ego = make_transform(np.eye(3), [0.5, 0.0, 0.0])
    transform = lidar_to_camera(lidar_to_ego, identity, ego_at_cam, cam_to_ego)
    # lidar (5, 1, 0) -> ego/world (5, 1, 1) -> new ego R^T (3, 1, 1) = (1, -3, 1) -> cam (0.5, -3, 1)
    np.testing.assert_allclose(transform @ [5.0, 1.0, 0.0, 1.0], [0.5, -3.0, 1.0, 1.0], atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    quats=arrays(np.float64, (3, 4), elements=st.floats(-1, 1)).filter(
        lambda q: (np.linalg.norm(q, axis=1) > 0.1).all()
    ),
    shifts=arrays(np.float64, (3, 3), elements=st.floats(-3000, 3000)),
)
def test_lidar_to_camera_world_pose_cancels(quats, shifts):
    """Whatever the (shared) ego pose in the world, km away or not, only the calibrations remain."""
    lidar_to_ego = make_transform(quaternion_to_matrix(quats[0]), shifts[0] / 1000)
    cam_to_ego = make_transform(quaternion_to_matrix(quats[1]), shifts[1] / 1000)
    ego_to_world = make_transform(quaternion_to_matrix(quats[2]), shifts[2])
    transform = lidar_to_camera(lidar_to_ego, ego_to_world, ego_to_world, cam_to_ego)
    np.testing.assert_allclose(transform, np.linalg.inv(cam_to_ego) @ lidar_to_ego, atol=1e-9)
    np.testing.assert_allclose(transform[:3, :3] @ transform[:3, :3].T, np.eye(3), atol=1e-12)


def test_reader_applies_ego_motion_from_a_synthetic_second_pose(tmp_path):
    """A tree with identity calibrations: the LiDAR's ego at the world origin, the camera's ego pose
    3 m further along world y and turned 180 degrees about z; lidar point (0, 5, 2) is R^T (0, 2, 2) =
    (0, -2, 2) in the camera frame."""
    builder = TreeBuilder(tmp_path)
    sample = builder.add_sample(builder.add_scene("scene-0061"), 1_000_000)
    lidar_ego = builder.add_ego_pose(np.eye(4), 1_000_000)
    yaw180 = np.diag([-1.0, -1.0, 1.0])
    cam_ego = builder.add_ego_pose(make_transform(yaw180, [0.0, 3.0, 0.0]), 1_050_000)
    builder.add_sample_data(
        sample,
        "samples/LIDAR_TOP/x.pcd.bin",
        1_000_000,
        builder.add_calibration("LIDAR_TOP", np.eye(4)),
        lidar_ego,
    )
    points = np.array([[0.0, 5.0, 2.0, 255.0, 7.0]], dtype=np.float32)
    builder.write_file("samples/LIDAR_TOP/x.pcd.bin", points.tobytes())
    K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]])
    builder.add_sample_data(
        sample,
        "samples/CAM_FRONT/x.jpg",
        1_050_000,
        builder.add_calibration("CAM_FRONT", np.eye(4), K=K),
        cam_ego,
        size=(100, 80),
    )
    builder.write(without=("lidarseg",))
    dataset = NuScenesDataset(tmp_path, "v1.0-mini", split="mini_train", cameras=("CAM_FRONT",))
    loaded = dataset[0]
    assert loaded.labels is None  # no lidarseg records in this tree
    np.testing.assert_allclose(loaded.points[0], [0.0, 5.0, 2.0, 1.0, 7.0])
    camera = loaded.cameras[0]
    assert camera.timestamp == pytest.approx(1.05) and loaded.timestamp == pytest.approx(1.0)
    np.testing.assert_allclose(camera.lidar_to_cam @ [0.0, 5.0, 2.0, 1.0], [0.0, -2.0, 2.0, 1.0], atol=1e-12)
    # camera centre in the lidar frame: the second ego origin (0, 3, 0)
    np.testing.assert_allclose(invert_rigid(camera.lidar_to_cam)[:3, 3], [0.0, 3.0, 0.0], atol=1e-12)


def test_split_and_version_errors(tree):
    with pytest.raises(ConfigError, match="belongs to v1.0-mini"):
        NuScenesDataset(tree.root, "v1.0-trainval", split="mini_train")
    with pytest.raises(ConfigError, match="v1.0-mini has no test split"):
        NuScenesDataset(tree.root, "v1.0-mini", split="test")
    with pytest.raises(ConfigError, match="unknown nuScenes split"):
        NuScenesDataset(tree.root, "v1.0-mini", split="training")
    with pytest.raises(DataError, match="found: v1.0-mini") as err:
        NuScenesDataset(tree.root, "v1.0-trainval", split="train")
    assert err.value.path == tree.root / "v1.0-trainval"


def test_reader_errors_name_the_file(tmp_path, real_data):
    tree = build_real_tree(tmp_path, real_data)
    points = np.fromfile(tree.lidar_file_b, dtype=np.float32)
    replace_with_bytes(tree.lidar_file_b, points.tobytes()[:-8])  # truncated
    dataset = NuScenesDataset(tree.root, "v1.0-mini", split="mini_val")
    with pytest.raises(DataError, match="whole number") as err:
        dataset[0]
    assert err.value.path == tree.lidar_file_b
    replace_with_bytes(tree.lidar_file_b, points.tobytes())
    replace_with_bytes(tree.label_file_b, bytes(39))
    with pytest.raises(DataError, match="39 labels but the point cloud has 40") as err:
        dataset[0]
    assert err.value.path == tree.label_file_b
    (tree.root / "v1.0-mini" / "ego_pose.json").write_text("[{")
    with pytest.raises(DataError, match="not valid JSON") as err:
        NuScenesDataset(tree.root, "v1.0-mini", split="mini_val")
    assert err.value.path.name == "ego_pose.json"


def test_real_layout_has_no_ground_truth_images(sample_a):
    """Real nuScenes ships no per-pixel ground truth: the simulator-only paths stay None."""
    assert len(sample_a.cameras) == len(CAMERAS)
    assert all(c.semantic_path is None and c.depth_path is None for c in sample_a.cameras)
