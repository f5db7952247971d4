"""Build tiny nuScenes trees in the NATIVE layout (v1.0-*/ JSON tables, samples/, lidarseg/) for tests.

:class:`TreeBuilder` writes arbitrary records; :func:`build_real_tree` turns the real files in
``../shared/data/real`` (mmdetection3d info records in ``*.calib.json``) into a ``v1.0-mini`` tree with
two key frames. The big real files are symlinked into the tree (never copied into the repository).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nerfseg.geometry.transforms import (
    invert_rigid,
    make_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
)

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
KEYFRAME_DIR = "nuscenes_keyframe"
KEYFRAME_JSON = "n015-2018-07-24-11-22-45+0800.calib.json"
LIDARSEG_DIR = "nuscenes_lidarseg_40pt"
LIDARSEG_JSON = "nus_info.calib.json"
VERSION = "v1.0-mini"
SCENE_A = "scene-0061"  # mini_train: the full keyframe (34,688 points, 6 images)
SCENE_B = "scene-0103"  # mini_val: the 40-point sweep with real lidarseg labels


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """The rotation closest to a (3, 3) matrix (float32-rounded json values are not exactly orthonormal)."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        u[:, -1] *= -1
        rotation = u @ vt
    return rotation


def as_record_pose(matrix: np.ndarray) -> tuple[list[float], list[float]]:
    """(4, 4) rigid transform -> nuScenes ``rotation`` [w, x, y, z] and ``translation`` lists."""
    matrix = np.asarray(matrix, dtype=np.float64)
    quat = matrix_to_quaternion(nearest_rotation(matrix[:3, :3]))
    return quat.tolist(), matrix[:3, 3].tolist()


def stored_pose(matrix: np.ndarray) -> np.ndarray:
    """The (4, 4) transform a reader rebuilds from :func:`as_record_pose` of ``matrix`` (exact rotation)."""
    rotation, translation = as_record_pose(matrix)
    return make_transform(quaternion_to_matrix(np.array(rotation)), np.array(translation))


@dataclass
class TreeBuilder:
    """Collects nuScenes table records and writes them as ``ROOT/<version>/<table>.json``."""

    root: Path
    version: str = VERSION
    tables: dict[str, list[dict]] = field(
        default_factory=lambda: {
            name: []
            for name in (
                "scene",
                "sample",
                "sample_data",
                "calibrated_sensor",
                "ego_pose",
                "sensor",
                "lidarseg",
                "category",
                "log",
            )
        }  # fmt: skip
    )
    _count: int = 0
    _sensors: dict[str, str] = field(default_factory=dict)

    def token(self) -> str:
        self._count += 1
        return f"{self._count:032x}"

    def add_scene(self, name: str) -> str:
        token = self.token()
        self.tables["scene"].append({"token": token, "name": name, "log_token": "", "description": ""})
        return token

    def add_sample(self, scene_token: str, timestamp_us: int, token: str | None = None) -> str:
        token = token or self.token()
        self.tables["sample"].append(
            {
                "token": token,
                "scene_token": scene_token,
                "timestamp": int(timestamp_us),
                "prev": "",
                "next": "",
            }
        )
        return token

    def sensor(self, channel: str) -> str:
        if channel not in self._sensors:
            token = self.token()
            modality = "camera" if channel.startswith("CAM") else "lidar"
            self.tables["sensor"].append({"token": token, "channel": channel, "modality": modality})
            self._sensors[channel] = token
        return self._sensors[channel]

    def add_calibration(self, channel: str, sensor_to_ego: np.ndarray, K: np.ndarray | None = None) -> str:
        token = self.token()
        rotation, translation = as_record_pose(sensor_to_ego)
        self.tables["calibrated_sensor"].append(
            {
                "token": token,
                "sensor_token": self.sensor(channel),
                "rotation": rotation,
                "translation": translation,
                "camera_intrinsic": [] if K is None else np.asarray(K, dtype=np.float64).tolist(),
            }
        )
        return token

    def add_ego_pose(self, ego_to_world: np.ndarray, timestamp_us: int) -> str:
        token = self.token()
        rotation, translation = as_record_pose(ego_to_world)
        self.tables["ego_pose"].append(
            {"token": token, "rotation": rotation, "translation": translation, "timestamp": int(timestamp_us)}
        )
        return token

    def add_sample_data(
        self,
        sample_token: str,
        filename: str,
        timestamp_us: int,
        calibrated_sensor_token: str,
        ego_pose_token: str,
        size: tuple[int, int] = (0, 0),
        token: str | None = None,
    ) -> str:
        token = token or self.token()
        self.tables["sample_data"].append(
            {
                "token": token,
                "sample_token": sample_token,
                "ego_pose_token": ego_pose_token,
                "calibrated_sensor_token": calibrated_sensor_token,
                "timestamp": int(timestamp_us),
                "fileformat": Path(filename).suffix.lstrip("."),
                "is_key_frame": True,
                "width": size[0],
                "height": size[1],
                "filename": filename,
                "prev": "",
                "next": "",
            }
        )
        return token

    def add_lidarseg(self, sample_data_token: str) -> str:
        filename = f"lidarseg/{self.version}/{sample_data_token}_lidarseg.bin"
        self.tables["lidarseg"].append(
            {"token": self.token(), "sample_data_token": sample_data_token, "filename": filename}
        )
        return filename

    def link(self, relative: str, source: Path) -> Path:
        """Symlink ``ROOT/relative`` to a real file (kept if it already links there)."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not (path.is_symlink() and path.resolve() == Path(source).resolve()):
            path.symlink_to(source)
        return path

    def write_file(self, relative: str, data: bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def write(self, without: tuple[str, ...] = ()) -> Path:
        """Write every table except those named in ``without``."""
        folder = self.root / self.version
        folder.mkdir(parents=True, exist_ok=True)
        for name, records in self.tables.items():
            if name in without:
                continue
            (folder / f"{name}.json").write_text(json.dumps(records, indent=1))
        return self.root


@dataclass
class RealTree:
    """What :func:`build_real_tree` made: the root and the facts tests compare against."""

    root: Path
    info_a: dict  # mmdet3d info record of the keyframe (scene A)
    info_b: dict  # mmdet3d info record of the 40-point sweep (scene B)
    lidar_token_a: str
    lidar_token_b: str
    lidar_file_a: Path
    lidar_file_b: Path
    label_file_a: Path
    label_file_b: Path
    image_files: dict[str, Path]  # scene A camera -> image file in the tree


def _matrix(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _add_keyframe(
    builder: TreeBuilder,
    info: dict,
    scene_token: str,
    lidar_file: str,
    lidar_source: Path,
    image_sources: dict[str, Path],
    camera_ego: str,
    lidar_token: str,
) -> tuple[str, dict[str, Path]]:
    """Add one mmdet3d info record as a sample with LIDAR_TOP + 6 camera key frames."""
    t_lidar = round(info["timestamp"] * 1e6)
    sample = builder.add_sample(scene_token, t_lidar, token=info["token"])
    lidar_to_ego = _matrix(info["lidar_points"]["lidar2ego"])
    ego_to_world = _matrix(info["ego2global"])
    lidar_ego = builder.add_ego_pose(ego_to_world, t_lidar)
    builder.add_sample_data(
        sample,
        lidar_file,
        t_lidar,
        builder.add_calibration("LIDAR_TOP", lidar_to_ego),
        lidar_ego,
        token=lidar_token,
    )
    builder.link(lidar_file, lidar_source)
    images = {}
    for channel in CAMERAS:
        cam = info["images"][channel]
        t_cam = round(cam["timestamp"] * 1e6)
        cam_to_ego = _matrix(cam["cam2ego"])
        if camera_ego == "lidar":
            ego = lidar_ego
        else:
            # The camera's own ego pose, recovered from mmdet3d's ego-motion compensated lidar2cam:
            # lidar2cam = inv(C) inv(E_cam) E_lidar L  =>  E_cam = E_lidar L inv(lidar2cam) inv(C).
            # Built from the poses exactly as the tables store them, so the chain closes to ~1e-7.
            raw = _matrix(cam["lidar2cam"])
            lidar2cam = make_transform(nearest_rotation(raw[:3, :3]), raw[:3, 3])
            ego_cam = (
                stored_pose(ego_to_world) @ stored_pose(lidar_to_ego) @ invert_rigid(lidar2cam)
                @ invert_rigid(stored_pose(cam_to_ego))
            )  # fmt: skip
            ego = builder.add_ego_pose(ego_cam, t_cam)
        filename = f"samples/{channel}/{Path(image_sources[channel]).name}"
        builder.add_sample_data(
            sample,
            filename,
            t_cam,
            builder.add_calibration(channel, cam_to_ego, K=_matrix(cam["cam2img"])),
            ego,
            size=(1600, 900),
            token=cam["sample_data_token"],
        )
        images[channel] = builder.link(filename, image_sources[channel])
    return sample, images


def build_real_tree(root: Path, real_data: Path, camera_ego: str = "derived") -> RealTree:
    """A ``v1.0-mini`` tree with the real keyframe (scene-0061) and the real 40-point labeled sweep
    (scene-0103).

    Args:
        root: empty folder to build in.
        real_data: ``../shared/data/real``.
        camera_ego: ``"derived"`` gives each camera its own ego pose, recovered from mmdet3d's
            ego-motion compensated ``lidar2cam``; ``"lidar"`` makes every camera share the LiDAR's ego pose.
    """
    info_a = json.loads((real_data / KEYFRAME_DIR / KEYFRAME_JSON).read_text())["data_list"][0]
    info_b = json.loads((real_data / LIDARSEG_DIR / LIDARSEG_JSON).read_text())["data_list"][0]
    builder = TreeBuilder(root)
    images_a = {c: real_data / KEYFRAME_DIR / info_a["images"][c]["img_path"] for c in CAMERAS}
    lidar_file_a = f"samples/LIDAR_TOP/{info_a['lidar_points']['lidar_path']}"
    token_a = "ab" * 16
    _, image_files = _add_keyframe(
        builder, info_a, builder.add_scene(SCENE_A), lidar_file_a,
        real_data / KEYFRAME_DIR / info_a["lidar_points"]["lidar_path"], images_a, camera_ego, token_a,
    )  # fmt: skip
    # Scene B has real labels but no images of its own: its cameras reuse scene A's JPEG files.
    images_b = {c: images_a[c] for c in CAMERAS}
    lidar_file_b = f"samples/LIDAR_TOP/{info_b['lidar_points']['lidar_path']}"
    token_b = Path(info_b["pts_semantic_mask_path"]).name.removesuffix("_lidarseg.bin")
    _add_keyframe(
        builder, info_b, builder.add_scene(SCENE_B), lidar_file_b,
        real_data / LIDARSEG_DIR / info_b["lidar_points"]["lidar_path"], images_b, camera_ego, token_b,
    )  # fmt: skip
    # Scene A's sweep has no published labels: its lidarseg file marks every point 0 (noise -> ignore).
    num_a = (real_data / KEYFRAME_DIR / info_a["lidar_points"]["lidar_path"]).stat().st_size // 20
    label_a = builder.write_file(builder.add_lidarseg(token_a), np.zeros(num_a, np.uint8).tobytes())
    label_b = builder.link(
        builder.add_lidarseg(token_b), real_data / LIDARSEG_DIR / info_b["pts_semantic_mask_path"]
    )
    builder.write()
    return RealTree(
        root=root,
        info_a=info_a,
        info_b=info_b,
        lidar_token_a=token_a,
        lidar_token_b=token_b,
        lidar_file_a=root / lidar_file_a,
        lidar_file_b=root / lidar_file_b,
        label_file_a=label_a,
        label_file_b=label_b,
        image_files=image_files,
    )


def replace_with_bytes(path: Path, data: bytes) -> None:
    """Replace a (possibly symlinked) file of the tree by a regular file holding ``data``."""
    path.unlink()
    path.write_bytes(data)
