"""One entry point to open any supported dataset by kind."""

from __future__ import annotations

import enum
from pathlib import Path

from nerfseg.data.labelmaps import NUSCENES, SEMANTICKITTI, LabelMap


class DatasetKind(enum.Enum):
    """The supported dataset layouts."""

    SEMANTICKITTI = "semantickitti"
    SCRIBBLEKITTI = "scribblekitti"
    NUSCENES = "nuscenes"

    @property
    def label_map(self) -> LabelMap:
        return NUSCENES if self is DatasetKind.NUSCENES else SEMANTICKITTI


DATASET_CHOICES: tuple[str, ...] = tuple(kind.value for kind in DatasetKind)
"""The values accepted by the commands' ``--dataset`` option."""


def open_dataset(kind: DatasetKind | str, root: str | Path, split: str, load_images: bool = False, **options):
    """Open a dataset.

    Args:
        kind: a DatasetKind or its value ("semantickitti", "scribblekitti", "nuscenes").
        root: dataset root folder.
        split: "train", "val" or "test".
        load_images: read camera images with each sample.
        options: reader specific keywords: SemanticKITTI / ScribbleKITTI ``sequences``, ``label_dir``
            (SemanticKITTI only); nuScenes ``version`` (default None: the one ``v1.0-*`` folder under
            ``root``).
    Returns:
        A sequence of :class:`~nerfseg.data.sample.Sample` (``len``, indexing, ``sample_ids``).
    """
    kind = DatasetKind(kind)
    match kind:
        case DatasetKind.SEMANTICKITTI:
            from nerfseg.data.semantickitti import SemanticKittiDataset

            return SemanticKittiDataset(root, split=split, load_images=load_images, **options)
        case DatasetKind.SCRIBBLEKITTI:
            from nerfseg.data.semantickitti import SemanticKittiDataset

            return SemanticKittiDataset.scribblekitti(root, split=split, load_images=load_images, **options)
        case DatasetKind.NUSCENES:
            from nerfseg.data.nuscenes import NuScenesDataset

            version = options.pop("version", None)  # None: the one v1.0-* folder under root
            return NuScenesDataset(root, version, split, load_images, **options)
    raise AssertionError(kind)  # pragma: no cover
