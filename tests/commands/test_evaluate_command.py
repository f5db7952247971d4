"""`nerfseg evaluate` end to end: table on stdout, JSON file, clear one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kitti_testing import write_tree
from nerfseg.cli import main


def test_evaluate_prints_table_and_writes_json(tmp_path, capsys):
    raw = write_tree(tmp_path / "data", {"08": 2}, raw_ids=(10, 40))
    for sample_id, labels in raw.items():
        seq, frame = sample_id.split("/")
        out = tmp_path / "pred" / "sequences" / seq / "predictions"
        out.mkdir(parents=True, exist_ok=True)
        np.where((labels & 0xFFFF) == 10, 10, 0).astype("<u4").tofile(out / f"{frame}.label")
    argv = ["evaluate", "--dataset", "semantickitti", "--data", str(tmp_path / "data")]
    argv += ["--predictions", str(tmp_path / "pred"), "--json", str(tmp_path / "s.json"), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "car" in printed and "100.00" in printed and "mIoU" in printed and "2 scans" in printed
    scores = json.loads((tmp_path / "s.json").read_text())
    # car perfect, road always predicted unlabeled -> 0: mIoU 1/19; accuracy = car tp / car predictions = 1.
    assert scores["per_class_iou"]["car"] == pytest.approx(1.0)
    assert scores["per_class_iou"]["road"] == 0.0
    assert scores["miou"] == pytest.approx(1 / 19) and scores["accuracy"] == pytest.approx(1.0)
    assert scores["num_scans"] == 2


def test_evaluate_missing_prediction_is_one_line_error(tmp_path, capsys):
    write_tree(tmp_path / "data", {"08": 1})
    (tmp_path / "pred").mkdir()
    argv = ["evaluate", "--dataset", "semantickitti", "--data", str(tmp_path / "data")]
    assert main([*argv, "--predictions", str(tmp_path / "pred"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "predictions/000000.label: prediction file not found" in err and "Traceback" not in err
