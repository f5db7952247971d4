"""The native nuScenes metadata tables (``ROOT/v1.0-*/<table>.json``), loaded and indexed.

Only the tables and fields the LiDAR-segmentation reader needs are read: ``scene``, ``sample``,
``sample_data`` (key frames only), ``calibrated_sensor``, ``ego_pose``, ``sensor`` and, when present,
``lidarseg``. Every record is a JSON object with a ``token``; rotations are unit quaternions
``[w, x, y, z]``, translations metres, timestamps microseconds. A missing or malformed table raises
:class:`nerfseg.errors.DataError` naming the table file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nerfseg.data.checks import Problem
from nerfseg.errors import DataError
from nerfseg.geometry.transforms import make_transform, quaternion_to_matrix

VERSIONS = ("v1.0-trainval", "v1.0-test", "v1.0-mini")
"""The dataset versions (table folders) nuScenes is distributed as."""

LIDAR_CHANNEL = "LIDAR_TOP"
CAMERA_CHANNELS = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)
"""The six cameras of every nuScenes key frame."""

POINT_FIELDS = 5
"""float32 values per point of a ``*.pcd.bin`` file: x, y, z (metres), intensity (0-255), ring index."""

REQUIRED_TABLES = ("scene", "sample", "sample_data", "calibrated_sensor", "ego_pose", "sensor")
"""Tables the reader cannot work without (``lidarseg`` is needed for labels only)."""

TABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "scene": ("token", "name"),
    "sample": ("token", "scene_token", "timestamp"),
    "sample_data": (
        "token",
        "sample_token",
        "ego_pose_token",
        "calibrated_sensor_token",
        "timestamp",
        "filename",
        "is_key_frame",
    ),
    "calibrated_sensor": ("token", "sensor_token", "translation", "rotation", "camera_intrinsic"),
    "ego_pose": ("token", "translation", "rotation"),
    "sensor": ("token", "channel"),
    "lidarseg": ("token", "sample_data_token", "filename"),
}
"""Fields each record of a table must have."""

MICROSECONDS = 1e-6
"""Seconds per nuScenes timestamp unit."""


def table_path(root: str | Path, version: str, table: str) -> Path:
    """``ROOT/<version>/<table>.json``."""
    return Path(root) / version / f"{table}.json"


def read_table(path: str | Path, fields: tuple[str, ...]) -> dict[str, dict]:
    """Read one nuScenes table (a JSON list of records) and index it by ``token``.

    Args:
        path: the ``<table>.json`` file.
        fields: names every record must carry (``token`` among them).
    Returns:
        dict token -> record (the JSON object as a dict).
    Raises:
        DataError: missing or unreadable file, invalid JSON, not a list of objects, a record without
            one of ``fields``.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            records = json.load(f)
    except FileNotFoundError:
        raise DataError(path, "table file not found") from None
    except OSError as err:
        raise DataError(path, f"cannot read table ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"not valid JSON ({err})") from None
    if not isinstance(records, list):
        raise DataError(path, f"expected a JSON list of records, got {type(records).__name__}")
    table: dict[str, dict] = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(path, f"record {index} is not a JSON object")
        missing = [name for name in fields if name not in record]
        if missing:
            token = record.get("token", "?")
            raise DataError(path, f"record {index} (token {token}) lacks field(s) {', '.join(missing)}")
        table[str(record["token"])] = record
    return table


def record_pose(record: dict, path: Path) -> np.ndarray:
    """The (4, 4) float64 rigid transform child -> parent of a ``calibrated_sensor`` or ``ego_pose`` record.

    ``calibrated_sensor``: sensor frame -> ego frame; ``ego_pose``: ego frame -> world frame. Metres.
    Raises DataError naming ``path`` (the table file) if rotation / translation are malformed.
    """
    token = record.get("token", "?")
    try:
        rotation = np.asarray(record["rotation"], dtype=np.float64)
        translation = np.asarray(record["translation"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise DataError(path, f"record {token}: rotation / translation are not numbers") from None
    if rotation.shape != (4,) or translation.shape != (3,):
        raise DataError(
            path,
            f"record {token}: expected a 4-value rotation and a 3-value translation, "
            f"got {rotation.size} and {translation.size} values",
        )
    if not (np.isfinite(rotation).all() and np.isfinite(translation).all()):
        raise DataError(path, f"record {token}: non-finite rotation / translation")
    norm = float(np.linalg.norm(rotation))
    if abs(norm - 1.0) > 1e-3:
        raise DataError(path, f"record {token}: rotation quaternion has norm {norm:.6g}, expected 1")
    return make_transform(quaternion_to_matrix(rotation), translation)


def camera_intrinsics(record: dict, path: Path) -> np.ndarray:
    """(3, 3) float64 intrinsics (pixels) of a camera's ``calibrated_sensor`` record.

    Raises DataError naming ``path`` (the table file) unless it is a finite pinhole matrix.
    """
    token = record.get("token", "?")
    try:
        K = np.asarray(record["camera_intrinsic"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise DataError(path, f"record {token}: camera_intrinsic is not a 3x3 matrix of numbers") from None
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise DataError(
            path, f"record {token}: camera_intrinsic must be a finite 3x3 matrix, got shape {K.shape}"
        )
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0.0, 0.0, 1.0]):
        raise DataError(
            path, f"record {token}: camera_intrinsic is not a pinhole matrix (fx, fy > 0, last row 0 0 1)"
        )
    return K


@dataclass
class NuScenesTables:
    """The indexed tables of one nuScenes version.

    Attributes:
        root: dataset root (``ROOT/samples``, ``ROOT/lidarseg``, ``ROOT/<version>/``).
        version: e.g. ``"v1.0-mini"``.
        scene, sample, calibrated_sensor, ego_pose, sensor: token -> record.
        sample_data: token -> record, key frames only.
        lidarseg: LIDAR_TOP sample_data token -> label file path relative to root; None when the version
            has no ``lidarseg.json`` (e.g. the test set).
        keyframes: sample token -> {channel: key-frame sample_data record}.
    """

    root: Path
    version: str
    scene: dict[str, dict]
    sample: dict[str, dict]
    sample_data: dict[str, dict]
    calibrated_sensor: dict[str, dict]
    ego_pose: dict[str, dict]
    sensor: dict[str, dict]
    lidarseg: dict[str, str] | None
    keyframes: dict[str, dict[str, dict]] = field(default_factory=dict)

    def path(self, table: str) -> Path:
        """The file of ``table``."""
        return table_path(self.root, self.version, table)

    def channel(self, sample_data: dict) -> str:
        """Sensor channel (e.g. ``"LIDAR_TOP"``) of a sample_data record; DataError if a link is broken."""
        calib = self.calibration(sample_data)
        sensor = self.sensor.get(calib["sensor_token"])
        if sensor is None:
            raise DataError(
                self.path("sensor"),
                f"no sensor {calib['sensor_token']} (referenced by calibrated_sensor {calib['token']})",
            )
        return str(sensor["channel"])

    def calibration(self, sample_data: dict) -> dict:
        """The calibrated_sensor record of a sample_data record; DataError naming the table if missing."""
        record = self.calibrated_sensor.get(sample_data["calibrated_sensor_token"])
        if record is None:
            raise DataError(
                self.path("calibrated_sensor"),
                f"no calibrated_sensor {sample_data['calibrated_sensor_token']} "
                f"(referenced by sample_data {sample_data['token']})",
            )
        return record

    def ego(self, sample_data: dict) -> dict:
        """The ego_pose record of a sample_data record; DataError naming the table if missing."""
        record = self.ego_pose.get(sample_data["ego_pose_token"])
        if record is None:
            raise DataError(
                self.path("ego_pose"),
                f"no ego_pose {sample_data['ego_pose_token']} "
                f"(referenced by sample_data {sample_data['token']})",
            )
        return record

    def scene_name(self, sample_token: str) -> str:
        """Name (``scene-XXXX``) of the scene a sample belongs to."""
        sample = self.sample[sample_token]
        scene = self.scene.get(sample["scene_token"])
        if scene is None:
            raise DataError(
                self.path("scene"), f"no scene {sample['scene_token']} (referenced by sample {sample_token})"
            )
        return str(scene["name"])


def load_tables(root: str | Path, version: str) -> NuScenesTables:
    """Load and index the tables of ``ROOT/<version>/``.

    Args:
        root: nuScenes root folder.
        version: one of :data:`VERSIONS` (other names are accepted if the folder exists).
    Returns:
        :class:`NuScenesTables`; ``sample_data`` keeps key frames only (what segmentation uses).
    Raises:
        DataError: the version folder or a required table is missing or malformed, or a key-frame
            sample_data record links to a missing sample / calibrated_sensor / sensor record.
    """
    root = Path(root)
    check_version_folder(root, version)
    tables = {
        name: read_table(table_path(root, version, name), TABLE_FIELDS[name]) for name in REQUIRED_TABLES
    }
    lidarseg_file = table_path(root, version, "lidarseg")
    lidarseg = read_table(lidarseg_file, TABLE_FIELDS["lidarseg"]) if lidarseg_file.exists() else None
    return index_tables(root, version, tables, lidarseg)


def check_version_folder(root: Path, version: str) -> None:
    """Raise DataError if ``ROOT/<version>`` is not a folder (naming the versions that are there)."""
    folder = root / version
    if not folder.is_dir():
        known = sorted(p.name for p in root.glob("v1.0-*") if p.is_dir()) if root.is_dir() else []
        hint = f" (found: {', '.join(known)})" if known else ""
        raise DataError(folder, f"nuScenes table folder not found{hint}")


def index_tables(
    root: Path,
    version: str,
    tables: dict[str, dict[str, dict]],
    lidarseg: dict[str, dict] | None,
    problems: list[Problem] | None = None,
) -> NuScenesTables:
    """Index tables read by :func:`read_table` (key frames by sample and channel).

    Args:
        tables: the :data:`REQUIRED_TABLES`, each token -> record.
        lidarseg: the lidarseg table (token -> record) or None.
        problems: None to raise DataError at the first broken link; a list to append a Problem per broken
            link instead (the record is then left out of the index).
    """
    result = NuScenesTables(
        root=root,
        version=version,
        scene=tables["scene"],
        sample=tables["sample"],
        sample_data={token: sd for token, sd in tables["sample_data"].items() if sd["is_key_frame"]},
        calibrated_sensor=tables["calibrated_sensor"],
        ego_pose=tables["ego_pose"],
        sensor=tables["sensor"],
        lidarseg=None
        if lidarseg is None
        else {str(r["sample_data_token"]): str(r["filename"]) for r in lidarseg.values()},
    )
    for sd in result.sample_data.values():
        try:
            if sd["sample_token"] not in result.sample:
                raise DataError(
                    result.path("sample_data"),
                    f"sample_data {sd['token']} references a missing sample {sd['sample_token']}",
                )
            result.keyframes.setdefault(sd["sample_token"], {})[result.channel(sd)] = sd
        except DataError as err:
            if problems is None:
                raise
            problems.append(Problem(err.path, err.problem))
    return result
