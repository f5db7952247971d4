"""Low-level file readers shared by the dataset readers. Every failure raises
:class:`nerfseg.errors.DataError` naming the file and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfseg.errors import DataError

KITTI_CALIB_KEYS = ("P0", "P1", "P2", "P3", "Tr")


def read_file_bytes(path: str | Path, what: str = "file", missing_hint: str = "") -> bytes:
    """Return the bytes of ``path``.

    Raises DataError naming the file: "<what> not found[ (<missing_hint>)]" or "cannot read <what> (...)".
    """
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        hint = f" ({missing_hint})" if missing_hint else ""
        raise DataError(path, f"{what} not found{hint}") from None
    except OSError as err:
        raise DataError(path, f"cannot read {what} ({err.strerror})") from None


def read_points_bin(path: str | Path, num_fields: int) -> np.ndarray:
    """Read a raw float32 point file (KITTI ``velodyne/*.bin``, nuScenes ``*.pcd.bin``).

    Args:
        path: the file.
        num_fields: float32 values per point (4 for KITTI x, y, z, remission; 5 for nuScenes).
    Returns:
        (N, num_fields) float32 array.
    Raises:
        DataError: missing file, a size that is not a whole number of points, or non-finite values.
    """
    path = Path(path)
    data = read_file_bytes(path)
    point_bytes = 4 * num_fields
    if len(data) % point_bytes != 0:
        raise DataError(
            path,
            f"size {len(data)} bytes is not a whole number of points ({num_fields} float32 = {point_bytes} "
            f"bytes each): truncated or wrong format",
        )
    points = np.frombuffer(data, dtype="<f4").reshape(-1, num_fields).copy()
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(
            path, f"{bad.size} point(s) with non-finite values (NaN/inf), first at point index {int(bad[0])}"
        )
    return points


def read_label_file(path: str | Path, expected_count: int | None = None) -> np.ndarray:
    """Read a SemanticKITTI ``.label`` file: one little-endian uint32 per point (instance << 16 | semantic).

    Args:
        path: the file.
        expected_count: the number of points of the scan; None skips the length check.
    Returns:
        (N,) uint32 array.
    Raises:
        DataError: missing file, size not a multiple of 4 bytes, or N != expected_count.
    """
    path = Path(path)
    data = read_file_bytes(path)
    if len(data) % 4 != 0:
        raise DataError(path, f"size {len(data)} bytes is not a whole number of uint32 labels")
    labels = np.frombuffer(data, dtype="<u4").copy()
    if expected_count is not None and labels.size != expected_count:
        raise DataError(path, f"has {labels.size} labels but the scan has {expected_count} points")
    return labels


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; raises DataError if it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(path, f"unreadable image ({err})") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) in pixels of an image file, from its header (the pixels are not decoded).

    Raises DataError naming the file if it is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with Image.open(path) as image:
            return int(image.size[0]), int(image.size[1])
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(path, f"unreadable image ({err})") from None


def check_image_size(
    path: str | Path, size: tuple[int, int], expected: tuple[int, int], reference: str
) -> None:
    """Raise DataError naming ``path`` unless its ``size`` (W, H) equals ``expected`` (W, H), the size of
    ``reference`` (a few words naming the image it must match, e.g. "its camera image 000004.png")."""
    if tuple(size) != tuple(expected):
        raise DataError(
            path,
            f"image is {size[0]}x{size[1]} pixels, but {reference} is {expected[0]}x{expected[1]} "
            "(the two must have the same size)",
        )


def read_kitti_calib(path: str | Path) -> dict[str, np.ndarray]:
    """Read a KITTI odometry ``calib.txt``.

    Returns:
        ``{"P0".."P3": (3, 4) float64 projection matrices of the rectified cameras,
        "Tr": (4, 4) float64 velodyne -> cam0 transform}``; other keys in the file are kept with their
        values as 1-D arrays.
    Raises:
        DataError: missing file, a line that is not ``KEY: numbers``, a missing key or a wrong count.
    """
    path = Path(path)
    try:
        text = read_file_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(path, "calibration file is not text") from None
    values: dict[str, np.ndarray] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        if not sep:
            raise DataError(path, f"line {line_no}: expected 'KEY: numbers', got {line.strip()[:40]!r}")
        try:
            numbers = np.array([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError:
            raise DataError(path, f"line {line_no} ({key.strip()}): values are not numbers") from None
        if not np.isfinite(numbers).all():
            raise DataError(path, f"line {line_no} ({key.strip()}): non-finite values")
        values[key.strip()] = numbers
    calib: dict[str, np.ndarray] = dict(values)
    for key in KITTI_CALIB_KEYS:
        if key not in values:
            raise DataError(path, f"missing calibration entry {key!r}")
        if values[key].size != 12:
            raise DataError(path, f"entry {key!r} has {values[key].size} values, expected 12 (a 3x4 matrix)")
        matrix = values[key].reshape(3, 4)
        if key == "Tr":
            matrix = np.vstack([matrix, [0.0, 0.0, 0.0, 1.0]])
        calib[key] = matrix
    return calib


def read_kitti_poses(path: str | Path) -> np.ndarray:
    """Read a KITTI ``poses.txt`` (12 values per line, a row-major 3x4 matrix) as (T, 4, 4) float64."""
    path = Path(path)
    rows = _read_number_rows(path)
    for line_no, row in enumerate(rows, start=1):
        if row.size != 12:
            raise DataError(path, f"line {line_no} has {row.size} values, expected 12 (a 3x4 pose)")
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    if rows:
        poses[:, :3, :] = np.stack(rows).reshape(-1, 3, 4)
    return poses


def read_times(path: str | Path, strictly_increasing: bool = False) -> np.ndarray:
    """Read a ``times.txt`` (one time in seconds per line) as (T,) float64.

    With ``strictly_increasing`` a time that is not later than the one before it is a DataError naming the
    file and both entries (1-based, blank lines not counted).
    """
    path = Path(path)
    rows = _read_number_rows(path)
    for line_no, row in enumerate(rows, start=1):
        if row.size != 1:
            raise DataError(path, f"line {line_no} has {row.size} values, expected one time in seconds")
    times = np.array([row[0] for row in rows], dtype=np.float64)
    if strictly_increasing and times.size > 1:
        steps = np.diff(times)
        if not (steps > 0).all():
            first = int(np.flatnonzero(~(steps > 0))[0])
            raise DataError(
                path,
                f"times must increase strictly, but entry {first + 2} ({times[first + 1]:.9g} s) is not "
                f"later than entry {first + 1} ({times[first]:.9g} s)",
            )
    return times


def _read_number_rows(path: Path) -> list[np.ndarray]:
    try:
        text = read_file_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(path, "file is not text") from None
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = np.array([float(v) for v in line.split()], dtype=np.float64)
        except ValueError:
            raise DataError(path, f"line {line_no}: values are not numbers") from None
        if not np.isfinite(row).all():
            raise DataError(path, f"line {line_no}: non-finite values")
        rows.append(row)
    return rows
