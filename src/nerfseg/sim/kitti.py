"""The KITTI-like rig and the SemanticKITTI-layout writer.

Layout written per sequence ``OUT/sequences/SS/``: ``velodyne/FFFFFF.bin`` (float32 x, y, z, remission),
``labels/FFFFFF.label`` (uint32 instance << 16 | raw semantic id), ``scribbles/FFFFFF.label`` (same format,
0 = unlabeled), ``image_2/FFFFFF.png``, ``semantic_2/FFFFFF.png`` (16-bit raw ids), ``depth_2/FFFFFF.png``
(16-bit millimetres along the camera z axis, 0 = no hit, clipped at 65.535 m), ``calib.txt`` (P0..P3, Tr),
``poses.txt`` (cam0 pose at each scan in the cam0 frame of scan 0), ``times.txt`` (LiDAR sweep reference
times, seconds) and ``times_image_2.txt`` (camera capture times, same clock).

Timing model: scan i has reference time ``i * frame_interval_s``; its firings spread over one sweep period
around it (see `nerfseg.sim.lidar`) and returns are de-skewed into the LiDAR frame at the reference time
(config ``lidar.deskew``). The camera captures at reference time + ``camera.time_offset_s`` from its pose at
that time; the ego pose is exact at every instant (constant speed on a straight line), so interpolating
poses.txt at the camera time reproduces it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfseg.geometry.rays import image_pixel_rays
from nerfseg.geometry.transforms import invert_rigid, make_transform
from nerfseg.io_utils import atomic_write_bytes, atomic_write_text, png_bytes
from nerfseg.sim.camera import render
from nerfseg.sim.config import CameraConfig, SimConfig
from nerfseg.sim.images import depth_to_mm
from nerfseg.sim.lidar import Scan, simulate_scan
from nerfseg.sim.raycast import RayCaster
from nerfseg.sim.rig import CAM_FROM_LIDAR_AXES, LIDAR_HEIGHT_M, EgoMotion
from nerfseg.sim.scene import generate_scene
from nerfseg.sim.scribbles import scribble_mask

STEREO_BASELINE_02_M = 0.06
"""cam2 sits this far to the left of cam0 (KITTI's P2 shift is about 0.06 m)."""
STEREO_BASELINE_01_M = 0.54


@dataclass(frozen=True)
class KittiRig:
    """Intrinsics ``K`` (3, 3), image size, ``lidar_T_cam2`` (4, 4) and ``Tr`` = cam0_T_lidar (4, 4)."""

    K: np.ndarray
    width: int
    height: int
    lidar_T_cam2: np.ndarray
    time_offset_s: float

    @property
    def cam0_T_lidar(self) -> np.ndarray:
        cam2_T_lidar = invert_rigid(self.lidar_T_cam2)
        return make_transform(None, (-STEREO_BASELINE_02_M, 0.0, 0.0)) @ cam2_T_lidar

    def projection(self, baseline_m: float) -> np.ndarray:
        """(3, 4) KITTI projection P = K [I | (baseline, 0, 0)] of a camera ``baseline_m`` from cam0
        (positive = to the left, i.e. x_cam = x_cam0 + baseline)."""
        return self.K @ np.concatenate([np.eye(3), [[baseline_m], [0.0], [0.0]]], 1)

    def calib_text(self) -> str:
        """calib.txt in KITTI odometry format (P0..P3 and Tr, 12 numbers each)."""
        mats = {
            "P0": self.projection(0.0),
            "P1": self.projection(-STEREO_BASELINE_01_M),
            "P2": self.projection(STEREO_BASELINE_02_M),
            "P3": self.projection(STEREO_BASELINE_02_M - STEREO_BASELINE_01_M),
            "Tr": self.cam0_T_lidar[:3],
        }
        return "".join(f"{k}: " + " ".join(f"{v:.12e}" for v in m.ravel()) + "\n" for k, m in mats.items())


def kitti_rig(camera: CameraConfig, no_parallax: bool) -> KittiRig:
    """The rig of ``camera``; ``no_parallax`` puts the camera at the LiDAR origin with zero time offset."""
    s = camera.image_scale
    K = np.array([[camera.fx * s, 0.0, camera.cx * s], [0.0, camera.fy * s, camera.cy * s], [0.0, 0.0, 1.0]])
    mount = (
        (0.0, 0.0, 0.0) if no_parallax else (camera.mount_forward_m, camera.mount_left_m, camera.mount_up_m)
    )
    lidar_T_cam2 = make_transform(CAM_FROM_LIDAR_AXES.T, mount)
    offset = 0.0 if no_parallax else camera.time_offset_s
    return KittiRig(
        K, max(1, round(camera.width * s)), max(1, round(camera.height * s)), lidar_T_cam2, offset
    )


def _pose_line(m: np.ndarray) -> str:
    return " ".join(f"{v:.12e}" for v in m[:3].ravel()) + "\n"


def label_words(semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """(N,) uint32 SemanticKITTI label words ``instance << 16 | semantic``."""
    return (instance.astype(np.uint32) << np.uint32(16)) | semantic.astype(np.uint32)


class KittiSequence:
    """Everything needed to simulate one sequence: rig, scene, ray caster, ego motion, timing.
    Deterministic given ``config.seed`` and ``seq``; frames can be written in any order / process."""

    def __init__(self, out: Path, seq: str, config: SimConfig):
        self.folder = Path(out) / "sequences" / seq
        self.seq_num = int(seq)
        self.config = config
        self.rig = kitti_rig(config.camera, config.no_parallax)
        self.times = np.arange(config.frames) * config.frame_interval_s
        travel = config.ego_speed_mps * (self.times[-1] + config.frame_interval_s if len(self.times) else 0.0)
        scene_rng = np.random.default_rng([config.seed, self.seq_num, 0])
        self.scene = generate_scene(config.scene, scene_rng, 0.0, travel, config.ego_speed_mps)
        self.ego = EgoMotion(0.0, self.scene.ego_y, config.ego_speed_mps)
        self.ego_T_lidar = make_transform(None, (0.0, 0.0, LIDAR_HEIGHT_M))
        self.cam_times = self.times + self.rig.time_offset_s
        self._caster: RayCaster | None = None
        self._cam_dirs: np.ndarray | None = None

    def world_T_lidar(self, t):
        """(..., 4, 4) LiDAR pose at time(s) ``t`` seconds."""
        return self.ego.world_T_ego(t) @ self.ego_T_lidar

    def write_frame(self, i: int) -> None:
        """Simulate frame ``i`` and write its scan, labels, scribbles, image and ground-truth images."""
        if self._caster is None:  # built lazily, in the process that renders
            self._caster = RayCaster(self.scene.static)
            self._cam_dirs = image_pixel_rays(self.rig.K, self.rig.width, self.rig.height)
        config, rig, folder, name = self.config, self.rig, self.folder, f"{i:06d}"
        rng = np.random.default_rng([config.seed, self.seq_num, i + 1])
        t, t_cam = float(self.times[i]), float(self.cam_times[i])
        scan: Scan = simulate_scan(self.scene, self._caster, self.world_T_lidar, t, config.lidar, rng)
        world_T_cam = self.world_T_lidar(t_cam) @ rig.lidar_T_cam2
        view = render(
            self.scene, self._caster, world_T_cam, rig.K, rig.width, rig.height, t_cam, self._cam_dirs
        )
        words = label_words(scan.semantic, scan.instance)
        scribbled = scribble_mask(scan.points[:, :3], scan.semantic, config.scribble_fraction, rng)
        atomic_write_bytes(folder / "velodyne" / f"{name}.bin", scan.points.astype(np.float32).tobytes())
        atomic_write_bytes(folder / "labels" / f"{name}.label", words.tobytes())
        atomic_write_bytes(
            folder / "scribbles" / f"{name}.label", np.where(scribbled, words, 0).astype(np.uint32).tobytes()
        )
        atomic_write_bytes(folder / "image_2" / f"{name}.png", png_bytes(view.rgb))
        atomic_write_bytes(folder / "semantic_2" / f"{name}.png", png_bytes(view.semantic.astype(np.uint16)))
        atomic_write_bytes(folder / "depth_2" / f"{name}.png", png_bytes(depth_to_mm(view.depth)))

    def write_metadata(self) -> None:
        """calib.txt, poses.txt (cam0 poses in the cam0 frame of scan 0), times.txt, times_image_2.txt."""
        cam0_T_lidar = self.rig.cam0_T_lidar
        start = self.world_T_lidar(self.times[0] if len(self.times) else 0.0) @ invert_rigid(cam0_T_lidar)
        poses = [invert_rigid(start) @ self.world_T_lidar(t) @ invert_rigid(cam0_T_lidar) for t in self.times]
        atomic_write_text(self.folder / "poses.txt", "".join(_pose_line(p) for p in poses))
        atomic_write_text(self.folder / "times.txt", "".join(f"{t:.6e}\n" for t in self.times))
        atomic_write_text(self.folder / "times_image_2.txt", "".join(f"{t:.6e}\n" for t in self.cam_times))
        atomic_write_text(self.folder / "calib.txt", self.rig.calib_text())


_WORKER_SEQUENCES: dict[tuple, KittiSequence] = {}


def _write_frame_in_worker(out: str, seq: str, config: SimConfig, i: int) -> int:
    key = (out, seq, repr(config))
    if key not in _WORKER_SEQUENCES:
        _WORKER_SEQUENCES.clear()
        _WORKER_SEQUENCES[key] = KittiSequence(Path(out), seq, config)
    _WORKER_SEQUENCES[key].write_frame(i)
    return i


def write_kitti_sequence(out: Path, seq: str, config: SimConfig, progress=None, workers: int = 1) -> Path:
    """Simulate and write sequence ``seq`` (e.g. "00") under ``out/sequences/seq``; returns its folder.
    Deterministic given ``config.seed`` and ``seq`` (whatever ``workers``: frames are independent).
    ``progress``: optional callable(frames_done). ``workers`` > 1 renders frames in that many processes.
    The metadata files are written last, so a sequence with ``calib.txt`` is complete."""
    sequence = KittiSequence(Path(out), seq, config)
    if workers <= 1 or config.frames <= 1:
        for i in range(config.frames):
            sequence.write_frame(i)
            if progress is not None:
                progress(1)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [
                pool.submit(_write_frame_in_worker, str(out), seq, config, i) for i in range(config.frames)
            ]
            for future in as_completed(futures):
                future.result()
                if progress is not None:
                    progress(1)
    sequence.write_metadata()
    return sequence.folder
