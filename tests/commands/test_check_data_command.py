"""`nerfseg check-data` names each broken file and exits non-zero; a clean tree passes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kitti_testing import write_tree
from lidar_only_testing import lidar_only_copy
from nerfseg.cli import main
from nerfseg.data.checks import errors
from nerfseg.data.semantickitti import SemanticKittiDataset, check_semantickitti
from nerfseg.errors import DataError


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
    problems = errors(check_semantickitti(tmp_path, label_dir="scribbles", progress=False))
    assert [p.path for p in problems] == [bad_scribble]
    assert errors(check_semantickitti(tmp_path, label_dir="labels", progress=False)) == []
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
    messages = [p.message for p in errors(check_semantickitti(tmp_path, progress=False))]
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


# --------------------------------------------------------------------- LiDAR-only SemanticKITTI copies


def test_lidar_only_real_copy_warns_and_passes(tmp_path, real_data, capsys):
    root = lidar_only_copy(real_data, tmp_path)
    assert main(["check-data", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for name in ("00", "08"):
        line = f"warning: {root / 'sequences' / name}: no calib.txt and no image_2/ (LiDAR only): camera "
        assert line + "supervision is disabled for its 1 scan" in out, out
    methods = "projection, nerf, nerf+mean-teacher, nerf+lasermix"
    assert f"2 warning(s): camera supervision (methods {methods})" in out
    assert out.rstrip().endswith("no problems found (semantickitti)")

    assert main(["check-data", str(root), "--no-progress", "--require-cameras"]) == 1
    lines = capsys.readouterr().out.splitlines()
    error = "no calib.txt and no image_2/ (LiDAR only): the camera methods cannot use its 1 scan"
    assert lines == [
        f"{root / 'sequences' / '00'}: {error} (--require-cameras)",
        f"{root / 'sequences' / '08'}: {error} (--require-cameras)",
        f"2 problem(s) found in {root}",
    ]


def test_missing_images_or_calib_each_warn(tmp_path, capsys):
    write_tree(tmp_path, {"00": 2, "08": 1, "09": 1}, with_images=True)
    (tmp_path / "sequences" / "08" / "calib.txt").unlink()  # images but no calibration
    for png in (tmp_path / "sequences" / "09" / "image_2").iterdir():
        png.unlink()
    (tmp_path / "sequences" / "09" / "image_2").rmdir()  # calibration but no images
    problems = check_semantickitti(tmp_path, progress=False)
    assert [(p.path.name, p.message.split(" (")[0], p.warning) for p in problems] == [
        ("08", "image_2/ but no calib.txt", True),
        ("09", "no image_2/", True),
    ]
    assert main(["check-data", str(tmp_path), "--no-progress"]) == 0
    capsys.readouterr()


# --------------------------------------------------------------- the readers' own checks, run by check-data


def test_times_not_strictly_increasing(tmp_path, capsys):
    write_tree(tmp_path, {"00": 3})
    times = tmp_path / "sequences" / "00" / "times.txt"
    times.write_text("0.0\n0.2\n0.2\n")
    assert main(["check-data", str(tmp_path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    message = "times must increase strictly, but entry 3 (0.2 s) is not later than entry 2 (0.2 s)"
    assert f"{times}: {message}" in out
    with pytest.raises(DataError, match="increase strictly") as err:  # the reader's own rule
        SemanticKittiDataset(tmp_path, "train")
    assert err.value.path == times


def _write_png16(path: Path, height: int, width: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width), 40, np.uint16)).save(path)


@pytest.mark.parametrize("folder", ["image_2", "semantic_2", "depth_2"])
def test_wrong_size_png(tmp_path, capsys, folder):
    """write_tree's images are 40x12; ground truth beside every one; one PNG of `folder` is 30x12."""
    write_tree(tmp_path, {"00": 3}, with_images=True)
    seq = tmp_path / "sequences" / "00"
    for frame in range(3):
        for name in ("semantic_2", "depth_2"):
            _write_png16(seq / name / f"{frame:06d}.png", 12, 40)
    assert main(["check-data", str(tmp_path), "--no-progress"]) == 0
    capsys.readouterr()
    bad = seq / folder / "000001.png"
    if folder == "image_2":
        Image.fromarray(np.zeros((12, 30, 3), np.uint8)).save(bad)
        message = "image is 30x12 pixels, but 000000.png, the sequence's first image_2 image, is 40x12"
    else:
        _write_png16(bad, 12, 30)
        message = "image is 30x12 pixels, but its camera image image_2/000001.png is 40x12"
    assert main(["check-data", str(tmp_path), "--no-progress"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{bad}: {message} (the two must have the same size)", lines
    assert lines[1] == f"1 problem(s) found in {tmp_path}"
    dataset = SemanticKittiDataset(tmp_path, "train")
    assert dataset[0].cameras[0].semantic_path == seq / "semantic_2" / "000000.png"
    with pytest.raises(DataError, match="30x12 pixels") as err:  # the reader refuses the same file
        dataset[1]
    assert err.value.path == bad


def test_unreadable_ground_truth_png(tmp_path, capsys):
    write_tree(tmp_path, {"00": 1}, with_images=True)
    bad = tmp_path / "sequences" / "00" / "depth_2" / "000000.png"
    bad.parent.mkdir()
    Image.fromarray(np.zeros((12, 40, 3), np.uint8)).save(bad)  # RGB, not a 16-bit depth image
    assert main(["check-data", str(tmp_path), "--no-progress"]) == 1
    assert f"{bad}: expected a single-channel 16-bit PNG, got mode RGB" in capsys.readouterr().out


# ------------------------------------------------------------------------ freshly simulated nuScenes data

SMALL_NUSCENES = ["--set", "nuscenes.beams=16", "--set", "nuscenes.azimuth_steps=256"]
SMALL_NUSCENES += ["--set", "nuscenes.image_scale=0.1"]


@pytest.fixture(scope="module")
def simulated_nuscenes(tmp_path_factory):
    """`nerfseg simulate --format nuscenes`, small: 2 key frames in each of two scenes, v1.0-mini."""
    out = tmp_path_factory.mktemp("sim") / "nus"
    argv = ["simulate", str(out), "--format", "nuscenes", "--frames", "2", "--no-progress", *SMALL_NUSCENES]
    assert main(argv) == 0
    return out


def test_simulated_nuscenes_passes_without_version(simulated_nuscenes, capsys):
    assert main(["check-data", str(simulated_nuscenes), "--dataset", "nuscenes", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert f"nuScenes version v1.0-mini (the only v1.0-* folder in {simulated_nuscenes})" in captured.err
    assert "no problems found (nuscenes)" in captured.out


def test_several_versions_ask_which(simulated_nuscenes, tmp_path, capsys):
    root = tmp_path / "nus"
    shutil.copytree(simulated_nuscenes, root, symlinks=True)
    shutil.copytree(root / "v1.0-mini", root / "v1.0-trainval")
    assert main(["check-data", str(root), "--dataset", "nuscenes", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("nerfseg check-data: error: ") and "\n" not in err
    assert "several nuScenes versions (v1.0-mini, v1.0-trainval)" in err and "--version v1.0-mini" in err
    argv = ["check-data", str(root), "--dataset", "nuscenes", "--version", "v1.0-mini", "--no-progress"]
    assert main(argv) == 0


def test_simulated_nuscenes_wrong_size_ground_truth(simulated_nuscenes, tmp_path, capsys):
    from nerfseg.data.nuscenes import NuScenesDataset

    root = tmp_path / "nus"
    shutil.copytree(simulated_nuscenes, root, symlinks=True)
    dataset = NuScenesDataset(root, None, "train")
    camera = dataset[0].cameras[2]
    width, height = camera.image_size
    bad = camera.semantic_path
    _write_png16(bad, height, width - 3)
    assert main(["check-data", str(root), "--dataset", "nuscenes", "--no-progress"]) == 1
    expected = f"{bad}: image is {width - 3}x{height} pixels, but its camera image {camera.image_path.name}"
    assert expected in capsys.readouterr().out
    with pytest.raises(DataError, match="pixels, but its camera image") as err:
        dataset[0]
    assert err.value.path == bad
