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


def _tree_with_unknown_ids(tmp_path, files: int = 5):
    raw = write_tree(tmp_path / "data", {"08": files}, points_per_scan=20, raw_ids=(10, 40))
    for sample_id, labels in sorted(raw.items()):
        seq, frame = sample_id.split("/")
        out = tmp_path / "pred" / "sequences" / seq / "predictions"
        out.mkdir(parents=True, exist_ok=True)
        predicted = labels.copy()
        predicted[:2] = [7, 300]  # raw ids outside the SemanticKITTI label map
        predicted.astype("<u4").tofile(out / f"{frame}.label")
    return ["evaluate", "--dataset", "semantickitti", "--data", str(tmp_path / "data"),
            "--predictions", str(tmp_path / "pred"), "--no-progress"]  # fmt: skip


def test_unknown_raw_ids_warn_once_naming_files_and_ids(tmp_path, capsys):
    argv = _tree_with_unknown_ids(tmp_path)
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    expected = ("nerfseg evaluate: warning: 5 of 5 prediction file(s) hold raw label ids outside the "
                "SemanticKITTI label map (7, 300)")
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert lines[0].count(".label") == 3 and "and 2 more file(s)" in lines[0]
    assert "mIoU" in captured.out
    assert main([*argv, "--strict"]) == 1
    err = capsys.readouterr().err
    assert "000000.label: raw label ids outside the SemanticKITTI label map: [7, 300] (--strict" in err
    assert len(err.strip().splitlines()) == 1


def test_json_checked_before_the_work_and_unknown_split(tmp_path, capsys):
    """--json that cannot be written fails at once (here the predictions do not even exist yet)."""
    write_tree(tmp_path / "data", {"08": 1})
    afile = tmp_path / "afile"
    afile.write_text("keep")
    base = ["evaluate", "--dataset", "semantickitti", "--data", str(tmp_path / "data"),
            "--predictions", str(tmp_path / "nowhere"), "--no-progress"]  # fmt: skip
    assert main([*base, "--json", str(afile / "s.json")]) == 1
    err = capsys.readouterr().err
    assert f"{afile / 's.json'}: --json: cannot write this file: {afile} is a file" in err
    assert "nowhere" not in err and "Traceback" not in err
    assert main([*base, "--json", str(tmp_path)]) == 1
    assert "--json must be a file name, but this is a folder" in capsys.readouterr().err
    assert main([*base, "--split", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert "unknown SemanticKITTI split 'nosuch'" in err and "Traceback" not in err
    assert afile.read_text() == "keep"
