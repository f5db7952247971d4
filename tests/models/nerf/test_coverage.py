"""Camera-ray coverage: hand-computed shares and medians, the geometric bound on hand-placed voxels, and on a
simulated scan the densified render volume reaching more true surface points than the raw stride-1 voxels."""

from __future__ import annotations

import math

import pytest
import torch

from nerfseg.models.nerf.coverage import (
    camera_coverage,
    in_lidar_fov,
    lidar_inclination_range,
    reachable,
    reachable_share,
)
from nerfseg.models.nerf.field import VoxelGrid
from nerfseg.models.nerf.volume import render_volume


def test_camera_coverage_hand_computed():
    # pixels:        0     1     2     3     4     5      6 (sky)
    gt = torch.tensor([5.0, 10.0, 15.0, 30.0, 35.0, 50.0, 0.0])
    depth = torch.tensor([5.1, 10.5, 0.0, 30.2, 36.0, 50.0, 0.0])
    opacity = torch.tensor([0.9, 0.6, 0.1, 0.5, 0.49, 0.8, 0.3])
    in_fov = torch.tensor([True, True, True, True, True, False, False])
    cov = camera_coverage(opacity, depth, gt, in_fov)
    first, second, third = cov["bands"]
    assert first["all"]["pixels"] == 3 and first["all"]["opaque_share"] == pytest.approx(2 / 3)
    assert first["all"]["median_abs_depth_error"] == pytest.approx(0.1)  # torch median of (0.1, 0.5): lower
    assert first["all"]["mean_opacity"] == pytest.approx((0.9 + 0.6 + 0.1) / 3)
    assert second["all"]["pixels"] == 2 and second["all"]["opaque_share"] == pytest.approx(0.5)  # 0.5 counts
    assert second["all"]["median_abs_depth_error"] == pytest.approx(0.2, abs=1e-6)
    assert third["all"]["pixels"] == 1 and third["in_fov"]["pixels"] == 0
    assert math.isnan(third["in_fov"]["opaque_share"])
    near = cov["in_fov_near"]
    assert near["pixels"] == 5 and near["opaque_share"] == pytest.approx(3 / 5)
    assert cov["out_of_fov"]["pixels"] == 1 and cov["out_of_fov"]["mean_opacity"] == pytest.approx(0.8)
    assert cov["no_surface"]["pixels"] == 1 and cov["no_surface"]["mean_opacity"] == pytest.approx(0.3)


def test_camera_coverage_nan_truth_is_no_surface_and_shapes_are_checked():
    cov = camera_coverage(
        torch.ones(2), torch.ones(2), torch.tensor([float("nan"), 1.0]), torch.ones(2, dtype=bool)
    )
    assert cov["no_surface"]["pixels"] == 1 and cov["in_fov_near"]["pixels"] == 1
    with pytest.raises(ValueError, match="one shape"):
        camera_coverage(torch.ones(2), torch.ones(3), torch.ones(2), torch.ones(2, dtype=bool))


def test_inclination_and_fov():
    points = torch.tensor([[10.0, 0.0, -1.0], [0.0, 10.0, 1.0], [3.0, 4.0, 0.0]])
    lo, hi = lidar_inclination_range(points)
    assert lo == pytest.approx(math.atan2(-1.0, 10.0)) and hi == pytest.approx(math.atan2(1.0, 10.0))
    query = torch.tensor([[20.0, 0.0, 1.9], [20.0, 0.0, 2.1], [-20.0, 0.0, -2.0], [0.0, 5.0, -0.6]])
    assert in_lidar_fov(query, (lo, hi)).tolist() == [True, False, True, False]


def test_reachable_on_one_voxel():
    # One voxel (i, j, k) = (10, 0, 0) at 0.2 m: centre (2.1, 0.1, 0.1). A point reaches it when the voxel is
    # one of the 8 centres around it, i.e. every coordinate lies within one voxel of that centre.
    grid = VoxelGrid(torch.tensor([[0, 10, 0, 0]]), torch.ones(1, 1), 0.2)
    points = torch.tensor(
        [[2.1, 0.1, 0.1], [2.29, -0.09, 0.29], [2.31, 0.1, 0.1], [1.89, 0.1, 0.1], [2.1, 0.1, -0.11]]
    )
    assert reachable(grid, points).tolist() == [True, True, False, False, False]
    other_scan = reachable(grid, points[:1], torch.tensor([1]))
    assert other_scan.tolist() == [False]
    share = reachable_share(
        grid, points, torch.tensor([5.0, 5.0, 5.0, 25.0, 0.0]), torch.tensor([True, True, False, True, True])
    )
    assert share["bands"][0]["all"] == pytest.approx(2 / 3)  # pixels 0-2 in 0-20 m; pixel 4 has no surface
    assert share["bands"][0]["in_fov"] == pytest.approx(1.0)
    assert share["in_fov_near"] == pytest.approx(2 / 3)  # pixels 0, 1, 3
    assert share["out_of_fov"] == pytest.approx(0.0)
    assert math.isnan(share["bands"][2]["all"])


@pytest.fixture(scope="module")
def simulated_frame(tmp_path_factory):
    """One simulated SemanticKITTI val frame (16 beams x 256 firings, quarter-size camera)."""
    import dataclasses

    from nerfseg.data.datasets import open_dataset
    from nerfseg.sim.config import CameraConfig, LidarConfig, SimConfig
    from nerfseg.sim.simulate import OutputFormat, simulate

    root = tmp_path_factory.mktemp("sim_coverage")
    config = dataclasses.replace(
        SimConfig(frames=1),
        lidar=LidarConfig(beams=16, azimuth_steps=256, dynamic_time_slices=8),
        camera=CameraConfig(image_scale=0.25),
    )
    simulate(root, config, OutputFormat.SEMANTICKITTI, ["08"], show_progress=False)
    return open_dataset("semantickitti", root, split="val")[0]


def test_densified_volume_reaches_more_surface_than_raw_voxels(simulated_frame):
    from nerfseg.data.ground_truth import read_uint16_png
    from nerfseg.geometry.rays import PixelGrid, camera_ray_bundle, read_at_pixels, z_depth_to_ray_distance
    from nerfseg.sparse import voxelize

    sample = simulated_frame
    camera = sample.cameras[0]
    pixels = PixelGrid(*camera.image_size, stride=2).pixel_indices()
    bundle = camera_ray_bundle(camera, pixels, scan=0, camera_index=0)
    z = torch.as_tensor(read_at_pixels(read_uint16_png(camera.depth_path), pixels.numpy())).double() / 1000
    gt = z_depth_to_ray_distance(z, torch.as_tensor(camera.K), pixels)
    surface = bundle.origins.double() + gt.unsqueeze(1) * bundle.directions.double()
    fov = in_lidar_fov(surface, lidar_inclination_range(torch.as_tensor(sample.points))) & (gt > 0)
    assert int((fov & (gt <= 40)).sum()) > 100  # the check below means something
    xyz = torch.as_tensor(sample.points[:, :3])
    vox = voxelize(xyz, torch.zeros(xyz.shape[0], dtype=torch.int64), xyz, 0.15)
    shares = {}
    for stride, dilation in [(1, 0), (2, 1)]:
        coords, feats, cell = render_volume(
            vox.tensor.coords, torch.zeros(vox.tensor.num_voxels, 1), 0.15, stride, dilation
        )
        shares[stride, dilation] = reachable_share(VoxelGrid(coords, feats, cell), surface, gt, fov)[
            "in_fov_near"
        ]
    assert shares[2, 1] > shares[1, 0] + 0.2, shares
    assert shares[2, 1] > 0.6, shares  # 16 beams: the real-sized simulator scan reaches more (benchmark)
