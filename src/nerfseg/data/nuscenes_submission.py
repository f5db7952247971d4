"""nuScenes-lidarseg prediction files in the challenge submission layout::

    PRED/lidarseg/<split>/<lidar_sample_data_token>_lidarseg.bin   uint8 class index 1..16 per point
    PRED/<split>/submission.json                                  {"meta": {"use_camera": ..., ...}}

as the devkit's ``eval/lidarseg`` README and ``validate_submission.py`` define it (``<split>`` is the
evaluation set: ``val``, ``test``, ``mini_val``, ...). Class index = train id + 1 (0 = ignore is never
predicted). All files are written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from nerfseg.data.io import read_file_bytes
from nerfseg.data.labelmaps import NUSCENES
from nerfseg.errors import DataError
from nerfseg.io_utils import atomic_write_bytes, atomic_write_text


@dataclass(frozen=True)
class SubmissionMeta:
    """The ``meta`` block of ``submission.json``: which inputs the method uses AT TEST TIME.

    nerfseg's inference model uses LiDAR only (the cameras teach it during training only, which the
    challenge rules allow in the lidar track), hence the defaults. Set ``use_external=True`` if training
    used data from outside nuScenes (e.g. a SAM model trained on SA-1B masks).
    """

    use_camera: bool = False
    use_lidar: bool = True
    use_radar: bool = False
    use_map: bool = False
    use_external: bool = False


def prediction_path(pred_root: str | Path, split: str, lidar_token: str) -> Path:
    """``PRED/lidarseg/<split>/<lidar_token>_lidarseg.bin``."""
    return Path(pred_root) / "lidarseg" / split / f"{lidar_token}_lidarseg.bin"


def submission_json_path(pred_root: str | Path, split: str) -> Path:
    """``PRED/<split>/submission.json``."""
    return Path(pred_root) / split / "submission.json"


def write_nuscenes_prediction(
    pred_root: str | Path, split: str, lidar_token: str, train_ids: np.ndarray
) -> Path:
    """Write one sweep's predictions as a challenge ``_lidarseg.bin`` file, atomically.

    Args:
        pred_root: submission folder PRED.
        split: evaluation set name (``val``, ``test``, ``mini_val``...).
        lidar_token: the LIDAR_TOP key-frame sample_data token (``Sample.sample_id``).
        train_ids: (N,) integer train ids in [0, 16), one per point of the sweep, in file order.
    Returns:
        the written path.
    Raises:
        ValueError: a train id outside [0, 16) (IGNORE_INDEX cannot be submitted).
    """
    train_ids = np.asarray(train_ids)
    if train_ids.ndim != 1:
        raise ValueError(f"train_ids must be 1-D (one per point), got shape {train_ids.shape}")
    classes = NUSCENES.to_submission(train_ids).astype(np.uint8)
    return atomic_write_bytes(prediction_path(pred_root, split, lidar_token), classes.tobytes())


def write_nuscenes_submission_json(
    pred_root: str | Path, split: str, meta: SubmissionMeta | Mapping[str, bool] | None = None
) -> Path:
    """Write ``PRED/<split>/submission.json`` with the ``meta`` block the challenge asks for, atomically.

    Args:
        pred_root: submission folder PRED.
        split: evaluation set name.
        meta: a :class:`SubmissionMeta`, or a mapping with exactly the keys ``use_camera``, ``use_lidar``,
            ``use_radar``, ``use_map``, ``use_external`` (booleans); None = ``SubmissionMeta()`` (LiDAR only).
    Returns:
        the written path.
    Raises:
        ValueError: other keys or non-boolean values (the devkit's validator would reject them).
    """
    if meta is None:
        meta = SubmissionMeta()
    values = asdict(meta) if isinstance(meta, SubmissionMeta) else dict(meta)
    expected = {f.name for f in fields(SubmissionMeta)}
    if set(values) != expected:
        raise ValueError(f"submission meta needs exactly the keys {sorted(expected)}, got {sorted(values)}")
    if not all(isinstance(value, bool) for value in values.values()):
        raise ValueError(f"submission meta values must be booleans, got {values}")
    text = json.dumps({"meta": values}, indent=2) + "\n"
    return atomic_write_text(submission_json_path(pred_root, split), text)


def read_nuscenes_prediction(
    pred_root: str | Path, split: str, lidar_token: str, expected_count: int
) -> np.ndarray:
    """Read one sweep's predictions from a submission folder.

    Args:
        pred_root: submission folder PRED.
        split: evaluation set name.
        lidar_token: LIDAR_TOP key-frame sample_data token.
        expected_count: the number of points of the sweep.
    Returns:
        (N,) int64 train ids in [0, 16) (class index - 1).
    Raises:
        DataError naming the file: missing, length != expected_count, or a value outside 1..16.
    """
    path = prediction_path(pred_root, split, lidar_token)
    data = read_file_bytes(path, "prediction file", missing_hint="every sweep of the split needs one")
    classes = np.frombuffer(data, dtype=np.uint8)
    if classes.size != expected_count:
        raise DataError(
            path, f"has {classes.size} predictions but the point cloud has {expected_count} points"
        )
    bad = (classes < 1) | (classes > NUSCENES.num_classes)
    if bad.any():
        values = np.unique(classes[bad]).tolist()
        raise DataError(
            path,
            f"{int(bad.sum())} prediction(s) outside the class indices 1..{NUSCENES.num_classes}: {values}",
        )
    return classes.astype(np.int64) - 1
