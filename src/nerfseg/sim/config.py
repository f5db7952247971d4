"""Typed configuration of the simulator (YAML-loadable): scene, LiDAR, cameras, ego motion, parallax."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from nerfseg.errors import ConfigError
from nerfseg.typed_config import dataclass_from_dict


@dataclass
class LidarConfig:
    """A rotating multi-beam LiDAR.

    beams: number of lasers, spread linearly from ``fov_up_deg`` down to ``fov_down_deg`` (degrees).
    azimuth_steps: firings per revolution (per beam). sweep_period_s: time of one revolution (seconds);
    firings are spread over [t_ref - period/2, t_ref + period/2], azimuth pointing forward (+x) at t_ref.
    range_noise_m: std of Gaussian range noise (metres). dropout: probability that a return is lost.
    max_range_m / min_range_m: returns outside are dropped. remission_noise: std of remission noise.
    deskew: True expresses every return exactly in the LiDAR frame at t_ref (ego motion removed);
    False reports each return in the sensor frame at its own firing time (raw, motion-distorted scan).
    """

    beams: int = 64
    azimuth_steps: int = 512
    fov_up_deg: float = 2.0
    fov_down_deg: float = -24.8
    sweep_period_s: float = 0.1
    range_noise_m: float = 0.02
    dropout: float = 0.05
    max_range_m: float = 80.0
    min_range_m: float = 1.5
    remission_noise: float = 0.03
    deskew: bool = True
    dynamic_time_slices: int = 16


@dataclass
class CameraConfig:
    """The KITTI-like front camera (image_2). Intrinsics in pixels of a ``width`` x ``height`` image;
    ``image_scale`` scales size and intrinsics together (e.g. 0.25 for tiny test data).
    mount_*: camera centre (cam2) relative to the LiDAR origin in the LiDAR frame (x forward, y left, z up),
    metres. time_offset_s: camera capture time minus LiDAR sweep reference time (seconds)."""

    width: int = 1242
    height: int = 375
    fx: float = 721.5377
    fy: float = 721.5377
    cx: float = 609.5593
    cy: float = 172.854
    image_scale: float = 1.0
    mount_forward_m: float = 0.27
    mount_left_m: float = 0.06
    mount_up_m: float = -0.08
    time_offset_s: float = 0.05


@dataclass
class SceneConfig:
    """Procedural street. Densities are per 100 m of road (both sides together)."""

    lane_width_m: float = 3.5
    sidewalk_width_m: float = 2.5
    kerb_height_m: float = 0.15
    parked_cars: float = 10.0
    moving_cars: float = 8.0
    trucks: float = 2.0
    pedestrians: float = 10.0
    cyclists: float = 3.0
    bicycles: float = 3.0
    trees: float = 14.0
    poles: float = 8.0
    signs: float = 4.0
    bushes: float = 12.0
    margin_m: float = 90.0


@dataclass
class NuScenesConfig:
    """The nuScenes-like rig: 32-beam LiDAR at 20 Hz, keyframes every ``keyframe_interval_s``, 6 cameras
    (1600x900 scaled by ``image_scale``)."""

    beams: int = 32
    azimuth_steps: int = 1084
    fov_up_deg: float = 10.0
    fov_down_deg: float = -30.0
    sweep_period_s: float = 0.05
    keyframe_interval_s: float = 0.5
    image_scale: float = 0.5
    version: str = "v1.0-mini"


@dataclass
class SimConfig:
    """Everything the simulator needs. ``ego_speed_mps``: constant ego speed (metres per second);
    ``frame_interval_s``: time between SemanticKITTI scans; ``no_parallax``: put the camera at the LiDAR
    origin and capture at the sweep time (zero mount offset and time offset)."""

    seed: int = 0
    frames: int = 40
    ego_speed_mps: float = 8.0
    frame_interval_s: float = 0.1
    no_parallax: bool = False
    scribble_fraction: float = 0.08
    jpeg_quality: int = 90
    lidar: LidarConfig = field(default_factory=LidarConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    nuscenes: NuScenesConfig = field(default_factory=NuScenesConfig)


class Raw(str):
    """A value already written out for a message (shown as is, not repr'd)."""


def validate_sim_config(config: SimConfig, where: str = "config") -> SimConfig:
    """Raise ConfigError naming ``where``, the first out-of-range key, its rule and its value (e.g.
    ``--set: lidar.beams must be >= 1, got 0``); return ``config`` unchanged otherwise."""
    lidar, camera, nus = config.lidar, config.camera, config.nuscenes
    checks = [
        ("frames", config.frames >= 1, ">= 1", config.frames),
        ("ego_speed_mps", config.ego_speed_mps >= 0, ">= 0", config.ego_speed_mps),
        ("frame_interval_s", config.frame_interval_s > 0, "> 0", config.frame_interval_s),
        ("scribble_fraction", 0 <= config.scribble_fraction <= 1, "in [0, 1]", config.scribble_fraction),
        ("jpeg_quality", 1 <= config.jpeg_quality <= 100, "in [1, 100]", config.jpeg_quality),
        ("lidar.beams", lidar.beams >= 1, ">= 1", lidar.beams),
        ("lidar.azimuth_steps", lidar.azimuth_steps >= 1, ">= 1", lidar.azimuth_steps),
        ("lidar.fov_up_deg", -90 <= lidar.fov_down_deg <= lidar.fov_up_deg <= 90,
         ">= lidar.fov_down_deg, both in [-90, 90]", Raw(f"{lidar.fov_up_deg} and {lidar.fov_down_deg}")),
        ("lidar.dropout", 0 <= lidar.dropout < 1, "in [0, 1)", lidar.dropout),
        ("lidar.range_noise_m", lidar.range_noise_m >= 0, ">= 0", lidar.range_noise_m),
        ("lidar.max_range_m", 0 <= lidar.min_range_m < lidar.max_range_m,
         "> lidar.min_range_m >= 0", Raw(f"{lidar.max_range_m} and {lidar.min_range_m}")),
        ("lidar.sweep_period_s", lidar.sweep_period_s >= 0, ">= 0", lidar.sweep_period_s),
        ("lidar.dynamic_time_slices", lidar.dynamic_time_slices >= 1, ">= 1", lidar.dynamic_time_slices),
        ("camera.image_scale", camera.image_scale > 0, "> 0", camera.image_scale),
        ("camera.width", camera.width >= 1, ">= 1", camera.width),
        ("camera.height", camera.height >= 1, ">= 1", camera.height),
        ("nuscenes.beams", nus.beams >= 1, ">= 1", nus.beams),
        ("nuscenes.azimuth_steps", nus.azimuth_steps >= 1, ">= 1", nus.azimuth_steps),
        ("nuscenes.image_scale", nus.image_scale > 0, "> 0", nus.image_scale),
        ("nuscenes.keyframe_interval_s", nus.keyframe_interval_s > 0, "> 0", nus.keyframe_interval_s),
        ("nuscenes.version", nus.version in ("v1.0-mini", "v1.0-trainval"), "v1.0-mini or v1.0-trainval",
         nus.version),
    ]  # fmt: skip
    for name, ok, rule, value in checks:
        if not ok:
            shown = value if isinstance(value, Raw) else repr(value)
            raise ConfigError(f"{where}: {name} must be {rule}, got {shown}")
    return config


def sim_config_from_dict(data: dict, where: str = "config") -> SimConfig:
    """Build a SimConfig from a (possibly partial) nested mapping; unknown keys or out-of-range values
    raise ConfigError."""
    return validate_sim_config(dataclass_from_dict(SimConfig, data or {}, where), where)


def load_sim_config(path: str | Path) -> SimConfig:
    """Read a YAML file (``yaml.safe_load``) into a SimConfig; errors name the file."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read simulator config: {err}") from err
    return sim_config_from_dict(data or {}, str(path))


def sim_config_to_dict(config: SimConfig) -> dict:
    """Plain nested dict of ``config`` (for writing next to the data)."""
    return dataclasses.asdict(config)
