"""Low-level readers: values, and a DataError naming the file for each kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nerfseg.data import io
from nerfseg.errors import DataError


def test_points_roundtrip_and_truncated(tmp_path):
    pts = np.arange(24, dtype=np.float32).reshape(6, 4)
    path = tmp_path / "a.bin"
    pts.tofile(path)
    np.testing.assert_array_equal(io.read_points_bin(path, 4), pts)
    path.write_bytes(pts.tobytes()[:-3])
    with pytest.raises(DataError, match="whole number of points") as err:
        io.read_points_bin(path, 4)
    assert err.value.path == path and str(path) in str(err.value)
    # 24 floats read as 5-field points is not a whole number either.
    pts.tofile(path)
    with pytest.raises(DataError, match="whole number"):
        io.read_points_bin(path, 5)


def test_points_non_finite_and_missing(tmp_path):
    pts = np.zeros((5, 4), np.float32)
    pts[3, 1] = np.nan
    path = tmp_path / "nan.bin"
    pts.tofile(path)
    with pytest.raises(DataError, match="non-finite.*point index 3"):
        io.read_points_bin(path, 4)
    with pytest.raises(DataError, match="not found"):
        io.read_points_bin(tmp_path / "missing.bin", 4)


def test_label_file_length(tmp_path):
    path = tmp_path / "a.label"
    raw = np.array([10, 40 | (3 << 16), 0], dtype=np.uint32)
    raw.tofile(path)
    np.testing.assert_array_equal(io.read_label_file(path, 3), raw)
    with pytest.raises(DataError, match="has 3 labels but the scan has 4 points") as err:
        io.read_label_file(path, 4)
    assert err.value.path == path
    path.write_bytes(b"\x00" * 5)
    with pytest.raises(DataError, match="uint32"):
        io.read_label_file(path)


def test_read_image(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "a.png"), rgb)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    assert io.read_image(tmp_path / "gray.png").shape == (7, 9, 3)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="unreadable image") as err:
        io.read_image(tmp_path / "bad.png")
    assert err.value.path == tmp_path / "bad.png"
    with pytest.raises(DataError, match="not found"):
        io.read_image(tmp_path / "none.png")


def test_real_odometry_calib(real_data):
    calib = io.read_kitti_calib(real_data / "kitti_odometry_calib" / "calib.txt")
    assert calib["P2"].shape == (3, 4) and calib["Tr"].shape == (4, 4)
    assert calib["P2"][0, 3] == pytest.approx(45.38225) and calib["P0"][1, 2] == pytest.approx(185.2157)
    np.testing.assert_array_equal(calib["Tr"][3], [0, 0, 0, 1])
    assert calib["Tr"][2, 3] == pytest.approx(-0.2921968648686)
    rot = calib["Tr"][:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)


@pytest.mark.parametrize(
    "text, message",
    [
        ("P0: 1 2 3\n", "P0.*12"),
        ("P0: 1 0 0 0 0 1 0 0 0 0 1 0\n", "missing calibration entry 'P1'"),
        ("P0 1 2 3\n", "KEY: numbers"),
        ("P0: 1 a 3\n", "not numbers"),
    ],
)
def test_malformed_calib(tmp_path, text, message):
    path = tmp_path / "calib.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        io.read_kitti_calib(path)
    assert err.value.path == path


def test_poses_and_times(tmp_path):
    (tmp_path / "poses.txt").write_text("1 0 0 1 0 1 0 2 0 0 1 3\n1 0 0 4 0 1 0 5 0 0 1 6\n")
    poses = io.read_kitti_poses(tmp_path / "poses.txt")
    assert poses.shape == (2, 4, 4)
    np.testing.assert_array_equal(poses[1, :3, 3], [4, 5, 6])
    np.testing.assert_array_equal(poses[:, 3], [[0, 0, 0, 1]] * 2)
    (tmp_path / "times.txt").write_text("0.000000e+00\n1.036772e-01\n")
    np.testing.assert_allclose(io.read_times(tmp_path / "times.txt"), [0.0, 0.1036772])
    (tmp_path / "bad.txt").write_text("1 2 3\n")
    with pytest.raises(DataError, match="expected 12"):
        io.read_kitti_poses(tmp_path / "bad.txt")
    with pytest.raises(DataError, match="one time"):
        io.read_times(tmp_path / "bad.txt")
