"""Config loading, scribbles, scene content, determinism, BEV images, the commands."""

from __future__ import annotations

import numpy as np
import pytest
from sim_testing import tiny_config

from nerfseg.errors import ConfigError
from nerfseg.sim.config import SceneConfig, load_sim_config, sim_config_from_dict
from nerfseg.sim.scene import generate_scene
from nerfseg.sim.scribbles import scribble_mask


def test_config_yaml_and_errors(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text("frames: 7\nlidar:\n  beams: 32\n  deskew: false\ncamera:\n  time_offset_s: 0.02\n")
    config = load_sim_config(path)
    assert (config.frames, config.lidar.beams, config.lidar.deskew, config.camera.time_offset_s) == (
        7,
        32,
        False,
        0.02,
    )
    assert config.lidar.azimuth_steps == 512  # untouched defaults stay
    with pytest.raises(ConfigError, match="unknown key 'lidar.beamz'"):
        sim_config_from_dict({"lidar": {"beamz": 3}})
    with pytest.raises(ConfigError, match="frames must be an integer"):
        sim_config_from_dict({"frames": 2.5})
    with pytest.raises(ConfigError, match="no_parallax must be true or false"):
        sim_config_from_dict({"no_parallax": "yes"})
    with pytest.raises(ConfigError, match=r"lidar.dropout must be in \[0, 1\), got 1.5"):
        sim_config_from_dict({"lidar": {"dropout": 1.5}})
    with pytest.raises(ConfigError, match="nuscenes.version"):
        sim_config_from_dict({"nuscenes": {"version": "v2"}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("frames: [\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_sim_config(bad)


def test_scribbles_fraction_and_classes():
    rng = np.random.default_rng(0)
    xyz = np.concatenate([rng.uniform(-20, 20, (9000, 3)) * [1, 1, 0], rng.uniform(-20, 20, (1000, 3))])
    semantic = np.concatenate([np.full(9000, 40), np.full(1000, 10)])
    semantic[:50] = 0  # unlabeled points are never scribbled
    mask = scribble_mask(xyz, semantic, 0.08, rng)
    assert 0.08 <= mask.mean() <= 0.10
    assert not mask[:50].any()
    assert mask[semantic == 10].any()  # the small class gets strokes too
    assert not scribble_mask(xyz, np.zeros(10000, int), 0.08, rng).any()


def test_scene_has_many_classes_and_is_deterministic():
    a = generate_scene(SceneConfig(), np.random.default_rng(5), 0.0, 80.0, 8.0)
    b = generate_scene(SceneConfig(), np.random.default_rng(5), 0.0, 80.0, 8.0)
    c = generate_scene(SceneConfig(), np.random.default_rng(6), 0.0, 80.0, 8.0)
    assert np.array_equal(a.static.vertices, b.static.vertices)
    assert not np.array_equal(a.static.vertices[:500], c.static.vertices[:500]) or len(a.moving) != len(
        c.moving
    )
    from nerfseg.data.labelmaps import SEMANTICKITTI

    raw = np.union1d(a.static.semantic, a.dynamic_at(0.0).semantic)
    train = set(SEMANTICKITTI.to_train(raw).tolist()) - {255}
    assert len(train) >= 12
    # Things have instance ids, stuff has none.
    things = np.isin(a.static.semantic, [10, 11, 18, 30])
    assert (a.static.instance[things] > 0).all() and (a.static.instance[~things] == 0).all()


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    from nerfseg.sim.simulate import OutputFormat, simulate

    config = tiny_config(frames=2)
    for name, workers in (("a", 1), ("b", 2)):
        simulate(
            tmp_path / name, config, OutputFormat.SEMANTICKITTI, ["00"], show_progress=False, workers=workers
        )
    a_root, b_root = tmp_path / "a/sequences/00", tmp_path / "b/sequences/00"
    files = sorted(p.relative_to(a_root) for p in a_root.rglob("*") if p.is_file())
    assert len(files) == 6 * 2 + 4
    for rel in files:
        assert (a_root / rel).read_bytes() == (b_root / rel).read_bytes(), rel
    other = tmp_path / "c"
    simulate(other, tiny_config(frames=1, seed=1), OutputFormat.SEMANTICKITTI, ["00"], show_progress=False)
    assert (other / "sequences/00/velodyne/000000.bin").read_bytes() != (
        a_root / "velodyne/000000.bin"
    ).read_bytes()


def test_bev_pixels():
    from nerfseg.viz.bev import bev_image, height_colors, raw_id_colors

    pts = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 10.0, 1.0], [100.0, 0.0, 0.0]])
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]], np.uint8)
    image = bev_image(pts, colors, extent_m=20.0, resolution_m=1.0)
    assert image.shape == (40, 40, 3)
    assert image[10, 20].tolist() == [255, 0, 0]  # forward is up: row (20 - 10)
    assert image[20, 10].tolist() == [0, 0, 255]  # left is left; the higher point wins
    assert (image == 9).all(-1).sum() == 0 and (image.sum(-1) > 0).sum() == 2
    assert height_colors(np.array([-5.0, 10.0])).tolist() == [[0, 0, 255], [255, 0, 0]]
    from nerfseg.data.labelmaps import SEMANTICKITTI

    car = int(SEMANTICKITTI.to_train(np.array([10]))[0])
    assert raw_id_colors(np.array([10, 252]))[0].tolist() == SEMANTICKITTI.colors[car].tolist()
    assert raw_id_colors(np.array([10, 252]))[1].tolist() == SEMANTICKITTI.colors[car].tolist()


def test_parse_sequences():
    from nerfseg.sim.simulate import parse_sequences

    assert parse_sequences("00,08") == ["00", "08"]
    assert parse_sequences("3") == ["00", "01", "08"]
    assert parse_sequences("1") == ["00"]
    assert parse_sequences("5,7") == ["05", "07"]
    with pytest.raises(ConfigError):
        parse_sequences("00,00")
    with pytest.raises(ConfigError):
        parse_sequences("a,b")


def test_simulate_and_parallax_commands(tmp_path, capsys):
    from nerfseg.cli import main

    out = tmp_path / "sim"
    args = [
        "simulate",
        str(out),
        "--frames",
        "1",
        "--sequences",
        "00",
        "--no-progress",
        "--no-parallax",
        "--preview",
        "--set",
        "camera.image_scale=0.25",
        "--set",
        "lidar.beams=16",
        "--set",
        "lidar.azimuth_steps=256",
    ]
    assert main(args) == 0
    assert "wrote 1 sequence(s) (00) x 1 frames" in capsys.readouterr().out
    assert (out / "sim_config.yaml").is_file() and (out / "sequences/00/velodyne/000000.bin").is_file()
    from PIL import Image

    bev = Image.open(out / "previews/00_000000_bev.png")
    camera = Image.open(out / "previews/00_000000_camera.png")
    assert bev.size == (800, 800) and camera.size == (310, 2 * 94)
    assert np.asarray(bev).any()  # points were drawn
    report = tmp_path / "p.json"
    assert main(["parallax", str(out), "--no-progress", "--per-class", "--json", str(report)]) == 0
    text = capsys.readouterr().out
    assert "parallax error" in text and "road" in text
    import json

    data = json.loads(report.read_text())
    assert data["visible_points"] > 0 and 0 <= data["parallax_fraction"] < 0.1
    assert main(["simulate", str(out), "--set", "lidar.beamz=3"]) == 1
    assert "unknown key" in capsys.readouterr().err
    assert main(["parallax", str(tmp_path / "nothing"), "--no-progress"]) == 1
