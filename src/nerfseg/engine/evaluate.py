"""Evaluation of benchmark-format prediction files against a dataset's ground truth, scored by the
official rules (:mod:`nerfseg.engine.metrics`).

SemanticKITTI / ScribbleKITTI: as semantic-kitti-api ``evaluate_semantics.py``: every
``ROOT/sequences/SS/labels/*.label`` of the split's sequences is paired with
``PRED/sequences/SS/predictions/*.label`` (same name); both are read as uint32, their lower 16 bits mapped
through the learning map. ScribbleKITTI is evaluated on the dense ``labels/``, as its benchmark is.
nuScenes: ``PRED/lidarseg/<split>/<lidar token>_lidarseg.bin`` (uint8, classes 1..16) for every keyframe of
the split, scored by the nuscenes-devkit lidarseg rule.
"""

from __future__ import annotations

import os
from pathlib import Path

from nerfseg.data import io
from nerfseg.data.datasets import DatasetKind
from nerfseg.data.labelmaps import SEMANTICKITTI
from nerfseg.data.submission import read_semantickitti_prediction
from nerfseg.engine.metrics import ConfusionMatrix, Scores, nuscenes_scores, semantickitti_scores
from nerfseg.errors import DataError

SPLIT_ALIASES = {"valid": "val", "validation": "val"}


def evaluate_predictions(
    kind: DatasetKind | str,
    data_root: str | Path,
    pred_root: str | Path,
    split: str = "val",
    version: str = "v1.0-trainval",
    progress: bool = True,
) -> tuple[Scores, int]:
    """Score a folder of predictions. Returns (scores, number of scans evaluated).

    Raises:
        DataError: no ground truth in the split, or a prediction file that is missing or whose length
            differs from its ground truth (the message names the file).
    """
    kind = DatasetKind(kind)
    split = SPLIT_ALIASES.get(split, split)
    if kind is DatasetKind.NUSCENES:
        return _evaluate_nuscenes(Path(data_root), Path(pred_root), split, version, progress)
    return _evaluate_semantickitti(Path(data_root), Path(pred_root), split, progress)


def _evaluate_semantickitti(root: Path, pred_root: Path, split: str, progress: bool) -> tuple[Scores, int]:
    from tqdm import tqdm

    from nerfseg.data.semantickitti import SPLIT_SEQUENCES, sequence_name

    if split not in SPLIT_SEQUENCES:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEQUENCES)}, got {split!r}")
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
    for label_path in tqdm(label_files, desc="evaluate", unit="scan", disable=not progress, leave=False):
        raw = io.read_label_file(label_path)
        gt = SEMANTICKITTI.to_train(raw & 0xFFFF)
        sample_id = f"{label_path.parent.parent.name}/{label_path.stem}"
        pred = read_semantickitti_prediction(pred_root, sample_id, raw.size)
        cm.update(pred, gt)
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
