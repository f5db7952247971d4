"""open_dataset dispatches to the right reader."""

from __future__ import annotations

import pytest

from kitti_testing import write_tree
from nerfseg.data.datasets import DatasetKind, open_dataset
from nerfseg.data.labelmaps import NUSCENES, SEMANTICKITTI
from nerfseg.data.semantickitti import SemanticKittiDataset


def test_dispatch_kitti_kinds(tmp_path):
    write_tree(tmp_path, {"00": 1}, label_dir="scribbles")
    write_tree(tmp_path, {"08": 2})
    ds = open_dataset("semantickitti", tmp_path, "val")
    assert isinstance(ds, SemanticKittiDataset) and len(ds) == 2
    scribble = open_dataset(DatasetKind.SCRIBBLEKITTI, tmp_path, "train")
    assert scribble.label_dir == "scribbles" and scribble[0].labels is not None
    assert open_dataset("semantickitti", tmp_path, "train", sequences=[8]).sample_ids[0] == "08/000000"
    assert (
        DatasetKind("nuscenes").label_map is NUSCENES and DatasetKind.SCRIBBLEKITTI.label_map is SEMANTICKITTI
    )
    with pytest.raises(ValueError):
        open_dataset("kitti360", tmp_path, "train")
