"""Evaluation of benchmark-format prediction files against a dataset's ground truth, scored by the
official rules (:mod:`nerfseg.engine.metrics`).

SemanticKITTI / ScribbleKITTI: as semantic-kitti-api ``evaluate_semantics.py``: every
``ROOT/sequences/SS/labels/*.label`` of the split's sequences is paired with
``PRED/sequences/SS/predictions/*.label`` (same name); both are read as uint32, their lower 16 bits mapped
through the learning map. ScribbleKITTI is evaluated on the dense ``labels/``, as its benchmark is.
nuScenes: ``PRED/lidarseg/<split>/<lidar token>_lidarseg.bin`` (uint8, classes 1..16) for every keyframe of
the split, scored by the nuscenes-devkit lidarseg rule.

Raw ids outside the SemanticKITTI label map in a prediction file are scored as the official script scores
them (unlabeled, i.e. ignored), with one :class:`UnmappedPredictionWarning` per evaluation naming the files
and ids; ``strict=True`` makes them an error. nuScenes class indices outside 1..16 are always an error.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from nerfseg.data import io
from nerfseg.data.datasets import DatasetKind
from nerfseg.data.labelmaps import SEMANTICKITTI
from nerfseg.data.submission import read_semantickitti_prediction_raw, semantickitti_prediction_path
from nerfseg.engine.metrics import ConfusionMatrix, Scores, nuscenes_scores, semantickitti_scores
from nerfseg.errors import ConfigError, DataError

SPLIT_ALIASES = {"valid": "val", "validation": "val"}

SHOWN_FILES = 3
"""Prediction files named in an :class:`UnmappedPredictionWarning` (the rest are counted)."""


class UnmappedPredictionWarning(UserWarning):
    """SemanticKITTI prediction files hold raw ids outside the label map (scored as unlabeled)."""


def unmapped_ids_message(offenders: list[tuple[Path, list[int]]], num_files: int) -> str:
    """One line naming the first :data:`SHOWN_FILES` files and their unknown raw ids, the count of the others
    and the union of the ids. ``offenders``: (prediction file, its sorted unknown raw ids)."""
    shown = "; ".join(f"{path} ({', '.join(map(str, ids[:5]))}{', ...' if len(ids) > 5 else ''})"
                      for path, ids in offenders[:SHOWN_FILES])  # fmt: skip
    more = f"; and {len(offenders) - SHOWN_FILES} more file(s)" if len(offenders) > SHOWN_FILES else ""
    union = sorted({i for _, ids in offenders for i in ids})
    ids = ", ".join(map(str, union[:10])) + (f", ... ({len(union)} ids)" if len(union) > 10 else "")
    return (
        f"{len(offenders)} of {num_files} prediction file(s) hold raw label ids outside the SemanticKITTI "
        f"label map ({ids}), scored as unlabeled (ignored) as the official evaluate_semantics.py does: "
        f"{shown}{more}. --strict makes this an error"
    )


def evaluate_predictions(
    kind: DatasetKind | str,
    data_root: str | Path,
    pred_root: str | Path,
    split: str = "val",
    version: str = "v1.0-trainval",
    progress: bool = True,
    strict: bool = False,
) -> tuple[Scores, int]:
    """Score a folder of predictions. Returns (scores, number of scans evaluated).

    SemanticKITTI / ScribbleKITTI raw ids outside the label map are scored as unlabeled, as the official
    script does, with one :class:`UnmappedPredictionWarning` naming the files and ids; ``strict`` makes them
    a DataError. nuScenes rejects class indices outside 1..16 whatever ``strict``.

    Raises:
        ConfigError: an unknown split.
        DataError: no ground truth in the split, or a prediction file that is missing, whose length
            differs from its ground truth, or (``strict``) that holds unknown ids (the message names the
            file).
    """
    kind = DatasetKind(kind)
    split = SPLIT_ALIASES.get(split, split)
    if kind is DatasetKind.NUSCENES:
        return _evaluate_nuscenes(Path(data_root), Path(pred_root), split, version, progress)
    return _evaluate_semantickitti(Path(data_root), Path(pred_root), split, progress, strict)


def _evaluate_semantickitti(
    root: Path, pred_root: Path, split: str, progress: bool, strict: bool
) -> tuple[Scores, int]:
    from tqdm import tqdm

    from nerfseg.data.semantickitti import SPLIT_SEQUENCES, sequence_name

    if split not in SPLIT_SEQUENCES:
        choices = ", ".join(SPLIT_SEQUENCES)
        raise ConfigError(f"unknown SemanticKITTI split {split!r}; choose one of {choices}")
    label_files = []
    for sequence in SPLIT_SEQUENCES[split]:
        folder = root / "sequences" / sequence_name(sequence) / "labels"
        if folder.is_dir():
            names = sorted(n for n in os.listdir(folder) if n.endswith(".label"))
            label_files.extend(folder / n for n in names)
    if not label_files:
        names = ", ".join(sequence_name(s) for s in SPLIT_SEQUENCES[split])
        labeled = sorted(p.parent.name for p in (root / "sequences").glob("*/labels"))
        hint = (
            f"; labeled sequences here: {', '.join(labeled)} (choose --split accordingly)" if labeled else ""
        )
        raise DataError(
            root / "sequences", f"no label files in sequences/{{{names}}}/labels for split {split!r}{hint}"
        )
    if not pred_root.is_dir():
        raise DataError(pred_root, "prediction folder not found")
    cm = ConfusionMatrix(SEMANTICKITTI.num_classes)
    offenders: list[tuple[Path, list[int]]] = []
    for label_path in tqdm(label_files, desc="evaluate", unit="scan", disable=not progress, leave=False):
        raw = io.read_label_file(label_path)
        gt = SEMANTICKITTI.to_train(raw & 0xFFFF)
        sample_id = f"{label_path.parent.parent.name}/{label_path.stem}"
        raw_pred = read_semantickitti_prediction_raw(pred_root, sample_id, raw.size)
        unknown = SEMANTICKITTI.unknown_raw_ids(raw_pred).tolist()
        if unknown:
            path = semantickitti_prediction_path(pred_root, sample_id)
            if strict:
                raise DataError(path, f"raw label ids outside the SemanticKITTI label map: {unknown[:10]} "
                                      "(--strict; without it they are scored as unlabeled, as the official "
                                      "script does)")  # fmt: skip
            offenders.append((path, unknown))
        cm.update(SEMANTICKITTI.to_train(raw_pred), gt)
    if offenders:
        warnings.warn(unmapped_ids_message(offenders, len(label_files)), UnmappedPredictionWarning, 2)
    return semantickitti_scores(cm, SEMANTICKITTI.class_names), len(label_files)


def _evaluate_nuscenes(
    root: Path, pred_root: Path, split: str, version: str, progress: bool
) -> tuple[Scores, int]:
    from tqdm import tqdm

    from nerfseg.data.labelmaps import NUSCENES
    from nerfseg.data.nuscenes import NuScenesDataset, read_nuscenes_prediction

    dataset = NuScenesDataset(root, version, split, False)
    cm = ConfusionMatrix(NUSCENES.num_classes)
    count = 0
    for index in tqdm(range(len(dataset)), desc="evaluate", unit="scan", disable=not progress, leave=False):
        sample = dataset[index]
        if sample.labels is None:
            raise DataError(root, f"sample {sample.sample_id} has no lidarseg ground truth")
        pred = read_nuscenes_prediction(pred_root, split, sample.sample_id, sample.num_points)
        cm.update(pred, sample.labels)
        count += 1
    if count == 0:
        raise DataError(root, f"no samples in split {split!r} of {version}")
    return nuscenes_scores(cm, NUSCENES.class_names), count
