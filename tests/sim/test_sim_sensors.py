"""LiDAR and camera against analytic scenes: a ground plane and a wall, a moving ego."""

from __future__ import annotations

import numpy as np

from nerfseg.geometry.rays import image_pixel_rays as pixel_rays
from nerfseg.geometry.transforms import make_transform as rigid
from nerfseg.sim.camera import render
from nerfseg.sim.config import LidarConfig
from nerfseg.sim.lidar import beam_directions, simulate_scan
from nerfseg.sim.mesh import TriMesh, box, labeled, quad
from nerfseg.sim.raycast import RayCaster
from nerfseg.sim.rig import CAM_FROM_LIDAR_AXES, EgoMotion
from nerfseg.sim.scene import MovingObject, Scene

HEIGHT = 1.73


def flat_world() -> Scene:
    ground = labeled(quad(-500, 500, -500, 500, 0.0), 40, 0, (0.3, 0.3, 0.3))
    wall = labeled(box((0.2, 400, 40), (30.0, 0.0, 0.0)), 50, 0, (0.8, 0.7, 0.6))  # face at x = 29.9
    return Scene(TriMesh.concat([ground, wall]), [], 0.0, -500, 500)


def exact_lidar(**kw) -> LidarConfig:
    return LidarConfig(
        beams=8,
        azimuth_steps=90,
        range_noise_m=0.0,
        dropout=0.0,
        remission_noise=0.0,
        min_range_m=0.1,
        max_range_m=200.0,
        **kw,
    )


def lidar_pose(speed: float):
    ego = EgoMotion(0.0, 0.0, speed)
    return lambda t: ego.world_T_ego(t) @ rigid(None, (0, 0, HEIGHT))


def test_beam_layout():
    cfg = LidarConfig(beams=4, azimuth_steps=8, fov_up_deg=2.0, fov_down_deg=-24.8)
    dirs, a_idx, b_idx = beam_directions(cfg)
    assert dirs.shape == (8, 4, 3) and np.allclose(np.linalg.norm(dirs, axis=-1), 1)
    elevation = np.rad2deg(np.arcsin(dirs[0, :, 2]))
    assert np.allclose(elevation, np.linspace(2.0, -24.8, 4))
    azimuth = np.arctan2(dirs[:, 0, 1], dirs[:, 0, 0])
    assert np.allclose(azimuth, -np.pi + 2 * np.pi * (np.arange(8) + 0.5) / 8)
    assert (b_idx[0] == np.arange(4)).all() and (a_idx[:, 0] == np.arange(8)).all()


def test_static_scan_hits_ground_and_wall_exactly():
    scene = flat_world()
    scan = simulate_scan(
        scene, RayCaster(scene.static), lidar_pose(0.0), 0.0, exact_lidar(), np.random.default_rng(0)
    )
    road = scan.semantic == 40
    assert road.any() and (scan.semantic == 50).any()
    assert np.allclose(scan.points[road, 2], -HEIGHT, atol=2e-3)
    assert np.allclose(scan.points[scan.semantic == 50, 0], 29.9, atol=2e-3)
    assert set(np.unique(scan.semantic)) == {40, 50}
    # Remission: class value scaled by incidence, the wall (0.40) brighter than the road (0.12).
    assert scan.points[scan.semantic == 50, 3].mean() > scan.points[road, 3].mean()


def test_deskew_removes_ego_motion_and_raw_keeps_it():
    scene = flat_world()
    speed = 20.0
    kw = dict(sweep_period_s=0.1)
    fixed = simulate_scan(
        scene,
        RayCaster(scene.static),
        lidar_pose(speed),
        0.0,
        exact_lidar(deskew=True, **kw),
        np.random.default_rng(0),
    )
    wall = fixed.semantic == 50
    assert np.allclose(fixed.points[wall, 0], 29.9, atol=2e-3)  # the wall stays flat in the t_ref frame
    raw = simulate_scan(
        scene,
        RayCaster(scene.static),
        lidar_pose(speed),
        0.0,
        exact_lidar(deskew=False, **kw),
        np.random.default_rng(0),
    )
    wall = raw.semantic == 50
    # Raw: a return fired at time t is seen from x = speed * t, so its x is 29.9 - speed * t.
    assert np.allclose(raw.points[wall, 0], 29.9 - speed * raw.time[wall], atol=2e-3)
    assert np.ptp(raw.time) <= 0.1 and abs(raw.time.mean()) < 0.02


def test_moving_object_is_seen_where_it_is_at_the_firing_time():
    scene = flat_world()
    car = labeled(box((4.0, 2.0, 1.5), (0, 0, 0.75)), 252, 7, (0, 0, 1))
    scene.moving.append(MovingObject(car, np.array([10.0, 0.0, 0.0]), 0.0, np.array([100.0, 0.0, 0.0])))
    cfg = exact_lidar(dynamic_time_slices=90, sweep_period_s=0.1)
    scan = simulate_scan(scene, RayCaster(scene.static), lidar_pose(0.0), 0.0, cfg, np.random.default_rng(0))
    hit = scan.semantic == 252
    assert hit.any() and (scan.instance[hit] == 7).all()
    # Rear face at x = 8 + 100 t (slice time = firing time here); returns facing it lie on that plane.
    rear = hit & (np.abs(scan.points[:, 1]) < 0.9) & (scan.points[:, 2] > -HEIGHT + 0.05)
    assert np.allclose(scan.points[rear, 0], 8.0 + 100.0 * scan.time[rear], atol=5e-3)


def test_camera_depth_and_semantics_of_a_wall():
    scene = flat_world()
    K = np.array([[50.0, 0, 40], [0, 50.0, 30], [0, 0, 1]])
    world_T_cam = rigid(CAM_FROM_LIDAR_AXES.T, (0.0, 0.0, HEIGHT))  # looking along +x
    view = render(scene, RayCaster(scene.static), world_T_cam, K, 80, 60, 0.0)
    assert view.rgb.shape == (60, 80, 3) and view.rgb.dtype == np.uint8
    dirs = pixel_rays(K, 80, 60).reshape(60, 80, 3)
    wall = view.semantic == 50
    ground = view.semantic == 40
    assert wall.any() and ground.any() and not (view.semantic == 0).any()
    assert np.allclose(view.depth[wall], 29.9, atol=1e-3)  # depth along z of a fronto-parallel wall
    # Ground pixels: ray meets z = 0 at t = HEIGHT / down-component; depth = t * z-component.
    expected = HEIGHT / dirs[..., 1] * dirs[..., 2]
    assert np.allclose(view.depth[ground], expected[ground], rtol=1e-3)
    # Rows below the horizon (v > cy) are ground except where the wall is nearer.
    assert (view.semantic[45:] == 40).all()
    # Albedo shows through the shading: the warm wall (0.8, 0.7, 0.6) is redder than the grey road.
    red_minus_blue = view.rgb[..., 0].astype(float) - view.rgb[..., 2]
    assert red_minus_blue[wall].mean() > red_minus_blue[ground].mean() + 10
