"""nuScenes-lidarseg reader of the NATIVE layout, as distributed::

    ROOT/v1.0-{trainval,mini,test}/*.json      metadata tables (scene, sample, sample_data, ...)
    ROOT/samples/LIDAR_TOP/*.pcd.bin           float32 x, y, z, intensity (0-255), ring index
    ROOT/samples/CAM_*/*.jpg                   the six key-frame camera images
    ROOT/lidarseg/<version>/*_lidarseg.bin     uint8 raw class index (0..31) per point
    ROOT/samples_{semantic,depth}/CAM_*/*.png  (our extension, written by the simulator only) per-pixel raw
                                               class index / z-depth in mm, 16-bit, 0 = none

One :class:`~nerfseg.data.sample.Sample` per key frame (LIDAR_TOP sample_data). Labels are mapped with
the devkit's 32 -> 16 class map (:data:`nerfseg.data.labelmaps.NUSCENES`). Each camera's ``lidar_to_cam``
is ego-motion compensated: lidar -> ego(t_lidar) -> world -> ego(t_cam) -> cam. ``CameraFrame.semantic_path``
/ ``depth_path`` point to the ground-truth images of our extension where they exist (None for real nuScenes).

Also re-exported here: :func:`check_nuscenes` and the submission-file functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfseg.data.io import image_size, read_image
from nerfseg.data.labelmaps import NUSCENES
from nerfseg.data.nuscenes_check import check_nuscenes
from nerfseg.data.nuscenes_files import (
    GROUND_TRUTH_KINDS,
    check_record_size,
    ground_truth_paths,
    read_lidarseg,
    read_nuscenes_points,
)
from nerfseg.data.nuscenes_splits import SCENE_SPLITS, SPLIT_VERSIONS
from nerfseg.data.nuscenes_submission import (
    SubmissionMeta,
    read_nuscenes_prediction,
    write_nuscenes_prediction,
    write_nuscenes_submission_json,
)
from nerfseg.data.nuscenes_tables import (
    CAMERA_CHANNELS,
    LIDAR_CHANNEL,
    MICROSECONDS,
    POINT_FIELDS,
    NuScenesTables,
    camera_intrinsics,
    load_tables,
    record_pose,
)
from nerfseg.data.nuscenes_version import resolve_version, split_for_version
from nerfseg.data.sample import CameraFrame, Sample
from nerfseg.errors import ConfigError, DataError
from nerfseg.geometry.transforms import invert_rigid

__all__ = [
    "NuScenesDataset",
    "SubmissionMeta",
    "check_nuscenes",
    "lidar_to_camera",
    "read_lidarseg",
    "read_nuscenes_points",
    "read_nuscenes_prediction",
    "write_nuscenes_prediction",
    "write_nuscenes_submission_json",
]


def lidar_to_camera(
    lidar_to_ego: np.ndarray,
    ego_to_world_at_lidar: np.ndarray,
    ego_to_world_at_cam: np.ndarray,
    cam_to_ego: np.ndarray,
) -> np.ndarray:
    """Ego-motion compensated LiDAR -> camera transform.

    Composes lidar -> ego(t_lidar) -> world -> ego(t_cam) -> cam, i.e.
    ``inv(cam_to_ego) @ inv(ego_to_world_at_cam) @ ego_to_world_at_lidar @ lidar_to_ego``.
    The two ego poses are combined first, so their large world translations (km) cancel before the
    small calibration transforms are applied.

    Args:
        lidar_to_ego: (4, 4) LiDAR calibrated_sensor pose (lidar frame -> ego frame), metres.
        ego_to_world_at_lidar: (4, 4) ego_pose of the LiDAR sample_data (ego at t_lidar -> world).
        ego_to_world_at_cam: (4, 4) ego_pose of the camera sample_data (ego at t_cam -> world).
        cam_to_ego: (4, 4) camera calibrated_sensor pose (cam frame, OpenCV axes -> ego frame).
    Returns:
        (4, 4) float64, ``x_cam = T @ x_lidar``.
    """
    ego_lidar_to_ego_cam = invert_rigid(ego_to_world_at_cam) @ np.asarray(ego_to_world_at_lidar, np.float64)
    return invert_rigid(cam_to_ego) @ ego_lidar_to_ego_cam @ np.asarray(lidar_to_ego, np.float64)


def split_sample_tokens(tables: NuScenesTables, split: str | None) -> list[str]:
    """Tokens of the samples of an official split, ordered by scene name then time.

    Args:
        tables: the loaded tables.
        split: ``"train"``, ``"val"``, ``"test"``, ``"mini_train"``, ``"mini_val"``, or None for every
            sample of the version. Scenes of the split missing from the tables are skipped.
    Raises:
        ConfigError: an unknown split, or a split that does not belong to ``tables.version``.
    """
    if split is not None:
        if split not in SCENE_SPLITS:
            raise ConfigError(f"unknown nuScenes split {split!r}; choose one of {', '.join(SCENE_SPLITS)}")
        if SPLIT_VERSIONS[split] != tables.version:
            raise ConfigError(
                f"nuScenes split {split!r} belongs to {SPLIT_VERSIONS[split]}, not {tables.version}"
            )
        wanted = set(SCENE_SPLITS[split])
    keyed = []
    for token, sample in tables.sample.items():
        name = tables.scene_name(token)
        if split is None or name in wanted:
            keyed.append((name, int(sample["timestamp"]), token))
    return [token for _, _, token in sorted(keyed)]


class NuScenesDataset:
    """Key frames of one nuScenes split, read from the native layout.

    Args:
        root: nuScenes root folder (holding ``v1.0-*``, ``samples``, ``lidarseg``).
        version: table folder, ``"v1.0-trainval"``, ``"v1.0-mini"`` or ``"v1.0-test"``; None or ``"auto"``:
            the one ``v1.0-*`` folder under ``root`` (:func:`~nerfseg.data.nuscenes_version.resolve_version`).
        split: official split (``"train"``, ``"val"``, ``"test"``, ``"mini_train"``, ``"mini_val"``) or
            None for every key frame of the version; ``train`` / ``val`` on v1.0-mini read ``mini_train`` /
            ``mini_val``.
        load_images: read the camera images in ``__getitem__`` (otherwise ``CameraFrame.image`` is None
            and :meth:`CameraFrame.load_image` reads it on demand).
        cameras: camera channels to attach to each sample (default: all six).

    ``sample_ids`` are the LIDAR_TOP key-frame sample_data tokens (also the names of the submission
    files). Samples carry labels when the version has ``lidarseg.json``, else ``labels`` is None.
    """

    def __init__(
        self,
        root: str | Path,
        version: str | None = None,
        split: str | None = "train",
        load_images: bool = False,
        cameras: tuple[str, ...] = CAMERA_CHANNELS,
    ):
        unknown = [name for name in cameras if name not in CAMERA_CHANNELS]
        if unknown:
            raise ConfigError(
                f"unknown nuScenes camera(s) {unknown}; choose from {', '.join(CAMERA_CHANNELS)}"
            )
        self.root = Path(root)
        self.version = resolve_version(self.root, version)
        self.split = split_for_version(split, self.version)
        self.load_images = load_images
        self.cameras = tuple(cameras)
        self.tables = load_tables(self.root, self.version)
        # The simulator's ground-truth image folders (our extension), looked up once; real nuScenes has none.
        self._ground_truth_kinds = tuple(
            kind for kind in GROUND_TRUTH_KINDS if (self.root / f"samples_{kind}").is_dir()
        )
        self._lidar_records: list[dict] = []
        for sample_token in split_sample_tokens(self.tables, self.split):
            lidar = self.tables.keyframes.get(sample_token, {}).get(LIDAR_CHANNEL)
            if lidar is None:
                raise DataError(
                    self.tables.path("sample_data"), f"sample {sample_token} has no {LIDAR_CHANNEL} key frame"
                )
            self._lidar_records.append(lidar)

    @property
    def sample_ids(self) -> list[str]:
        """LIDAR_TOP key-frame sample_data tokens, in dataset order."""
        return [record["token"] for record in self._lidar_records]

    @property
    def has_labels(self) -> bool:
        """True when the version ships lidarseg labels."""
        return self.tables.lidarseg is not None

    def __len__(self) -> int:
        return len(self._lidar_records)

    def missing_cameras(self) -> list[str]:
        """Groups of scans without camera images: none (every key frame has its six cameras, or reading it
        raises a DataError naming the table)."""
        return []

    def lidar_path(self, index: int) -> Path:
        """The ``*.pcd.bin`` file of sample ``index``."""
        return self.root / self._lidar_records[index]["filename"]

    def num_points(self, index: int) -> int:
        """Point count of sample ``index`` from its file size (no read); DataError if not whole points."""
        path = self.lidar_path(index)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise DataError(path, "point file not found") from None
        if size % (4 * POINT_FIELDS):
            raise DataError(path, f"size {size} bytes is not a whole number of 20-byte points: truncated?")
        return size // (4 * POINT_FIELDS)

    def label_path(self, index: int) -> Path | None:
        """The ``*_lidarseg.bin`` file of sample ``index``; None when the version has no labels."""
        if self.tables.lidarseg is None:
            return None
        token = self._lidar_records[index]["token"]
        filename = self.tables.lidarseg.get(token)
        if filename is None:
            raise DataError(
                self.tables.path("lidarseg"), f"no lidarseg record for LIDAR_TOP sample_data {token}"
            )
        return self.root / filename

    def read_labels(self, index: int, num_points: int | None = None) -> np.ndarray | None:
        """(N,) int64 train ids (0..15, IGNORE_INDEX) of sample ``index``, or None without labels.

        ``num_points`` defaults to the point count from the point file's size.
        """
        path = self.label_path(index)
        if path is None:
            return None
        count = self.num_points(index) if num_points is None else num_points
        return NUSCENES.to_train(read_lidarseg(path, count))

    def camera_frames(self, index: int) -> list[CameraFrame]:
        """The key-frame cameras of sample ``index`` with K, ego-motion compensated lidar_to_cam and times."""
        tables = self.tables
        lidar = self._lidar_records[index]
        lidar_to_ego = record_pose(tables.calibration(lidar), tables.path("calibrated_sensor"))
        ego_at_lidar = record_pose(tables.ego(lidar), tables.path("ego_pose"))
        by_channel = tables.keyframes[lidar["sample_token"]]
        frames = []
        for channel in self.cameras:
            record = by_channel.get(channel)
            if record is None:
                raise DataError(
                    tables.path("sample_data"), f"sample {lidar['sample_token']} has no {channel} key frame"
                )
            calib = tables.calibration(record)
            transform = lidar_to_camera(
                lidar_to_ego,
                ego_at_lidar,
                record_pose(tables.ego(record), tables.path("ego_pose")),
                record_pose(calib, tables.path("calibrated_sensor")),
            )
            image_path = self.root / record["filename"]
            width, height = int(record.get("width") or 0), int(record.get("height") or 0)
            image = read_image(image_path) if self.load_images else None
            if image is not None:
                check_record_size(image_path, (image.shape[1], image.shape[0]), record)
                height, width = image.shape[:2]
            elif width <= 0 or height <= 0:
                width, height = image_size(image_path)
            kinds = self._ground_truth_kinds
            truth = ground_truth_paths(self.root, record["filename"], (width, height), kinds)
            frames.append(
                CameraFrame(
                    name=channel,
                    image_path=image_path,
                    K=camera_intrinsics(calib, tables.path("calibrated_sensor")),
                    lidar_to_cam=transform,
                    timestamp=int(record["timestamp"]) * MICROSECONDS,
                    image_size=(width, height),
                    image=image,
                    semantic_path=truth.get("semantic"),
                    depth_path=truth.get("depth"),
                )
            )
        return frames

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples")
        index %= len(self)
        lidar = self._lidar_records[index]
        path = self.lidar_path(index)
        points = read_nuscenes_points(path)
        return Sample(
            sample_id=lidar["token"],
            points=points,
            labels=self.read_labels(index, num_points=points.shape[0]),
            timestamp=int(lidar["timestamp"]) * MICROSECONDS,
            cameras=self.camera_frames(index),
            lidar_path=path,
        )
