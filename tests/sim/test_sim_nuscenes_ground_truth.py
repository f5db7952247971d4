"""Ground-truth semantic and depth images of the nuScenes-layout simulation (our extension,
``samples_semantic/`` and ``samples_depth/``): written for every camera image, found by the reader, and
aligned with the LiDAR: a labelled point projected into a ring camera lands on a pixel of its own class
whose depth is the point's z in that camera's frame (the projection here is plain numpy, independent of the
renderer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nerfseg.data.ground_truth import read_depth_m, read_semantic_train
from nerfseg.data.labelmaps import NUSCENES
from nerfseg.data.nuscenes_files import ground_truth_filename
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.sim.classes import SIM_CLASSES


def _project(points: np.ndarray, lidar_to_cam: np.ndarray, K: np.ndarray, size: tuple[int, int]):
    """Points (N, 3), lidar frame, metres -> (indices of the points inside the image, their pixel rows and
    columns, their z in the camera frame in metres)."""
    cam = points @ lidar_to_cam[:3, :3].T + lidar_to_cam[:3, 3]
    keep = np.flatnonzero(cam[:, 2] > 0.5)
    uvw = cam[keep] @ K.T
    cols = np.floor(uvw[:, 0] / uvw[:, 2]).astype(np.int64)
    rows = np.floor(uvw[:, 1] / uvw[:, 2]).astype(np.int64)
    width, height = size
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    return keep[inside], rows[inside], cols[inside], cam[keep[inside], 2]


def test_every_camera_image_has_its_ground_truth_pair(nuscenes_root):
    records = json.loads((nuscenes_root / "v1.0-mini" / "sample_data.json").read_text())
    cameras = [r for r in records if r["fileformat"] == "jpg"]
    assert len(cameras) == 4 * 6
    sim_ids = {c.nuscenes_index for c in SIM_CLASSES}
    for record in cameras:
        with Image.open(nuscenes_root / ground_truth_filename(record["filename"], "semantic")) as img:
            assert img.mode.startswith("I;16") and img.size == (record["width"], record["height"])
            semantic = np.asarray(img)
        with Image.open(nuscenes_root / ground_truth_filename(record["filename"], "depth")) as img:
            assert img.mode.startswith("I;16") and img.size == (record["width"], record["height"])
            depth = np.asarray(img)
        assert ((semantic == 0) == (depth == 0)).all()  # sky: no class (ignored), no depth
        assert set(np.unique(semantic)) - {0} <= sim_ids
        assert (semantic > 0).mean() > 0.3


def test_ground_truth_filename_mirrors_the_camera_file():
    name = "samples/CAM_BACK/n015-2018-07-18-11-07-57+0800__CAM_BACK__1531883530437525.jpg"
    assert (
        ground_truth_filename(name, "semantic")
        == "samples_semantic/CAM_BACK/n015-2018-07-18-11-07-57+0800__CAM_BACK__1531883530437525.png"
    )
    assert ground_truth_filename(name, "depth").startswith("samples_depth/CAM_BACK/")
    with pytest.raises(ValueError, match="kind"):
        ground_truth_filename(name, "normals")
    with pytest.raises(ValueError, match="samples/CAM_X"):
        ground_truth_filename("sweeps/CAM_BACK/x.jpg", "depth")


@pytest.mark.parametrize("channel", ["CAM_BACK_LEFT", "CAM_FRONT_LEFT"])  # views with several classes
def test_ground_truth_aligns_with_the_lidar_projection(nuscenes_root, channel):
    from nerfseg.data.nuscenes import NuScenesDataset

    dataset = NuScenesDataset(nuscenes_root, "v1.0-mini", "mini_train", cameras=(channel,))
    agree, shifted, relative = [], [], []
    for sample in (dataset[0], dataset[1]):
        (camera,) = sample.cameras
        assert camera.semantic_path == Path(nuscenes_root, "samples_semantic", channel,
                                            camera.image_path.stem + ".png")
        assert camera.depth_path.parent == nuscenes_root / "samples_depth" / channel
        semantic = read_semantic_train(camera, NUSCENES)
        depth = read_depth_m(camera)
        width, height = camera.image_size
        assert semantic.shape == depth.shape == (height, width)
        assert set(np.unique(semantic)) <= set(range(NUSCENES.num_classes)) | {IGNORE_INDEX}
        index, rows, cols, z = _project(sample.points[:, :3].astype(np.float64), camera.lidar_to_cam,
                                        camera.K, camera.image_size)
        assert index.size > 200
        labels = sample.labels[index]
        hit = semantic[rows, cols] == labels
        agree.append(hit)
        # Control: pixels half an image width off agree about as often as a wrong pose or id map would.
        shifted.append(semantic[rows, (cols + width // 2) % width] == labels)
        relative.append(np.abs(depth[rows, cols] - z)[hit] / z[hit])
    agree, shifted, relative = (np.concatenate(a) for a in (agree, shifted, relative))
    assert agree.mean() > 0.9 and shifted.mean() < 0.75
    assert np.median(relative) < 0.015  # z-depth, not range (which differs by up to 15 % at the edges)
    assert (relative < 0.05).mean() > 0.85


def test_real_nuscenes_layout_has_no_ground_truth(nuscenes_root, tmp_path):
    """Without the two folders (as in real nuScenes) the paths are None and the helpers return None."""
    import shutil

    from nerfseg.data.nuscenes import NuScenesDataset

    root = tmp_path / "nus"
    for part in ("v1.0-mini", "samples", "lidarseg"):
        shutil.copytree(nuscenes_root / part, root / part)
    camera = NuScenesDataset(root, "v1.0-mini", "mini_val")[0].cameras[3]
    assert camera.semantic_path is None and camera.depth_path is None
    assert read_semantic_train(camera, NUSCENES) is None and read_depth_m(camera) is None
