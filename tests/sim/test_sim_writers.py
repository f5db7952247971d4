"""The simulated datasets read back through the project's readers and pass `check-data`; the geometry the
readers reconstruct (ego-motion compensated lidar_to_cam) is the one the simulator rendered with."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sim_testing import tiny_config

from nerfseg.data.io import read_kitti_calib
from nerfseg.data.labelmaps import SEMANTICKITTI
from nerfseg.geometry.transforms import invert_rigid as invert
from nerfseg.geometry.transforms import make_transform as rigid
from nerfseg.sim.kitti import kitti_rig
from nerfseg.sim.rig import LIDAR_HEIGHT_M


def test_kitti_layout_files(kitti_root):
    seq = kitti_root / "sequences" / "00"
    for sub in ("velodyne", "labels", "scribbles", "image_2", "semantic_2", "depth_2"):
        assert len(list((seq / sub).iterdir())) == 2, sub
    for name in ("calib.txt", "poses.txt", "times.txt", "times_image_2.txt"):
        assert (seq / name).is_file()
    calib = read_kitti_calib(seq / "calib.txt")
    assert set(calib) >= {"P0", "P1", "P2", "P3", "Tr"}
    assert np.loadtxt(seq / "poses.txt").shape == (2, 12)
    times, cam_times = np.loadtxt(seq / "times.txt"), np.loadtxt(seq / "times_image_2.txt")
    assert np.allclose(times, [0.0, 0.1]) and np.allclose(cam_times - times, 0.05)


def test_kitti_readback_and_labels(kitti_root):
    from PIL import Image

    from nerfseg.data.semantickitti import SemanticKittiDataset

    train = SemanticKittiDataset(kitti_root, split="train")
    val = SemanticKittiDataset(kitti_root, split="val")
    assert train.sample_ids == ["00/000000", "00/000001"] and val.sample_ids == ["08/000000", "08/000001"]
    sample = val[1]
    words = np.fromfile(val.label_path(1), np.uint32)
    raw = words & 0xFFFF
    assert sample.points.shape == (raw.size, 4) and np.isfinite(sample.points).all()
    assert (sample.points[:, 3] >= 0).all() and (sample.points[:, 3] <= 1).all()
    assert np.array_equal(sample.labels, SEMANTICKITTI.to_train(raw))
    assert (sample.labels != 255).all()  # every simulated class is in the learning map
    things = np.isin(raw, [10, 18, 30, 252, 253, 254, 11])
    assert ((words >> 16)[things] > 0).all() and ((words >> 16)[~things] == 0).all()
    cam = sample.cameras[0]
    semantic = np.asarray(Image.open(cam.semantic_path))
    depth = np.asarray(Image.open(cam.depth_path))
    w, h = cam.image_size
    assert semantic.shape == depth.shape == (h, w) and (w, h) == (310, 94)
    assert ((semantic == 0) == (depth == 0)).all()  # sky: no class, no depth
    assert set(np.unique(semantic)) - {0} <= set(SEMANTICKITTI.raw_names)


def test_kitti_lidar_to_cam_matches_the_rendering_rig(kitti_root):
    """The reader's lidar_to_cam (from calib.txt, poses.txt, times_image_2.txt) equals the transform the
    simulator rendered with: cam2 at t_cam from the LiDAR at t_lidar."""
    from nerfseg.data.semantickitti import SemanticKittiDataset

    config = tiny_config()
    rig = kitti_rig(config.camera, no_parallax=False)
    dataset = SemanticKittiDataset(kitti_root, split="train")
    for i in range(2):
        cam = dataset[i].cameras[0]
        t_lidar = 0.1 * i
        t_cam = t_lidar + config.camera.time_offset_s
        # Straight drive along +x: world_T_lidar(t) differs between times by a translation only.
        shift = rigid(None, (config.ego_speed_mps * (t_cam - t_lidar), 0, 0))
        expected = invert(rig.lidar_T_cam2) @ invert(shift)
        assert np.allclose(cam.lidar_to_cam, expected, atol=1e-6)
        assert np.allclose(cam.K, rig.K)
    assert LIDAR_HEIGHT_M > 1


@pytest.mark.parametrize("dataset", ["semantickitti", "scribblekitti"])
def test_check_data_passes_on_kitti(kitti_root, dataset, capsys):
    from nerfseg.cli import main

    assert main(["check-data", str(kitti_root), "--dataset", dataset, "--no-progress"]) == 0
    assert "no problems" in capsys.readouterr().out


def test_scribbles_are_a_sparse_subset(kitti_root):
    seq = kitti_root / "sequences" / "00"
    dense = np.fromfile(seq / "labels" / "000000.label", np.uint32)
    scribbles = np.fromfile(seq / "scribbles" / "000000.label", np.uint32)
    labeled = scribbles != 0
    assert np.array_equal(scribbles[labeled], dense[labeled])
    assert 0.07 <= labeled.mean() <= 0.12


def test_nuscenes_readback_and_check(nuscenes_root, capsys):
    from nerfseg.cli import main
    from nerfseg.data.labelmaps import NUSCENES
    from nerfseg.data.nuscenes import NuScenesDataset

    train = NuScenesDataset(nuscenes_root, "v1.0-mini", "mini_train")
    val = NuScenesDataset(nuscenes_root, "v1.0-mini", "mini_val")
    assert len(train) == 2 and len(val) == 2
    sample = train[1]
    assert sample.points.shape[1] == 5 and (sample.points[:, 3] <= 1).all()
    assert len(sample.cameras) == 6
    assert sample.labels is not None and (sample.labels != 255).all()
    present = {NUSCENES.class_names[c] for c in np.unique(sample.labels)}
    assert {"car", "driveable_surface", "sidewalk", "manmade", "vegetation"} <= present
    assert (
        main(
            [
                "check-data",
                str(nuscenes_root),
                "--dataset",
                "nuscenes",
                "--version",
                "v1.0-mini",
                "--no-progress",
            ]
        )
        == 0
    )
    tables = {p.stem: json.loads(p.read_text()) for p in (nuscenes_root / "v1.0-mini").glob("*.json")}
    assert {s["name"] for s in tables["scene"]} == {"scene-0061", "scene-0103"}
    assert len(tables["category"]) == 32 and len(tables["sample"]) == 4
    assert len(tables["sample_data"]) == 4 * 7 and len(tables["lidarseg"]) == 4


def test_nuscenes_lidar_to_cam_matches_the_rig(nuscenes_root):
    """Ego-motion compensation through the ego poses: for each camera, lidar_to_cam equals
    cam_T_ego @ ego(t_cam)_T_ego(t_lidar) @ ego_T_lidar with the rig's mounts and the straight drive."""
    from nerfseg.data.nuscenes import NuScenesDataset
    from nerfseg.sim.nuscenes_writer import LIDAR_TRANSLATION, LIDAR_YAW, RING
    from nerfseg.sim.rig import camera_rotation, yaw_rotation

    config = tiny_config()
    sample = NuScenesDataset(nuscenes_root, "v1.0-mini", "mini_train")[0]
    ego_T_lidar = rigid(yaw_rotation(LIDAR_YAW), LIDAR_TRANSLATION)
    by_name = {m.name: m for m in RING}
    delays = []
    for cam in sample.cameras:
        mount = by_name[cam.name]
        delay = cam.timestamp - sample.timestamp
        delays.append(delay)
        ego_T_cam = rigid(camera_rotation(mount.yaw), mount.translation)
        shift = rigid(None, (config.ego_speed_mps * delay, 0, 0))  # ego(t_cam) in ego(t_lidar)
        expected = invert(ego_T_cam) @ invert(shift) @ ego_T_lidar
        assert np.allclose(cam.lidar_to_cam, expected, atol=1e-5), cam.name
    assert max(np.abs(delays)) <= 0.025 + 1e-6 and len(set(np.round(delays, 6))) > 1


def test_recorded_config_loads_back(kitti_root):
    from nerfseg.sim.config import load_sim_config

    assert load_sim_config(kitti_root / "sim_config.yaml") == tiny_config()
