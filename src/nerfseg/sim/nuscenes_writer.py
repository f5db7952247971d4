"""The nuScenes-like rig (32-beam LIDAR_TOP and a ring of 6 cameras) and the native nuScenes-layout writer.

Written under ``OUT``: ``<version>/*.json`` (scene, sample, sample_data, calibrated_sensor, ego_pose, sensor,
category, lidarseg, log, map, attribute, visibility, instance, sample_annotation; the last four empty),
``samples/LIDAR_TOP/*.pcd.bin`` (float32 x, y, z, intensity 0-255, ring), ``samples/CAM_*/*.jpg`` and
``lidarseg/<version>/<lidar sample_data token>_lidarseg.bin`` (uint8 nuScenes raw class index per point).
Our extension (like ``semantic_2/`` / ``depth_2/`` of the KITTI layout; real nuScenes has neither), per
camera image ``samples/CAM_X/<stem>.jpg``: ``samples_semantic/CAM_X/<stem>.png`` (16-bit PNG of the
nuScenes-lidarseg raw class index per pixel, the ids of the lidarseg files; 0 = nothing hit / ignore) and
``samples_depth/CAM_X/<stem>.png`` (16-bit PNG of the depth along the camera z axis in millimetres, 0 = no
hit, clipped at 65.535 m); the nuScenes reader fills ``CameraFrame.semantic_path`` / ``depth_path`` from them.
Only key frames are written (one every ``nuscenes.keyframe_interval_s``). Timestamps are microseconds.

Timing: each camera captures when the LiDAR sweep passes the centre of its view (as nuScenes triggers
them), i.e. up to half a sweep period (25 ms) before or after the LiDAR reference time; ``no_parallax``
sets every camera at the LiDAR origin and time."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nerfseg.data.nuscenes_files import ground_truth_filename
from nerfseg.errors import ConfigError
from nerfseg.geometry.rays import image_pixel_rays
from nerfseg.geometry.transforms import make_transform
from nerfseg.io_utils import atomic_write_bytes, atomic_write_text, png_bytes
from nerfseg.sim.camera import render
from nerfseg.sim.classes import NUSCENES_CATEGORIES, NUSCENES_INDEX_LUT
from nerfseg.sim.config import LidarConfig, SimConfig
from nerfseg.sim.images import depth_to_mm, jpeg_bytes
from nerfseg.sim.lidar import simulate_scan
from nerfseg.sim.raycast import RayCaster
from nerfseg.sim.rig import EgoMotion, camera_rotation, yaw_rotation
from nerfseg.sim.scene import generate_scene

LIDAR_TRANSLATION = (0.943713, 0.0, 1.84023)
LIDAR_YAW = -np.pi / 2  # LIDAR_TOP: x to the right of the car, y forward
MAP_OFFSET = np.array([411.3, 1180.9, 0.0])  # world (map) coordinates of the street origin, metres
START_US = 1531883530440378


@dataclass(frozen=True)
class CameraMount:
    """One ring camera: name, position in the ego frame (metres), yaw (radians, 0 = forward, + = left),
    intrinsics of the full 1600x900 image (fx, cx, cy)."""

    name: str
    translation: tuple[float, float, float]
    yaw: float
    fx: float
    cx: float
    cy: float


RING = (
    CameraMount("CAM_FRONT", (1.70, 0.016, 1.51), 0.0, 1266.4, 816.3, 491.5),
    CameraMount("CAM_FRONT_RIGHT", (1.55, -0.49, 1.50), np.deg2rad(-55.0), 1260.8, 807.9, 495.3),
    CameraMount("CAM_FRONT_LEFT", (1.52, 0.49, 1.51), np.deg2rad(55.0), 1272.6, 826.6, 479.8),
    CameraMount("CAM_BACK", (0.03, 0.0, 1.58), np.pi, 809.2, 829.2, 481.8),
    CameraMount("CAM_BACK_LEFT", (1.04, 0.48, 1.56), np.deg2rad(110.0), 1256.7, 817.8, 451.9),
    CameraMount("CAM_BACK_RIGHT", (1.05, -0.48, 1.56), np.deg2rad(-110.0), 1259.5, 807.3, 501.2),
)
FULL_SIZE = (1600, 900)


def token(*parts: object) -> str:
    """Deterministic 32-hex-digit token of ``parts``."""
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


def quaternion(rotation: np.ndarray) -> list[float]:
    """(3, 3) rotation -> [w, x, y, z] list."""
    from nerfseg.geometry.transforms import matrix_to_quaternion

    return [float(v) for v in matrix_to_quaternion(rotation)]


def nuscenes_scene_names(version: str, count: int) -> list[str]:
    """``count`` official scene names of ``version``: count-1 from the train list and 1 from the val list
    (so both splits are present), e.g. ("scene-0061", "scene-0103") for v1.0-mini."""
    from nerfseg.data.nuscenes_splits import SCENE_SPLITS

    train, val = {"v1.0-mini": ("mini_train", "mini_val"), "v1.0-trainval": ("train", "val")}[version]
    if not 1 <= count <= len(SCENE_SPLITS[train]) + 1:
        raise ConfigError(
            f"{version} has room for 1 to {len(SCENE_SPLITS[train]) + 1} simulated scenes, got {count}"
        )
    if count == 1:
        return [SCENE_SPLITS[train][0]]
    return list(SCENE_SPLITS[train][: count - 1]) + [SCENE_SPLITS[val][0]]


def _lidar_config(config: SimConfig) -> LidarConfig:
    n = config.nuscenes
    return replace(
        config.lidar,
        beams=n.beams,
        azimuth_steps=n.azimuth_steps,
        fov_up_deg=n.fov_up_deg,
        fov_down_deg=n.fov_down_deg,
        sweep_period_s=n.sweep_period_s,
    )


class NuScenesWriter:
    """Accumulates the tables while scenes are simulated; ``finish`` writes the JSON files."""

    def __init__(self, out: Path, config: SimConfig):
        self.out = Path(out)
        self.config = config
        self.version = config.nuscenes.version
        self.tables: dict[str, list[dict]] = {
            name: []
            for name in (
                "scene",
                "sample",
                "sample_data",
                "calibrated_sensor",
                "ego_pose",
                "sensor",
                "category",
                "lidarseg",
                "log",
                "map",
                "attribute",
                "visibility",
                "instance",
                "sample_annotation",
            )
        }
        self._ego_tokens: set[str] = set()
        self.tables["category"] = [
            {"token": token("category", name), "name": name, "description": name, "index": i}
            for i, name in enumerate(NUSCENES_CATEGORIES)
        ]
        channels = ["LIDAR_TOP"] + [m.name for m in RING]
        self.tables["sensor"] = [
            {"token": token("sensor", c), "channel": c, "modality": "lidar" if c == "LIDAR_TOP" else "camera"}
            for c in channels
        ]

    def _calibrated_sensor(self, scene: str, channel: str, ego_T_sensor: np.ndarray, K) -> str:
        tok = token("calibrated_sensor", scene, channel)
        self.tables["calibrated_sensor"].append(
            {
                "token": tok,
                "sensor_token": token("sensor", channel),
                "translation": [float(v) for v in ego_T_sensor[:3, 3]],
                "rotation": quaternion(ego_T_sensor[:3, :3]),
                "camera_intrinsic": [] if K is None else [[float(v) for v in row] for row in K],
            }
        )
        return tok

    def _ego_pose(self, world_T_ego: np.ndarray, timestamp: int) -> str:
        tok = token("ego_pose", timestamp, *np.round(world_T_ego[:3, 3], 6))
        if tok in self._ego_tokens:  # sensors sharing a capture time share the ego pose record
            return tok
        self._ego_tokens.add(tok)
        self.tables["ego_pose"].append(
            {
                "token": tok,
                "timestamp": timestamp,
                "translation": [float(v) for v in world_T_ego[:3, 3] + MAP_OFFSET],
                "rotation": quaternion(world_T_ego[:3, :3]),
            }
        )
        return tok

    def write_scene(self, scene_index: int, name: str, progress=None) -> None:
        """Simulate and write one scene of ``config.frames`` key frames."""
        cfg = self.config
        n = cfg.nuscenes
        lidar_cfg = _lidar_config(cfg)
        scale = n.image_scale
        width, height = max(1, round(FULL_SIZE[0] * scale)), max(1, round(FULL_SIZE[1] * scale))
        times = np.arange(cfg.frames) * n.keyframe_interval_s
        travel = cfg.ego_speed_mps * (times[-1] + n.keyframe_interval_s if len(times) else 0.0)
        street = generate_scene(
            cfg.scene,
            np.random.default_rng([cfg.seed, 1000 + scene_index, 0]),
            0.0,
            travel,
            cfg.ego_speed_mps,
        )
        caster = RayCaster(street.static)
        ego = EgoMotion(0.0, street.ego_y, cfg.ego_speed_mps)
        ego_T_lidar = make_transform(yaw_rotation(LIDAR_YAW), LIDAR_TRANSLATION)

        def world_T_lidar(t):
            return ego.world_T_ego(t) @ ego_T_lidar

        cams = []
        for mount in RING:
            position = LIDAR_TRANSLATION if cfg.no_parallax else mount.translation
            ego_T_cam = make_transform(camera_rotation(mount.yaw), position)
            K = np.array(
                [[mount.fx * scale, 0, mount.cx * scale], [0, mount.fx * scale, mount.cy * scale], [0, 0, 1]]
            )
            # The sweep passes the camera's yaw at this fraction of the period from the reference time.
            lidar_azimuth = (mount.yaw - LIDAR_YAW + np.pi) % (2 * np.pi) - np.pi
            delay = 0.0 if cfg.no_parallax else n.sweep_period_s * lidar_azimuth / (2 * np.pi)
            calib = self._calibrated_sensor(name, mount.name, ego_T_cam, K)
            cams.append((mount, ego_T_cam, K, delay, calib, image_pixel_rays(K, width, height)))
        lidar_calib = self._calibrated_sensor(name, "LIDAR_TOP", ego_T_lidar, None)
        scene_token = token("scene", name)
        log_token = token("log", name)
        self.tables["log"].append(
            {
                "token": log_token,
                "logfile": f"sim-{name}",
                "vehicle": "nerfseg-sim",
                "date_captured": "2018-07-18",
                "location": "sim-street",
            }
        )
        self.tables["map"].append(
            {
                "token": token("map", name),
                "log_tokens": [log_token],
                "category": "semantic_prior",
                "filename": "",
            }
        )
        base_us = START_US + scene_index * 10**9
        sample_tokens = [token("sample", name, i) for i in range(len(times))]
        prev_sd: dict[str, str] = {}
        for i, t in enumerate(times):
            t_us = base_us + int(round(t * 1e6))
            sample_tok = sample_tokens[i]
            self.tables["sample"].append(
                {
                    "token": sample_tok,
                    "timestamp": t_us,
                    "scene_token": scene_token,
                    "prev": sample_tokens[i - 1] if i > 0 else "",
                    "next": sample_tokens[i + 1] if i + 1 < len(times) else "",
                }
            )
            rng = np.random.default_rng([cfg.seed, 1000 + scene_index, i + 1])
            scan = simulate_scan(street, caster, world_T_lidar, float(t), lidar_cfg, rng)
            pts = np.concatenate([scan.points[:, :3], scan.points[:, 3:4] * 255.0, scan.ring[:, None]], 1)
            lidar_file = f"samples/LIDAR_TOP/{name}__LIDAR_TOP__{t_us}.pcd.bin"
            atomic_write_bytes(self.out / lidar_file, pts.astype(np.float32).tobytes())
            lidar_sd = self._sample_data(
                sample_tok,
                "LIDAR_TOP",
                lidar_calib,
                ego.world_T_ego(float(t)),
                t_us,
                lidar_file,
                "pcd",
                0,
                0,
                prev_sd,
            )
            seg_file = f"lidarseg/{self.version}/{lidar_sd}_lidarseg.bin"
            atomic_write_bytes(
                self.out / seg_file, NUSCENES_INDEX_LUT[scan.semantic].astype(np.uint8).tobytes()
            )
            self.tables["lidarseg"].append(
                {"token": lidar_sd, "sample_data_token": lidar_sd, "filename": seg_file}
            )
            for mount, ego_T_cam, K, delay, calib, dirs in cams:
                t_cam = float(t) + delay
                cam_us = base_us + int(round(t_cam * 1e6))
                world_T_cam = ego.world_T_ego(t_cam) @ ego_T_cam
                view = render(street, caster, world_T_cam, K, width, height, t_cam, dirs)
                cam_file = f"samples/{mount.name}/{name}__{mount.name}__{cam_us}.jpg"
                atomic_write_bytes(self.out / cam_file, jpeg_bytes(view.rgb, cfg.jpeg_quality))
                semantic = NUSCENES_INDEX_LUT[view.semantic].astype(np.uint16)  # sky: 0 (noise, ignored)
                depth_mm = depth_to_mm(view.depth)
                for kind, image in (("semantic", semantic), ("depth", depth_mm)):
                    atomic_write_bytes(self.out / ground_truth_filename(cam_file, kind), png_bytes(image))
                self._sample_data(
                    sample_tok,
                    mount.name,
                    calib,
                    ego.world_T_ego(t_cam),
                    cam_us,
                    cam_file,
                    "jpg",
                    width,
                    height,
                    prev_sd,
                )
            if progress is not None:
                progress(1)
        self.tables["scene"].append(
            {
                "token": scene_token,
                "name": name,
                "description": "nerfseg simulated street",
                "log_token": log_token,
                "nbr_samples": len(times),
                "first_sample_token": sample_tokens[0] if sample_tokens else "",
                "last_sample_token": sample_tokens[-1] if sample_tokens else "",
            }
        )

    def _sample_data(
        self,
        sample_tok,
        channel,
        calib,
        world_T_ego,
        t_us,
        filename,
        fileformat,
        width,
        height,
        prev_sd: dict[str, str],
    ) -> str:
        tok = token("sample_data", sample_tok, channel)
        prev = prev_sd.get(channel, "")
        if prev:
            for record in reversed(self.tables["sample_data"]):
                if record["token"] == prev:
                    record["next"] = tok
                    break
        self.tables["sample_data"].append(
            {
                "token": tok,
                "sample_token": sample_tok,
                "ego_pose_token": self._ego_pose(world_T_ego, t_us),
                "calibrated_sensor_token": calib,
                "timestamp": t_us,
                "fileformat": fileformat,
                "is_key_frame": True,
                "height": height,
                "width": width,
                "filename": filename,
                "prev": prev,
                "next": "",
            }
        )
        prev_sd[channel] = tok
        return tok

    def finish(self) -> Path:
        """Write every table as ``OUT/<version>/<table>.json``; returns the table folder."""
        folder = self.out / self.version
        for name, records in self.tables.items():
            atomic_write_text(folder / f"{name}.json", json.dumps(records, indent=1))
        return folder
