"""SemanticKITTI benchmark submission files: ``PRED/sequences/SS/predictions/FFFFFF.label``, one little-endian
uint32 raw label id per point (the official learning map's inverse of the train ids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfseg.data import io
from nerfseg.data.labelmaps import SEMANTICKITTI, LabelMap
from nerfseg.errors import DataError
from nerfseg.io_utils import atomic_write_bytes


def semantickitti_prediction_path(pred_root: str | Path, sample_id: str) -> Path:
    """``PRED/sequences/SS/predictions/FFFFFF.label`` for sample id ``"SS/FFFFFF"``."""
    sequence, frame = sample_id.split("/")
    return Path(pred_root) / "sequences" / sequence / "predictions" / f"{frame}.label"


def write_semantickitti_prediction(
    pred_root: str | Path, sample_id: str, train_ids: np.ndarray, label_map: LabelMap = SEMANTICKITTI
) -> Path:
    """Write (N,) train ids in [0, 19) as raw ids (uint32) atomically; returns the file written."""
    raw = label_map.to_submission(np.asarray(train_ids)).astype("<u4")
    return atomic_write_bytes(semantickitti_prediction_path(pred_root, sample_id), raw.tobytes())


def read_semantickitti_prediction_raw(
    pred_root: str | Path, sample_id: str, expected_count: int
) -> np.ndarray:
    """Read a prediction file as (N,) int64 raw semantic ids: the lower 16 bits of each uint32, as the
    official evaluator reads them (the instance bits are dropped).

    Raises:
        DataError: the file is missing or its length differs from ``expected_count``.
    """
    path = semantickitti_prediction_path(pred_root, sample_id)
    if not path.is_file():
        raise DataError(path, f"prediction file not found (needed for scan {sample_id})")
    return (io.read_label_file(path, expected_count) & 0xFFFF).astype(np.int64)


def read_semantickitti_prediction(
    pred_root: str | Path, sample_id: str, expected_count: int, label_map: LabelMap = SEMANTICKITTI
) -> np.ndarray:
    """Read a prediction file as (N,) int64 train ids, as the official evaluator does: the lower 16 bits
    of each uint32 are mapped through the learning map (unlabeled / unknown raw ids -> IGNORE_INDEX;
    ``label_map.unknown_raw_ids`` of :func:`read_semantickitti_prediction_raw` finds the unknown ones).

    Raises:
        DataError: the file is missing or its length differs from ``expected_count``.
    """
    return label_map.to_train(read_semantickitti_prediction_raw(pred_root, sample_id, expected_count))
