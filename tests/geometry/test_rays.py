"""Camera and LiDAR rays: real calibrations (KITTI object 000008, nuScenes keyframe) and analytic cases."""

from __future__ import annotations

import json

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.geometry.rays import (
    PixelGrid,
    RayBundle,
    camera_frame_rays,
    camera_ray_bundle,
    camera_rays,
    lidar_ray_bundle,
    lidar_rays,
    pixel_grid,
    pixel_rays,
    read_at_pixels,
    z_depth_to_ray_distance,
)


def _distance_to_ray(points: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    rel = points - origins
    along = (rel * dirs).sum(dim=1, keepdim=True)
    return torch.linalg.vector_norm(rel - along * dirs, dim=1), along.squeeze(1)


def _check_rays_hit_points(points: np.ndarray, lidar_to_img: np.ndarray, K, lidar_to_cam, size):
    """Project with the dataset's own lidar->image matrix, cast rays through the projections, measure."""
    hom = np.concatenate([points, np.ones((points.shape[0], 1))], axis=1)
    pix = hom @ lidar_to_img[:3].T
    depth = pix[:, 2]
    uv = pix[:, :2] / depth[:, None]
    width, height = size
    inside = (depth > 0.5) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
    assert inside.sum() > 1000
    origins, dirs = camera_rays(
        torch.from_numpy(K), torch.from_numpy(lidar_to_cam), torch.from_numpy(uv[inside])
    )
    dist, along = _distance_to_ray(torch.from_numpy(points[inside]), origins, dirs)
    assert float(dist.max()) < 1e-3  # within 1 mm
    assert bool((along > 0).all())
    np.testing.assert_allclose(torch.linalg.vector_norm(dirs, dim=1).numpy(), 1.0, atol=1e-12)
    return origins


def test_kitti_object_rays_pass_through_projected_points(real_data):
    folder = real_data / "kitti_object_000008"
    info = json.loads((folder / "000008.calib.json").read_text())["data_list"][0]
    velo_to_cam = np.array(info["lidar_points"]["Tr_velo_to_cam"], dtype=np.float64)
    rect = np.array(info["images"]["R0_rect"], dtype=np.float64)
    p2 = np.array(info["images"]["CAM2"]["cam2img"], dtype=np.float64)[:3]  # (3, 4) P2
    points = np.fromfile(folder / "000008.bin", dtype=np.float32).reshape(-1, 4)[:, :3].astype(np.float64)
    # Independent reference: KITTI's own projection P2 @ R0_rect @ Tr_velo_to_cam.
    lidar_to_img = p2 @ rect @ velo_to_cam
    # Rays: intrinsics K = P2[:, :3], camera 2 = cam0 shifted by K^-1 P2[:, 3].
    K = p2[:, :3]
    shift = np.eye(4)
    shift[:3, 3] = np.linalg.solve(K, p2[:, 3])
    lidar_to_cam = shift @ rect @ velo_to_cam
    origins = _check_rays_hit_points(points, lidar_to_img, K, lidar_to_cam, (1242, 375))
    # KITTI rig: cameras about 0.27 m in front of the Velodyne (x forward), camera 2 ~6 cm to its left.
    assert abs(float(origins[0, 0]) - 0.27) < 0.02 and abs(float(origins[0, 1]) - 0.06) < 0.02


def test_nuscenes_rays_pass_through_projected_points(real_data):
    folder = real_data / "nuscenes_keyframe"
    info = json.loads(next(folder.glob("*.calib.json")).read_text())["data_list"][0]
    lidar_file = next(folder.glob("*LIDAR_TOP*.pcd.bin"))
    points = np.fromfile(lidar_file, dtype=np.float32).reshape(-1, 5)[:, :3].astype(np.float64)
    for name in ("CAM_FRONT", "CAM_BACK_LEFT"):
        cam = info["images"][name]
        K = np.array(cam["cam2img"], dtype=np.float64)
        lidar_to_cam = np.array(cam["lidar2cam"], dtype=np.float64)
        lidar_to_img = np.eye(4)
        lidar_to_img[:3, :3] = K
        lidar_to_img = lidar_to_img @ lidar_to_cam
        _check_rays_hit_points(points, lidar_to_img, K, lidar_to_cam, (1600, 900))


def test_pixel_rays_go_through_pixel_centres():
    K = torch.tensor([[500.0, 0, 320], [0, 400.0, 240], [0, 0, 1]], dtype=torch.float64)
    lidar_to_cam = torch.eye(4, dtype=torch.float64)
    lidar_to_cam[:3, :3] = torch.tensor(
        [[0.0, -1, 0], [0, 0, -1], [1, 0, 0]]
    )  # x fwd, y left, z up -> OpenCV
    lidar_to_cam[:3, 3] = torch.tensor([0.1, -0.2, 0.3])
    pixels = pixel_grid(640, 480, stride=7)
    assert PixelGrid(640, 480, 7).shape == (69, 91)  # centres 3, 10, ..., 479 and 3, ..., 633
    assert pixels.shape == (69 * 91, 2)
    assert pixels[1].tolist() == [10, 3] and pixels[91].tolist() == [3, 10]
    origins, dirs = pixel_rays(K, lidar_to_cam, pixels[:, 0], pixels[:, 1])
    # Re-project a point 10 m along each ray: it must land on the pixel centre.
    points = origins + 10.0 * dirs
    cam = points @ lidar_to_cam[:3, :3].T + lidar_to_cam[:3, 3]
    uv = (cam @ K.T)[:, :2] / cam[:, 2:]
    np.testing.assert_allclose(uv.numpy(), pixels.double().numpy() + 0.5, atol=1e-9)
    # Camera centre: -R^T t.
    expected_centre = -(lidar_to_cam[:3, :3].T @ lidar_to_cam[:3, 3])
    np.testing.assert_allclose(origins[0].numpy(), expected_centre.numpy(), atol=1e-12)
    # The principal point's ray is the optical axis = LiDAR x.
    _, axis = camera_rays(K, lidar_to_cam, torch.tensor([[320.0, 240.0]], dtype=torch.float64))
    np.testing.assert_allclose(axis[0].numpy(), [1.0, 0.0, 0.0], atol=1e-12)


def test_camera_rays_one_camera_per_ray_matches_single_camera():
    K = torch.tensor([[300.0, 0, 100], [0, 300.0, 50], [0, 0, 1]], dtype=torch.float64)
    poses = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1)
    poses[1, :3, 3] = torch.tensor([1.0, 2.0, 3.0])
    uv = torch.tensor([[10.0, 20.0], [30.0, 40.0]], dtype=torch.float64)
    origins, dirs = camera_rays(K.expand(2, 3, 3), poses, uv)
    for i in range(2):
        o, d = camera_rays(K, poses[i], uv[i : i + 1])
        np.testing.assert_allclose(origins[i].numpy(), o[0].numpy())
        np.testing.assert_allclose(dirs[i].numpy(), d[0].numpy())


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(*[st.floats(-80, 80, allow_nan=False)] * 3), min_size=1, max_size=20))
def test_lidar_rays_reconstruct_points(coords):
    points = torch.tensor(coords, dtype=torch.float64)
    origins, dirs, ranges = lidar_rays(points)
    assert torch.isfinite(dirs).all()
    assert (origins == 0).all()
    nonzero = ranges > 1e-6  # below min_range the direction is not normalised (but finite)
    np.testing.assert_allclose((dirs * ranges[:, None])[nonzero].numpy(), points[nonzero].numpy(), atol=1e-9)
    np.testing.assert_allclose(torch.linalg.vector_norm(dirs[nonzero], dim=1).numpy(), 1.0, atol=1e-9)


def test_pixel_rays_agree_with_project_points(real_data):
    """The pixel convention matches nerfseg.geometry.transforms.project_points: the ray through the centre of
    pixel floor(uv) of a projected point passes within half a pixel's footprint of the point, and the ray
    through uv itself within 1 mm."""
    from nerfseg.geometry.transforms import project_points

    folder = real_data / "kitti_object_000008"
    info = json.loads((folder / "000008.calib.json").read_text())["data_list"][0]
    lidar_to_cam = np.array(info["images"]["CAM2"]["lidar2cam"], dtype=np.float64)
    K = np.array(info["images"]["CAM2"]["cam2img"], dtype=np.float64)[:3, :3]
    points = np.fromfile(folder / "000008.bin", dtype=np.float32).reshape(-1, 4)[:, :3].astype(np.float64)
    uv, depth, visible = project_points(points, lidar_to_cam, K, (1242, 375))
    assert visible.sum() > 1000
    pts = torch.from_numpy(points[visible])
    origins, dirs = camera_rays(
        torch.from_numpy(K), torch.from_numpy(lidar_to_cam), torch.from_numpy(uv[visible])
    )
    assert float(_distance_to_ray(pts, origins, dirs)[0].max()) < 1e-3
    pixel = torch.from_numpy(np.floor(uv[visible]))
    origins, dirs = pixel_rays(torch.from_numpy(K), torch.from_numpy(lidar_to_cam), pixel[:, 0], pixel[:, 1])
    dist, along = _distance_to_ray(pts, origins, dirs)
    half_pixel_footprint = 0.5 * np.sqrt(2) * torch.from_numpy(depth[visible]) / K[0, 0]
    assert bool((dist <= half_pixel_footprint * 1.01 + 1e-9).all())


def test_camera_origin_follows_ego_motion_to_capture_time(real_data):
    """Rays start at the camera centre at ITS capture time. With the nuScenes keyframe's calibration and an
    ego that moved 0.4 m forward (and turned 0.01 rad) between the sweep and the exposure, lidar_to_cam
    composed through the ego poses puts the origin where the moved camera is, and rays through the
    projections of static points still pass within 1 mm of them."""
    from nerfseg.data.nuscenes import lidar_to_camera

    folder = real_data / "nuscenes_keyframe"
    info = json.loads(next(folder.glob("*.calib.json")).read_text())["data_list"][0]
    cam = info["images"]["CAM_FRONT"]
    lidar_to_ego = np.array(info["lidar_points"]["lidar2ego"], dtype=np.float64)
    ego_at_lidar = np.array(info["ego2global"], dtype=np.float64)
    cam_to_ego = np.array(cam["cam2ego"], dtype=np.float64)
    K = np.array(cam["cam2img"], dtype=np.float64)
    # Same ego pose at both times (no motion). (The file's lidar2cam already holds the camera's own ego pose,
    # which the file does not give, so it is not the static composition.)
    static = lidar_to_camera(lidar_to_ego, ego_at_lidar, ego_at_lidar, cam_to_ego)
    # The ego moved between the sweep and the exposure.
    motion = np.eye(4)
    yaw = 0.01
    motion[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    motion[0, 3] = 0.4
    ego_at_cam = ego_at_lidar @ motion
    lidar_to_cam = lidar_to_camera(lidar_to_ego, ego_at_lidar, ego_at_cam, cam_to_ego)
    origins, _ = camera_rays(
        torch.from_numpy(K), torch.from_numpy(lidar_to_cam), torch.zeros(1, 2, dtype=torch.float64)
    )
    centre_world = ego_at_cam @ cam_to_ego @ np.array([0.0, 0.0, 0.0, 1.0])
    expected = np.linalg.inv(lidar_to_ego) @ np.linalg.inv(ego_at_lidar) @ centre_world
    np.testing.assert_allclose(origins[0].numpy(), expected[:3], atol=1e-6)
    static_origin, _ = camera_rays(
        torch.from_numpy(K), torch.from_numpy(static), torch.zeros(1, 2, dtype=torch.float64)
    )
    assert 0.39 < float(torch.linalg.vector_norm(origins[0] - static_origin[0])) < 0.45
    lidar_file = next(folder.glob("*LIDAR_TOP*.pcd.bin"))
    points = np.fromfile(lidar_file, dtype=np.float32).reshape(-1, 5)[:, :3].astype(np.float64)
    lidar_to_img = np.eye(4)
    lidar_to_img[:3, :3] = K
    _check_rays_hit_points(points, lidar_to_img @ lidar_to_cam, K, lidar_to_cam, (1600, 900))


def test_camera_frame_rays_match_pixel_rays(tmp_path):
    from nerfseg.data.sample import CameraFrame

    K = np.array([[500.0, 0, 320], [0, 400.0, 240], [0, 0, 1]])
    lidar_to_cam = np.eye(4)
    lidar_to_cam[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]
    lidar_to_cam[:3, 3] = [0.1, -0.2, 0.3]
    camera = CameraFrame("cam", tmp_path / "x.png", K, lidar_to_cam, 0.0, (640, 480))
    cols, rows = torch.tensor([0, 5, 639]), torch.tensor([0, 7, 479])
    origins, dirs = camera_frame_rays(camera, cols, rows)
    ref_o, ref_d = pixel_rays(torch.from_numpy(K), torch.from_numpy(lidar_to_cam), cols, rows)
    assert origins.dtype == torch.float32 and dirs.dtype == torch.float32
    np.testing.assert_allclose(origins.numpy(), ref_o.numpy(), atol=1e-6)
    np.testing.assert_allclose(dirs.numpy(), ref_d.numpy(), atol=1e-6)


def test_pixel_grid_hand_computed():
    # stride 2 on 5 x 4: centre pixels of the blocks [0, 2), [2, 4) (the partial block [4, 5) has its centre
    # pixel 5 outside); rows likewise.
    assert pixel_grid(5, 4, 2).tolist() == [[1, 1], [3, 1], [1, 3], [3, 3]]
    assert PixelGrid(5, 4, 2).shape == (2, 2)
    # stride 3 on 5 x 3: columns 1, 4 (4 is the centre of the partial block [3, 6)), row 1.
    assert pixel_grid(5, 3, 3).tolist() == [[1, 1], [4, 1]]
    assert torch.equal(pixel_grid(3, 2, 1), torch.tensor([[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]]))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 50), st.integers(1, 50), st.integers(1, 9))
def test_pixel_grid_is_the_centre_of_each_block(width, height, stride):
    grid = PixelGrid(width, height, stride)
    if min(width, height) <= stride // 2:  # not even one block centre inside: the grid is empty
        assert len(grid) == 0 and grid.pixels.shape == (0, 2)
        return
    pixels = grid.pixels
    h, w = grid.shape
    assert pixels.shape == (len(grid), 2) == (h * w, 2)
    image_i = grid.to_image(pixels)
    # Reduced pixel (i, j) lies in block (i, j); its centre is within half a pixel of the block's centre.
    assert torch.equal(image_i[..., 0] // stride, torch.arange(w).expand(h, w))
    assert torch.equal(image_i[..., 1] // stride, torch.arange(h)[:, None].expand(h, w))
    assert ((pixels.double() + 0.5) - (pixels // stride * stride + stride / 2)).abs().max() <= 0.5
    assert int(pixels[:, 0].max()) < width and int(pixels[:, 1].max()) < height
    # No block whose centre pixel fits in the image is left out.
    assert (w * stride + stride // 2 >= width) and (h * stride + stride // 2 >= height)


def test_read_at_pixels_numpy_and_torch():
    image = np.arange(12).reshape(3, 4)  # value = 4 * row + col
    pixels = torch.tensor([[0, 0], [3, 0], [1, 2]])  # (col, row)
    assert read_at_pixels(image, pixels).tolist() == [0, 3, 9]
    assert read_at_pixels(torch.from_numpy(image), pixels).tolist() == [0, 3, 9]
    rgb = np.stack([image, 10 * image], axis=-1)
    assert read_at_pixels(rgb, pixels.numpy()).tolist() == [[0, 0], [3, 30], [9, 90]]
    assert read_at_pixels(image, pixel_grid(4, 3, 2)).tolist() == [5, 7]  # (1, 1), (3, 1)
    import pytest

    with pytest.raises(ValueError, match="outside"):
        read_at_pixels(image, torch.tensor([[4, 0]]))


def test_z_depth_to_ray_distance_hand_computed_and_against_pixel_rays():
    K = torch.tensor([[100.0, 0, 49.5], [0, 100.0, 49.5], [0, 0, 1]], dtype=torch.float64)
    pixels = torch.tensor([[49, 49], [124, 49], [49, 124], [124, 149]])
    z = torch.tensor([2.0, 2.0, 4.0, 1.0])
    # centres (49.5, 49.5): on the axis; (124.5, 49.5): x = 0.75 -> |d| = 1.25; (124.5, 149.5): (0.75, 1.0).
    expected = [2.0, 2.5, 5.0, float(np.sqrt(1 + 0.75**2 + 1.0))]
    np.testing.assert_allclose(z_depth_to_ray_distance(z, K, pixels).numpy(), expected, rtol=1e-6)
    # Against pixel_rays: the point at ray distance t has camera z = t * d_z.
    lidar_to_cam = torch.eye(4, dtype=torch.float64)
    lidar_to_cam[:3, :3] = torch.tensor([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=torch.float64)
    lidar_to_cam[:3, 3] = torch.tensor([0.1, -0.2, 0.3])
    _, dirs = pixel_rays(K, lidar_to_cam, pixels[:, 0], pixels[:, 1])
    dirs_cam = dirs @ lidar_to_cam[:3, :3].T
    t = z_depth_to_ray_distance(z.double(), dirs_cam=dirs_cam)
    np.testing.assert_allclose((t * dirs_cam[:, 2]).numpy(), z.numpy(), rtol=1e-12)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6)


def _bundle(n: int, scan: int = 0) -> RayBundle:
    g = torch.Generator().manual_seed(n + scan)
    dirs = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1)
    pixels = torch.stack([torch.arange(n), 2 * torch.arange(n)], dim=1)
    origins = torch.randn(n, 3, generator=g)
    return RayBundle(origins, dirs, pixels, torch.full((n,), 1), torch.full((n,), scan))


def test_ray_bundle_index_cat_to_len():
    a, b = _bundle(5), _bundle(3, scan=1)
    both = RayBundle.cat([a, b])
    assert len(both) == 8 and both.scan.tolist() == [0] * 5 + [1] * 3
    idx = torch.tensor([6, 0, 6])
    picked = both[idx]
    assert len(picked) == 3 and picked.pixels.tolist() == [[1, 2], [0, 0], [1, 2]]
    assert torch.equal(picked.origins, torch.stack([b.origins[1], a.origins[0], b.origins[1]]))
    assert torch.equal(picked.directions[1], a.directions[0]) and picked.scan.tolist() == [1, 0, 1]
    assert len(both[both.scan == 1]) == 3 and len(both[:2]) == 2
    assert both.to("cpu").device.type == "cpu"
    import pytest

    with pytest.raises(ValueError, match="RayBundle"):
        RayBundle(a.origins, a.directions, a.pixels[:4], a.camera, a.scan)


def test_camera_ray_bundle_and_lidar_ray_bundle(tmp_path):
    from nerfseg.data.sample import CameraFrame

    K = np.array([[500.0, 0, 320], [0, 400.0, 240], [0, 0, 1]])
    lidar_to_cam = np.eye(4)
    lidar_to_cam[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]
    lidar_to_cam[:3, 3] = [0.1, -0.2, 0.3]
    camera = CameraFrame("cam", tmp_path / "x.png", K, lidar_to_cam, 0.0, (640, 480))
    pixels = pixel_grid(640, 480, 64)
    bundle = camera_ray_bundle(camera, pixels, scan=3, camera_index=2, device="cpu")
    origins, dirs = camera_frame_rays(camera, pixels[:, 0], pixels[:, 1])
    assert torch.equal(bundle.origins, origins) and torch.equal(bundle.directions, dirs)
    assert torch.equal(bundle.pixels, pixels) and (bundle.camera == 2).all() and (bundle.scan == 3).all()
    points = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])
    lidar, ranges = lidar_ray_bundle(points, torch.tensor([0, 1]))
    assert ranges.tolist() == [5.0, 2.0] and (lidar.origins == 0).all() and (lidar.camera == -1).all()
    assert torch.allclose(lidar.directions * ranges[:, None], points) and lidar.scan.tolist() == [0, 1]
