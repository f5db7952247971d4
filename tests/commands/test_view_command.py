"""`nerfseg view` end to end: the page's colourings from the dataset's labels and PRED's files (SemanticKITTI,
the real LiDAR-only sample, nuScenes), and one clear line for each bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kitti_testing import write_tree
from nerfseg.cli import main
from nerfseg.viz.scan_page import LIBRARY_NAME, decode_array, figure_colourings, page_figure


def _colours(page: Path) -> dict[str, np.ndarray]:
    return figure_colourings(page_figure(page.read_text()))


def _write_prediction(root: Path, sample_id: str, raw: np.ndarray) -> None:
    seq, frame = sample_id.split("/")
    folder = root / "sequences" / seq / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    np.asarray(raw, "<u4").tofile(folder / f"{frame}.label")


def test_view_semantickitti_truth_prediction_error(tmp_path, capsys):
    labels = write_tree(tmp_path / "data", {"08": 2}, points_per_scan=30)
    raw = (labels["08/000001"] & 0xFFFF).astype(np.int64)
    pred = np.where(raw == 10, 40, raw)  # every car predicted road
    _write_prediction(tmp_path / "pred", "08/000001", pred)
    out = tmp_path / "out" / "scan.html"
    argv = ["view", "--data", str(tmp_path / "data"), "--frame", "08/000001", "--out", str(out)]
    assert main([*argv, "--predictions", str(tmp_path / "pred")]) == 0
    assert "wrote" in capsys.readouterr().out
    colours = _colours(out)
    assert list(colours) == ["truth", "prediction", "error"]
    # Independent reference: the official learning map by hand for the ids write_tree draws.
    by_hand = {0: 19, 10: 0, 40: 8, 50: 12, 70: 14, 252: 0}  # unlabeled -> ignored (palette entry 19)
    assert colours["truth"].tolist() == [by_hand[r] for r in raw]
    assert colours["prediction"].tolist() == [by_hand[r] for r in pred]
    expected = [2 if r == 0 else (1 if r == 10 else 0) for r in raw]  # ignored / wrong car / correct
    assert colours["error"].tolist() == expected
    points = np.fromfile(tmp_path / "data/sequences/08/velodyne/000001.bin", "<f4").reshape(-1, 4)
    first = page_figure(out.read_text())["data"][0]
    assert np.array_equal(decode_array(first["z"]), points[:, 2])


def test_view_real_lidar_only_sample_without_calibration(real_data, tmp_path):
    out = tmp_path / "real.html"
    root = real_data / "semantickitti_50pt"
    assert main(["view", "--data", str(root), "--frame", "00/000000", "--out", str(out)]) == 0
    colours = _colours(out)
    assert list(colours) == ["truth"]
    raw = np.fromfile(root / "sequences/00/labels/000000.label", "<u4") & 0xFFFF
    # README: raw ids 0, 50, 52, 70, 71, 80 -> ignored, building, ignored (other-structure), vegetation,
    # trunk, pole.
    by_hand = {0: 19, 50: 12, 52: 19, 70: 14, 71: 15, 80: 17}
    assert colours["truth"].tolist() == [by_hand[int(r)] for r in raw]
    assert "semantickitti 00/000000: 50 points" in out.read_text()


def test_view_shared_library_beside_the_page(tmp_path):
    write_tree(tmp_path / "data", {"08": 1})
    out = tmp_path / "pages" / "a.html"
    argv = ["view", "--data", str(tmp_path / "data"), "--frame", "08/000000", "--out", str(out)]
    assert main([*argv, "--library", "beside"]) == 0
    assert (tmp_path / "pages" / LIBRARY_NAME).stat().st_size > 1_000_000
    assert f'src="{LIBRARY_NAME}"' in out.read_text() and out.stat().st_size < 200_000


def test_view_software_max_points_reaches_the_page(tmp_path):
    write_tree(tmp_path / "data", {"08": 1})
    argv = ["view", "--data", str(tmp_path / "data"), "--frame", "08/000000"]
    assert main([*argv, "--out", str(tmp_path / "d.html")]) == 0
    assert "var SOFTWARE_MAX_POINTS = 15000;" in (tmp_path / "d.html").read_text()
    assert main([*argv, "--out", str(tmp_path / "all.html"), "--software-max-points", "0"]) == 0
    assert "var SOFTWARE_MAX_POINTS = 0;" in (tmp_path / "all.html").read_text()


def test_view_unlabeled_scan_is_coloured_by_height(tmp_path, capsys):
    write_tree(tmp_path / "data", {"11": 1})
    (tmp_path / "data/sequences/11/labels/000000.label").unlink()
    out = tmp_path / "h.html"
    assert main(["view", "--data", str(tmp_path / "data"), "--frame", "11/000000", "--out", str(out)]) == 0
    assert list(_colours(out)) == ["height"]
    assert "no labels file for 000000: the page has no ground truth" in capsys.readouterr().err


def test_view_unknown_prediction_ids_are_grey_and_named(tmp_path, capsys):
    write_tree(tmp_path / "data", {"08": 1}, points_per_scan=10)
    pred = np.full(10, 40, np.uint32)
    pred[:3] = 77  # not a SemanticKITTI id
    _write_prediction(tmp_path / "pred", "08/000000", pred)
    out = tmp_path / "p.html"
    argv = ["view", "--data", str(tmp_path / "data"), "--frame", "08/000000", "--out", str(out)]
    assert main([*argv, "--predictions", str(tmp_path / "pred")]) == 0
    err = capsys.readouterr().err
    assert "predictions/000000.label: 3 point(s) with raw ids the label map does not define (77)" in err
    assert _colours(out)["prediction"].tolist() == [19] * 3 + [8] * 7


def test_view_nuscenes_real_tree(real_data, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "data"))
    from nuscenes_tree import build_real_tree

    tree = build_real_tree(tmp_path / "nus", real_data)
    raw = np.fromfile(tree.label_file_b, dtype=np.uint8)
    # Devkit fine -> coarse (train id = coarse - 1): 17 car, 24 driveable, 27 terrain, 28 manmade,
    # 30 vegetation; 31 ego -> ignored (palette entry 16).
    train = {17: 3, 24: 10, 27: 13, 28: 14, 30: 15, 31: 16}
    pred = np.full(raw.size, 4, np.uint8)  # class index 4 = car everywhere
    folder = tmp_path / "pred" / "lidarseg" / "mini_val"
    folder.mkdir(parents=True)
    (folder / f"{tree.lidar_token_b}_lidarseg.bin").write_bytes(pred.tobytes())
    out = tmp_path / "nus.html"
    argv = ["view", "--data", str(tree.root), "--frame", tree.lidar_token_b, "--out", str(out)]
    assert main([*argv, "--predictions", str(tmp_path / "pred")]) == 0  # dataset and version detected
    colours = _colours(out)
    assert colours["truth"].tolist() == [train[int(r)] for r in raw]
    assert colours["prediction"].tolist() == [3] * raw.size
    assert colours["error"].tolist() == [2 if r == 31 else (0 if r == 17 else 1) for r in raw]
    assert "v1.0-mini" in capsys.readouterr().err  # the detected version is named


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "missing_frame",
            "velodyne/000009.bin: scan not found (--frame 08/000009); sequences with scans: 08",
        ),
        ("bad_frame", "--frame must be SS/FFFFFF for semantickitti (e.g. 08/000010), got '000001'"),
        ("out_is_folder", "is a folder; give the page's file name"),
        ("no_pred_folder", "nosuch: prediction folder not found (--predictions)"),
        ("missing_pred", "predictions/000000.label: prediction file not found"),
        ("short_pred", "predictions/000000.label: has 5 labels but the scan has 20 points"),
        ("not_a_dataset", "holds neither sequences/ nor v1.0-*/"),
        ("out_under_file", "cannot write the page"),
        ("nuscenes_token", "no LIDAR_TOP key frame with sample_data token 'nosuch'"),
        ("negative_max_points", "--software-max-points must be >= 0 (0 = every point), got -3"),
    ],
)
def test_view_bad_inputs_are_one_line_errors(case, expected, tmp_path, capsys, real_data, monkeypatch):
    write_tree(tmp_path / "data", {"08": 1})
    data, frame, out = tmp_path / "data", "08/000000", tmp_path / "x.html"
    extra: list[str] = []
    if case == "missing_frame":
        frame = "08/000009"
    elif case == "bad_frame":
        frame = "000001"
    elif case == "out_is_folder":
        out = tmp_path
    elif case == "no_pred_folder":
        extra = ["--predictions", str(tmp_path / "nosuch")]
    elif case == "missing_pred":
        (tmp_path / "pred").mkdir()
        extra = ["--predictions", str(tmp_path / "pred")]
    elif case == "short_pred":
        _write_prediction(tmp_path / "pred", frame, np.zeros(5))
        extra = ["--predictions", str(tmp_path / "pred")]
    elif case == "not_a_dataset":
        data = tmp_path / "empty"
        data.mkdir()
    elif case == "out_under_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "x.html"
    elif case == "nuscenes_token":
        monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "data"))
        from nuscenes_tree import build_real_tree

        data, frame = build_real_tree(tmp_path / "nus", real_data).root, "nosuch"
    elif case == "negative_max_points":
        extra = ["--software-max-points", "-3"]
    assert main(["view", "--data", str(data), "--frame", frame, "--out", str(out), *extra]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("nerfseg view: error:")]
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in err
    assert not out.is_file()
