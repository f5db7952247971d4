"""Projection pseudo-labels: pixel convention, hand-computed mask votes, real KITTI / SemanticKITTI
geometry against the calibration's own projection matrices, and the analytic parallax failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.data import io
from nerfseg.data.sample import IGNORE_INDEX, CameraFrame
from nerfseg.errors import DataError
from nerfseg.geometry.transforms import kitti_camera_from_projection, make_transform
from nerfseg.ssl.projection import (
    mask_vote_labels,
    pixel_label_of_points,
    project_to_pixels,
    projection_pseudo_labels,
)

I = IGNORE_INDEX
K_TOY = np.array([[100.0, 0, 50], [0, 100, 20], [0, 0, 1]])  # 100 x 40 image


def test_project_to_pixels_hand_values():
    lidar_to_cam = make_transform(np.eye(3), [0, 0, 1.0])  # cam = lidar shifted 1 m along z
    pts = torch.tensor([
        [0.0, 0.0, 1.0],  # z_cam 2 -> u 50, v 20
        [1.0, -0.5, 4.0],  # z_cam 5 -> u 70, v 10
        [-0.2502, 0.0999, 4.0],  # u 44.996, v 21.998 -> floor (44, 21)
        [0.0, 0.0, -3.0],  # behind the camera
        [10.0, 0.0, 1.0],  # u 550: right of the image
        [0.0, 0.0, -1.0],  # on the camera plane
    ])
    pixels, visible = project_to_pixels(pts, K_TOY, lidar_to_cam, (100, 40))
    assert pixels.dtype == torch.int64 and visible.dtype == torch.bool
    assert visible.tolist() == [True, True, True, False, False, False]
    assert pixels.tolist() == [[50, 20], [70, 10], [44, 21], [-1, -1], [-1, -1], [-1, -1]]
    # numpy input gives the same answer
    pixels_np, visible_np = project_to_pixels(pts.numpy(), K_TOY, lidar_to_cam, (100, 40))
    assert torch.equal(pixels_np, pixels) and torch.equal(visible_np, visible)


def _reference_pixels(points, projection, width, height):
    """Independent reference: the 3x4 lidar -> image matrix applied directly, floor of u / w, v / w."""
    h = np.c_[points[:, :3].astype(np.float64), np.ones(len(points))] @ projection.T
    u, v = h[:, 0] / h[:, 2], h[:, 1] / h[:, 2]
    visible = (h[:, 2] > 1e-3) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return np.floor(np.c_[u, v]).astype(np.int64), visible, h[:, 2]


def test_real_semantickitti_points_project_like_the_calibration(real_data):
    """SemanticKITTI seq 00 scan 0 (50 points) with the seq 00 calib.txt, image_2 of 1241 x 376."""
    calib = io.read_kitti_calib(real_data / "kitti_odometry_calib" / "calib.txt")
    scan = real_data / "semantickitti_50pt" / "sequences" / "00" / "velodyne" / "000000.bin"
    points = io.read_points_bin(scan, 4)
    K, shift = kitti_camera_from_projection(calib["P2"])
    pixels, visible = project_to_pixels(torch.from_numpy(points), K, shift @ calib["Tr"], (1241, 376))
    ref_pixels, ref_visible, depth = _reference_pixels(points, calib["P2"] @ calib["Tr"], 1241, 376)
    assert visible.sum() == ref_visible.sum() == 9
    np.testing.assert_array_equal(visible.numpy(), ref_visible)
    np.testing.assert_array_equal(pixels[visible].numpy(), ref_pixels[ref_visible])
    # The camera looks along the LiDAR's +x: every visible point is ahead, within the ~±41 degree field
    # of view of image_2, and some points behind the camera would land in the image if depth were ignored.
    vis = visible.numpy()
    assert (points[vis, 0] > 10).all()
    assert (np.abs(np.degrees(np.arctan2(points[vis, 1], points[vis, 0]))) < 42).all()
    u, v = ref_pixels[:, 0], ref_pixels[:, 1]
    behind_but_inside = (depth < 0) & (u >= 0) & (u < 1241) & (v >= 0) & (v < 376)
    assert behind_but_inside.sum() > 5 and not vis[behind_but_inside].any()


def test_real_kitti_object_pixels_match_mmdet_lidar2img(real_data):
    folder = real_data / "kitti_object_000008"
    info = json.loads((folder / "000008.calib.json").read_text())["data_list"][0]
    tr = np.array(info["lidar_points"]["Tr_velo_to_cam"])
    r0 = np.array(info["images"]["R0_rect"])
    K, shift = kitti_camera_from_projection(np.array(info["images"]["CAM2"]["cam2img"])[:3])
    points = io.read_points_bin(folder / "000008.bin", 4)
    pixels, visible = project_to_pixels(torch.from_numpy(points), K, shift @ r0 @ tr, (1242, 375))
    assert visible.sum() == 17238  # the scan is cropped to the camera's field of view
    assert pixels[:, 0].min() >= 0 and pixels[:, 0].max() <= 1241 and pixels[:, 1].max() <= 374
    # mmdetection3d's lidar2img (float32-rounded) is the independent reference: same pixel up to rounding.
    ref_pixels, ref_visible, _ = _reference_pixels(points, np.array(info["images"]["CAM2"]["lidar2img"])[:3],
                                                   1242, 375)
    assert ref_visible.all()
    diff = np.abs(pixels.numpy() - ref_pixels)
    assert diff.max() <= 1 and (diff.sum(1) == 0).mean() > 0.99


def _vote_scene():
    """Hand-made votes over a 4 x 6 mask image with masks 0, 1, 2, 5, 7 and -1."""
    mask_ids = torch.tensor([
        [0, 0, 1, 1, 2, 2],
        [0, 0, 1, 1, 2, 2],
        [5, 5, 7, 7, -1, -1],
        [5, 5, 7, 7, -1, -1],
    ], dtype=torch.int32)
    # (col, row, teacher class, visible)
    rows = [
        (0, 0, 1, True), (1, 0, 1, True), (0, 1, 1, True), (1, 1, 2, True), (0, 0, I, True),  # mask 0
        (2, 0, 0, True), (3, 0, 0, True), (2, 1, 3, True), (3, 1, 3, True),  # mask 1: 2-2 tie
        (4, 0, 4, True), (5, 0, 4, True), (4, 1, 4, True), (5, 1, 1, True), (4, 1, 1, True),  # mask 2: 3/5
        (0, 2, 2, True), (1, 2, 2, True), (0, 3, 2, True), (1, 3, 2, False),  # mask 5: one not visible
        (2, 2, I, True), (3, 2, I, True), (2, 3, I, True), (3, 3, I, True),  # mask 7: no votes
        (4, 2, 1, True), (5, 3, 1, True),  # in no mask
    ]
    pixels = torch.tensor([[c, r] for c, r, _, _ in rows])
    classes = torch.tensor([k for _, _, k, _ in rows])
    visible = torch.tensor([v for _, _, _, v in rows])
    return pixels, visible, classes, mask_ids


def test_mask_vote_labels_hand_votes():
    pixels, visible, classes, mask_ids = _vote_scene()
    labels = mask_vote_labels(pixels, visible, classes, mask_ids, 5, min_votes=3, min_agreement=0.6)
    # mask 0: votes {1: 3, 2: 1}, 3 >= 3 and 3/4 >= 0.6 -> all five points (also the unconfident and the
    # class-2 one) get 1. mask 1: majority 2 votes < 3. mask 2: {4: 3, 1: 2}, 3/5 = 0.6 -> 4.
    # mask 5: 3 visible votes for 2 -> its visible points get 2, the hidden one nothing. mask 7, no mask: I.
    assert labels.tolist() == [1] * 5 + [I] * 4 + [4] * 5 + [2, 2, 2, I] + [I] * 4 + [I, I]
    stricter = mask_vote_labels(pixels, visible, classes, mask_ids, 5, min_votes=3, min_agreement=0.65)
    assert stricter.tolist() == [1] * 5 + [I] * 4 + [I] * 5 + [2, 2, 2, I] + [I] * 4 + [I, I]
    # min_votes 2: mask 1's 2-2 tie goes to the lowest class (0) only if 2/4 reaches the agreement.
    tie = mask_vote_labels(pixels, visible, classes, mask_ids, 5, min_votes=2, min_agreement=0.5)
    assert tie[5:9].tolist() == [0, 0, 0, 0]
    assert mask_vote_labels(pixels, visible, classes, mask_ids.numpy(), 5, 3, 0.6).tolist() == labels.tolist()


def test_mask_vote_labels_rejects_bad_input():
    pixels, visible, classes, mask_ids = _vote_scene()
    with pytest.raises(ValueError, match="point_classes"):
        mask_vote_labels(pixels, visible, classes, mask_ids, 4, 3, 0.6)  # class 4 with only 4 classes
    with pytest.raises(ValueError, match="outside the 6x4 image"):
        mask_vote_labels(pixels + torch.tensor([6, 0]), visible, classes, mask_ids, 5, 3, 0.6)
    with pytest.raises(ValueError, match="min_votes"):
        mask_vote_labels(pixels, visible, classes, mask_ids, 5, 0, 0.6)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 60), min_votes=st.integers(1, 4),
       min_agreement=st.floats(0, 1))
def test_mask_vote_labels_equivariant(seed, n, min_votes, min_agreement):
    """Permuting the points permutes the labels; renaming the masks (a bijection of ids) changes nothing;
    accepted labels are constant over a mask and equal to its majority."""
    gen = np.random.default_rng(seed)
    mask_ids = torch.from_numpy(gen.integers(-1, 5, (5, 7)).astype(np.int32))
    pixels = torch.from_numpy(np.c_[gen.integers(0, 7, n), gen.integers(0, 5, n)])
    visible = torch.from_numpy(gen.random(n) < 0.8)
    classes = torch.from_numpy(gen.choice([0, 1, 2, I], n))
    args = (3, min_votes, min_agreement)
    labels = mask_vote_labels(pixels, visible, classes, mask_ids, *args)
    perm = torch.from_numpy(gen.permutation(n)).long()
    permuted = mask_vote_labels(pixels[perm], visible[perm], classes[perm], mask_ids, *args)
    assert torch.equal(permuted, labels[perm])
    rename = torch.tensor([40, 3, 17, 0, 9])  # id k -> rename[k]; -1 stays -1
    renamed = torch.where(mask_ids >= 0, rename[mask_ids.clamp(min=0).long()], -1)
    assert torch.equal(mask_vote_labels(pixels, visible, classes, renamed, *args), labels)
    point_mask = torch.where(visible, mask_ids[pixels[:, 1], pixels[:, 0]].long(), -1)
    for m in range(5):
        members = point_mask == m
        got = labels[members]
        votes = torch.bincount(classes[members & (classes != I)], minlength=3)
        if got.numel() and got[0] != I:
            assert (got == got[0]).all() and votes[got[0]] == votes.max() >= min_votes
    assert (labels[point_mask < 0] == I).all()


# The parallax scene, in the camera frame (x right, y down, z forward); the LiDAR sits 1 m left of the camera.
CAM_FROM_LIDAR_R = np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])  # lidar x fwd, y left, z up -> OpenCV
LIDAR_TO_CAM = make_transform(CAM_FROM_LIDAR_R, [-1.0, 0.0, 0.0])  # lidar origin -> cam (-1, 0, 0)
POLE = [(x, y, 5.0) for x in (-0.05, 0.0, 0.05) for y in (-0.5, 0.0, 0.5)]  # class 1, half-width 0.1 m
WALL = [(x, y, 20.0) for x in (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0) for y in (0.0, 0.5)]  # class 2


def _parallax_scene():
    cam_points = np.array(POLE + WALL)
    lidar_points = (cam_points - LIDAR_TO_CAM[:3, 3]) @ CAM_FROM_LIDAR_R  # x_l = R^T (x_c - t)
    classes = torch.tensor([1] * len(POLE) + [2] * len(WALL))
    # The camera sees the pole over u in [100 * -0.1 / 5 + 50, 100 * 0.1 / 5 + 50) = [48, 52).
    semantic = torch.full((40, 100), 2)
    semantic[:, 48:52] = 1
    return torch.from_numpy(lidar_points), classes, semantic


def test_parallax_scene_geometry():
    """The wall points at x = 0 are hidden from the camera by the pole but seen by the LiDAR."""
    lidar_points, _, _ = _parallax_scene()
    lidar_origin_cam = (LIDAR_TO_CAM @ np.r_[0, 0, 0, 1.0])[:3]
    np.testing.assert_allclose(lidar_origin_cam, [-1.0, 0, 0])
    np.testing.assert_allclose(np.linalg.inv(LIDAR_TO_CAM)[:3, 3], [0, -1.0, 0])  # camera 1 m right of it
    hidden = np.array([0.0, 0.0, 20.0])  # on the camera's axis, straight behind the pole
    x_at_pole = lidar_origin_cam[0] + (hidden - lidar_origin_cam)[0] * 5.0 / 20.0  # LiDAR ray at z = 5
    assert abs(x_at_pole + 0.75) < 1e-12  # passes 0.65 m beside the pole (half-width 0.1 m)
    pixels, visible = project_to_pixels(lidar_points, K_TOY, LIDAR_TO_CAM, (100, 40))
    assert visible.all()
    assert pixels[len(POLE):, 0].tolist() == [35, 35, 40, 40, 45, 45, 50, 50, 55, 55, 60, 60]


def test_occluded_point_takes_the_occluders_mask_class():
    lidar_points, classes, semantic = _parallax_scene()
    masks_cam1 = torch.ones((40, 100), dtype=torch.int32)  # mask 1 = the wall
    masks_cam1[:, 48:52] = 0  # mask 0 = the pole
    masks_cam1[:, :38] = -1  # no mask over the far left: wall x = -3 gets nothing from camera 1
    masks_cam2 = torch.full((40, 100), 4, dtype=torch.int32)  # one mask over everything
    cam1 = CameraFrame("cam1", Path("cam1.png"), K_TOY, LIDAR_TO_CAM, 0.0, (100, 40))
    cam2 = CameraFrame("cam2", Path("cam2.png"), K_TOY, LIDAR_TO_CAM, 0.0, (100, 40))
    pixels, visible = project_to_pixels(lidar_points, K_TOY, LIDAR_TO_CAM, (100, 40))
    one = mask_vote_labels(pixels, visible, classes, masks_cam1, 3, min_votes=3, min_agreement=0.5)
    # mask 0: 9 pole votes for 1 and 2 wall votes for 2 -> 1, also for the two hidden wall points.
    wall_one = [I, I, 2, 2, 2, 2, 1, 1, 2, 2, 2, 2]
    assert one.tolist() == [1] * 9 + wall_one
    # The class the camera shows there: the pole, where the points are wall (the parallax error).
    shown = pixel_label_of_points(pixels, visible, semantic)
    assert shown.tolist() == [1] * 9 + [2] * 6 + [1, 1] + [2] * 4
    assert ((shown != classes) & visible).sum() == 2
    # Camera 2's single mask: 12 votes for 2 out of 21 -> 2 everywhere. The first camera's label wins.
    votes = (classes, 3, 3, 0.5)
    both = projection_pseudo_labels(lidar_points, [cam1, cam2], [masks_cam1, masks_cam2], *votes)
    assert both.tolist() == [1] * 9 + [2, 2] + wall_one[2:]
    swapped = projection_pseudo_labels(lidar_points, [cam2, cam1], [masks_cam2, masks_cam1], *votes)
    assert swapped.tolist() == [2] * 21
    with pytest.raises(DataError, match="cam1.png"):
        projection_pseudo_labels(lidar_points, [cam1], [masks_cam1[:, :50]], classes, 3, 3, 0.5)


def test_pixel_label_of_points_ignores_invisible_points():
    semantic = np.array([[3, 4], [5, 6]], dtype=np.uint16)
    pixels = torch.tensor([[1, 0], [0, 1], [-1, -1], [1, 1]])
    visible = torch.tensor([True, True, False, True])
    assert pixel_label_of_points(pixels, visible, semantic).tolist() == [4, 5, I, 6]
