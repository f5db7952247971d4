"""`nerfseg parallax` on inputs that leave nothing to measure: an error naming the data, never "0 of 0"."""

from __future__ import annotations

import shutil

import pytest

from nerfseg.cli import main

SMALL = ["--no-progress", "--set", "lidar.beams=8", "--set", "lidar.azimuth_steps=64",
         "--set", "camera.image_scale=0.1", "--set", "lidar.dynamic_time_slices=2"]  # fmt: skip


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallax") / "sim"
    assert main(["simulate", str(root), "--frames", "2", "--sequences", "08", *SMALL]) == 0
    return root


def _one_error(capsys, *needles):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nerfseg parallax: error: "), captured.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "0 of 0" not in captured.out and "%" not in captured.out
    return lines[0]


def test_measures_a_simulated_dataset(sim, capsys):
    assert main(["parallax", str(sim), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "camera-visible LiDAR points" in out and " 0 of 0 " not in out


def test_max_frames_below_one(sim, capsys):
    assert main(["parallax", str(sim), "--no-progress", "--max-frames", "0"]) == 1
    _one_error(capsys, "--max-frames must be >= 1, got 0")


@pytest.mark.parametrize("remove", [("image_2",), ("image_2", "calib.txt")])
def test_data_without_camera_images(sim, tmp_path, capsys, remove):
    copy = tmp_path / "lidar_only"
    shutil.copytree(sim, copy)
    for name in remove:
        path = copy / "sequences" / "08" / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert main(["parallax", str(copy), "--no-progress"]) == 1
    _one_error(capsys, f"{copy}: no camera image in the 2 scan(s) read", "nothing to measure")


def test_no_point_projects_into_the_camera(sim, tmp_path, capsys):
    """A calibration that puts the camera 1 km behind, looking away: images exist, no point is visible."""
    copy = tmp_path / "away"
    shutil.copytree(sim, copy)
    calib = copy / "sequences" / "08" / "calib.txt"
    lines = [
        "Tr: 0 -1 0 0 0 0 -1 0 -1 0 0 -1000" if line.startswith("Tr:") else line
        for line in calib.read_text().splitlines()
    ]
    calib.write_text("\n".join(lines) + "\n")
    assert main(["parallax", str(copy), "--no-progress"]) == 1
    _one_error(capsys, "no labeled LiDAR point of the 2 scan(s) projects into their 2 camera image(s)")


def test_json_path_checked_before_the_work(sim, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert main(["parallax", str(sim), "--no-progress", "--json", str(afile / "p.json")]) == 1
    _one_error(capsys, "--json: cannot write this file", f"{afile} is a file")
    assert main(["parallax", str(sim), "--no-progress", "--json", str(tmp_path)]) == 1
    _one_error(capsys, "--json must be a file name, but this is a folder")
    assert afile.read_text() == "keep"
