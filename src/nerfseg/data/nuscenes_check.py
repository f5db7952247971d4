"""Validate a nuScenes(-lidarseg) tree in the native layout and list every problem with its file.

Checked: the version folder and the required tables (present, valid JSON, records with their fields);
for every LIDAR_TOP key frame: the links to sample / calibrated_sensor / ego_pose / sensor records,
calibration values (unit quaternions, finite translations, pinhole intrinsics), the ``.pcd.bin`` (a
whole number of 20-byte points, finite values), its lidarseg file (present, one label per point, raw
ids 0..31) and the six key-frame camera images (present and decodable).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nerfseg.data.checks import Problem
from nerfseg.data.nuscenes_files import (
    check_record_size,
    ground_truth_paths,
    read_lidarseg,
    read_nuscenes_points,
)
from nerfseg.data.nuscenes_tables import (
    CAMERA_CHANNELS,
    LIDAR_CHANNEL,
    REQUIRED_TABLES,
    TABLE_FIELDS,
    NuScenesTables,
    camera_intrinsics,
    check_version_folder,
    index_tables,
    read_table,
    record_pose,
    table_path,
)
from nerfseg.data.nuscenes_version import resolve_version
from nerfseg.errors import DataError

LABELED_VERSIONS = ("v1.0-trainval", "v1.0-mini")
"""Versions whose key frames must carry lidarseg labels (the test set ships none)."""


def check_nuscenes(
    root: str | Path, version: str | None = None, check_images: bool = True, progress: bool = True
) -> list[Problem]:
    """Validate ``ROOT`` for ``version``; returns every problem found (empty list = all good).

    Args:
        root: nuScenes root folder.
        version: table folder (``v1.0-trainval``, ``v1.0-mini``, ``v1.0-test``); None or ``"auto"``: the one
            ``v1.0-*`` folder under ``root`` (several raise ConfigError: see
            :func:`~nerfseg.data.nuscenes_version.resolve_version`).
        check_images: decode every key-frame camera image (at reduced JPEG scale; the slowest part).
        progress: show a tqdm progress bar over the key frames.
    Returns:
        list of :class:`Problem` (file, message), in the order found.
    """
    from tqdm import tqdm

    root = Path(root)
    problems: list[Problem] = []
    try:
        version = resolve_version(root, version)
        check_version_folder(root, version)
    except DataError as err:
        return [Problem(err.path, err.problem)]
    tables: dict[str, dict[str, dict]] = {}
    for name in REQUIRED_TABLES:
        table = _collect(problems, read_table, table_path(root, version, name), TABLE_FIELDS[name])
        if table is not None:
            tables[name] = table
    lidarseg_file = table_path(root, version, "lidarseg")
    lidarseg = None
    if lidarseg_file.exists():
        lidarseg = _collect(problems, read_table, lidarseg_file, TABLE_FIELDS["lidarseg"])
    elif version in LABELED_VERSIONS:
        problems.append(Problem(lidarseg_file, "lidarseg table not found: the key frames have no labels"))
    if len(tables) < len(REQUIRED_TABLES):
        return problems  # cannot follow links without every table
    indexed = index_tables(root, version, tables, lidarseg, problems=problems)
    samples = sorted(indexed.keyframes.items(), key=lambda item: int(indexed.sample[item[0]]["timestamp"]))
    for sample_token, by_channel in tqdm(
        samples, desc=f"check nuScenes {version}", unit="scan", disable=not progress
    ):
        _check_sample(indexed, sample_token, by_channel, check_images, problems)
    return problems


def _check_sample(
    tables: NuScenesTables,
    sample_token: str,
    by_channel: dict[str, dict],
    check_images: bool,
    problems: list[Problem],
) -> None:
    """Append the problems of one key frame (its LiDAR sweep, labels and cameras) to ``problems``."""
    lidar = by_channel.get(LIDAR_CHANNEL)
    if lidar is None:
        problems.append(
            Problem(tables.path("sample_data"), f"sample {sample_token} has no {LIDAR_CHANNEL} key frame")
        )
        return
    _check_pose_links(tables, lidar, problems)
    points = _collect(problems, read_nuscenes_points, tables.root / lidar["filename"])
    if tables.lidarseg is not None:
        filename = tables.lidarseg.get(lidar["token"])
        if filename is None:
            problems.append(
                Problem(
                    tables.path("lidarseg"), f"no lidarseg record for LIDAR_TOP sample_data {lidar['token']}"
                )
            )
        elif points is not None:
            _collect(problems, read_lidarseg, tables.root / filename, points.shape[0])
        elif not (tables.root / filename).is_file():
            problems.append(Problem(tables.root / filename, "lidarseg label file not found"))
    for channel in CAMERA_CHANNELS:
        record = by_channel.get(channel)
        if record is None:
            problems.append(
                Problem(tables.path("sample_data"), f"sample {sample_token} has no {channel} key frame")
            )
            continue
        calib = _check_pose_links(tables, record, problems)
        if calib is not None:
            _collect(problems, camera_intrinsics, calib, tables.path("calibrated_sensor"))
        if check_images:
            _check_camera_image(tables, record, problems)


def _check_pose_links(tables: NuScenesTables, sample_data: dict, problems: list[Problem]) -> dict | None:
    """Check the calibrated_sensor and ego_pose records of a sample_data record; returns the calibration."""
    calib = _collect(problems, tables.calibration, sample_data)
    if calib is not None:
        _collect(problems, record_pose, calib, tables.path("calibrated_sensor"))
    ego = _collect(problems, tables.ego, sample_data)
    if ego is not None:
        _collect(problems, record_pose, ego, tables.path("ego_pose"))
    return calib


def _check_camera_image(tables: NuScenesTables, record: dict, problems: list[Problem]) -> None:
    """The camera image of a sample_data record decodes and has the record's size; the ground-truth images
    beside it (our extension) have its size and read as 16-bit PNGs (the reader's rules)."""
    from nerfseg.data.ground_truth import read_uint16_png

    path = tables.root / record["filename"]
    size = _collect(problems, _decode_image, path)
    if size is None:
        return
    _collect(problems, check_record_size, path, size, record)
    truth = _collect(problems, ground_truth_paths, tables.root, record["filename"], size)
    for truth_path in (truth or {}).values():
        _collect(problems, read_uint16_png, truth_path)


def _decode_image(path: Path) -> tuple[int, int]:
    """Decode an image fully (JPEGs at 1/8 scale: every byte is still parsed); returns its (W, H) in pixels;
    DataError if it fails."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with Image.open(path) as image:
            width, height = image.size
            image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(path, f"unreadable image ({err})") from None
    return int(width), int(height)


def _collect(problems: list[Problem], check: Callable, *args):
    """Run ``check(*args)``; on DataError append a Problem and return None, else return its result."""
    try:
        return check(*args)
    except DataError as err:
        problems.append(Problem(err.path, err.problem))
        return None
