"""`nerfseg check-data` names each broken file and exits non-zero; a clean tree passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kitti_testing import write_tree
from nerfseg.cli import main
from nerfseg.data.semantickitti import check_semantickitti


def test_clean_tree_passes(tmp_path, capsys):
    write_tree(tmp_path, {"00": 2, "08": 1}, with_images=True)
    assert main(["check-data", str(tmp_path), "--dataset", "semantickitti", "--no-progress"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_every_problem_named(tmp_path, capsys):
    write_tree(tmp_path, {"00": 6, "08": 1}, points_per_scan=10, with_images=True)
    seq = tmp_path / "sequences" / "00"
    truncated = seq / "velodyne" / "000000.bin"
    truncated.write_bytes(truncated.read_bytes()[:-6])
    short_label = seq / "labels" / "000001.label"
    np.zeros(9, np.uint32).tofile(short_label)
    nan_scan = seq / "velodyne" / "000002.bin"
    points = np.fromfile(nan_scan, dtype=np.float32).reshape(-1, 4)
    points[4, 0] = np.nan
    points.tofile(nan_scan)
    unknown = seq / "labels" / "000003.label"
    np.full(10, 123, np.uint32).tofile(unknown)
    bad_image = seq / "image_2" / "000004.png"
    bad_image.write_bytes(b"\x89PNG garbage")
    (seq / "labels" / "000005.label").unlink()
    (tmp_path / "sequences" / "08" / "calib.txt").write_text("P0: 1 2\n")
    (seq / "times.txt").write_text("0.0\n0.1\n")

    assert main(["check-data", str(tmp_path), "--dataset", "semantickitti", "--no-progress"]) == 1
    lines = capsys.readouterr().out.splitlines()
    expected = {
        truncated: "whole number of points",
        short_label: "has 9 labels but the scan has 10 points",
        nan_scan: "non-finite",
        unknown: "unknown raw label ids [123]",
        bad_image: "unreadable image",
        seq / "labels" / "000005.label": "not found",
        tmp_path / "sequences" / "08" / "calib.txt": "12",
        seq / "times.txt": "has 2 entries but the sequence has 6 scans",
    }
    for path, message in expected.items():
        assert any(line.startswith(f"{path}: ") and message in line for line in lines), (path, lines)
    assert lines[-1].startswith(f"{len(expected)} problem(s) found")


def test_scribblekitti_checks_scribbles_and_dense_labels(tmp_path, capsys):
    write_tree(tmp_path, {"00": 1}, label_dir="scribbles", points_per_scan=4)
    write_tree(tmp_path, {"08": 1}, points_per_scan=4)
    bad_scribble = tmp_path / "sequences" / "00" / "scribbles" / "000000.label"
    np.zeros(3, np.uint32).tofile(bad_scribble)
    problems = check_semantickitti(tmp_path, label_dir="scribbles", progress=False)
    assert [p.path for p in problems] == [bad_scribble]
    assert check_semantickitti(tmp_path, label_dir="labels", progress=False) == []
    bad_dense = tmp_path / "sequences" / "08" / "labels" / "000000.label"
    np.zeros(5, np.uint32).tofile(bad_dense)
    assert main(["check-data", str(tmp_path), "--dataset", "scribblekitti", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"{bad_scribble}: " in out and f"{bad_dense}: " in out


def test_nan_scan_still_gets_its_label_length_checked(tmp_path):
    write_tree(tmp_path, {"00": 1}, points_per_scan=6)
    scan = tmp_path / "sequences" / "00" / "velodyne" / "000000.bin"
    points = np.fromfile(scan, dtype=np.float32).reshape(-1, 4)
    points[0, 2] = np.inf
    points.tofile(scan)
    np.zeros(5, np.uint32).tofile(tmp_path / "sequences" / "00" / "labels" / "000000.label")
    messages = [p.message for p in check_semantickitti(tmp_path, progress=False)]
    assert (
        len(messages) == 2
        and "non-finite" in messages[0]
        and "has 5 labels but the scan has 6" in messages[1]
    )
    assert check_semantickitti(tmp_path / "nothing", progress=False)[0].message.startswith("folder not found")


def test_nuscenes_dispatch(tmp_path, real_data, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "data"))
    from nuscenes_tree import build_real_tree, replace_with_bytes

    tree = build_real_tree(tmp_path / "nus", real_data)
    argv = ["check-data", str(tree.root), "--dataset", "nuscenes", "--version", "v1.0-mini", "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().out
    capsys.readouterr()
    replace_with_bytes(tree.label_file_b, np.zeros(39, np.uint8).tobytes())
    assert main(argv) == 1
    assert str(tree.label_file_b) in capsys.readouterr().out
