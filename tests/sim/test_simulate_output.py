"""`nerfseg simulate`'s output folder: an existing dataset is never mixed with a new one, --overwrite replaces
it whole (written beside it, swapped in once complete), an interrupted run leaves OUT as it was, and the
config errors name the option that is wrong."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from nerfseg.cli import main
from nerfseg.errors import ConfigError
from nerfseg.sim.config import SimConfig, validate_sim_config

SMALL = ["--no-progress", "--set", "lidar.beams=8", "--set", "lidar.azimuth_steps=64",
         "--set", "camera.image_scale=0.1", "--set", "lidar.dynamic_time_slices=2"]  # fmt: skip


def _tree(root):
    """{relative path: sha1} of every file under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _simulate(out, *extra):
    return main(["simulate", str(out), *SMALL, *extra])


def _one_error(capsys, *needles):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nerfseg simulate: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def dataset(tmp_path):
    """OUT holding a 2-frame simulation of sequences 00 and 08, plus a user's file and a mask cache."""
    out = tmp_path / "sim"
    assert _simulate(out, "--frames", "2", "--sequences", "00,08") == 0
    (out / "notes.txt").write_text("mine")
    (out / ".nerfseg_cache" / "masks").mkdir(parents=True)
    (out / ".nerfseg_cache" / "masks" / "entry.npz").write_bytes(b"cached")
    return out


def test_a_non_empty_folder_is_refused_and_left_unchanged(dataset, capsys):
    before = _tree(dataset)
    assert _simulate(dataset, "--frames", "1", "--sequences", "00", "--seed", "3") == 1
    _one_error(capsys, f"{dataset}: OUT is not empty", "sequences", "--overwrite")
    assert _tree(dataset) == before


def test_overwrite_replaces_the_whole_dataset_and_keeps_other_files(dataset, tmp_path, capsys):
    assert _simulate(dataset, "--frames", "1", "--sequences", "08", "--seed", "3", "--overwrite") == 0
    after = _tree(dataset)
    # Only the new dataset: sequence 00 and frame 000001 of the old one are gone, no leftovers.
    assert sorted(p.name for p in (dataset / "sequences").iterdir()) == ["08"]
    assert sorted(p.name for p in (dataset / "sequences" / "08" / "velodyne").iterdir()) == ["000000.bin"]
    assert len((dataset / "sequences" / "08" / "poses.txt").read_text().splitlines()) == 1
    assert len((dataset / "sequences" / "08" / "times.txt").read_text().splitlines()) == 1
    assert "seed: 3" in (dataset / "sim_config.yaml").read_text()
    assert sorted(p.name for p in dataset.iterdir()) == [".nerfseg_cache", "notes.txt", "sequences",
                                                         "sim_config.yaml"]  # fmt: skip
    assert (dataset / "notes.txt").read_text() == "mine"
    assert (dataset / ".nerfseg_cache" / "masks" / "entry.npz").read_bytes() == b"cached"
    # The same as simulating into an empty folder.
    fresh = tmp_path / "fresh"
    assert _simulate(fresh, "--frames", "1", "--sequences", "08", "--seed", "3") == 0
    expected = {k: v for k, v in after.items() if k.startswith(("sequences/", "sim_config.yaml"))}
    assert _tree(fresh) == expected


def test_an_interrupted_run_leaves_out_as_it_was(dataset, monkeypatch, capsys):
    """A failure (here: a Ctrl-C after the first sequence was written) removes the staged data."""
    import nerfseg.sim.kitti as kitti

    real = kitti.write_kitti_sequence
    calls = []

    def interrupted(out, seq, *args, **kwargs):
        calls.append(seq)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(out, seq, *args, **kwargs)

    monkeypatch.setattr(kitti, "write_kitti_sequence", interrupted)
    before = _tree(dataset)
    assert _simulate(dataset, "--frames", "1", "--sequences", "00,08", "--overwrite") == 130
    assert calls == ["00", "08"]
    assert _tree(dataset) == before
    assert sorted(p.name for p in dataset.iterdir()) == [".nerfseg_cache", "notes.txt", "sequences",
                                                         "sim_config.yaml"]  # fmt: skip


def test_an_interrupted_run_into_a_new_folder_leaves_nothing(tmp_path, monkeypatch):
    import nerfseg.sim.kitti as kitti

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kitti, "write_kitti_sequence", broken)
    assert _simulate(tmp_path / "new", "--frames", "1", "--sequences", "00") == 130
    assert not (tmp_path / "new").exists()


def test_staging_of_a_killed_run_is_cleaned_and_ignored(tmp_path):
    out = tmp_path / "sim"
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = out / f".simulate-partial-{dead.pid}-x" / "sequences" / "00"
    leftover.mkdir(parents=True)
    assert _simulate(out, "--frames", "1", "--sequences", "00") == 0  # OUT held only the dead run's staging
    assert sorted(p.name for p in out.iterdir()) == ["sequences", "sim_config.yaml"]
    alive = out / f".simulate-partial-{os.getpid()}-y"
    alive.mkdir()
    assert _simulate(out, "--frames", "1", "--sequences", "00", "--overwrite") == 0
    assert alive.is_dir()  # another live process's staging is not touched


def test_output_that_is_a_file(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert _simulate(afile, "--frames", "1") == 1
    _one_error(capsys, f"{afile}: OUT must be a folder, but this is a file")
    assert _simulate(afile / "sub", "--frames", "1") == 1
    _one_error(capsys, "cannot create this folder", f"{afile} is a file")
    assert afile.read_text() == "keep"


def test_errors_name_the_option_that_is_wrong(tmp_path, capsys):
    out = tmp_path / "sim"
    assert _simulate(out, "--frames", "0") == 1
    _one_error(capsys, "--frames must be >= 1, got 0")
    assert _simulate(out, "--frames", "1", "--workers", "0") == 1
    _one_error(capsys, "--workers must be >= 1, got 0")
    assert _simulate(out, "--frames", "1", "--set", "lidar.beams=0") == 1
    _one_error(capsys, "--set: lidar.beams must be >= 1, got 0")
    config = tmp_path / "sim.yaml"
    config.write_text("frames: 0\n")
    assert _simulate(out, "--config", str(config)) == 1
    _one_error(capsys, f"{config}: frames must be >= 1, got 0")
    assert not out.exists()


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("frames", 0, "frames must be >= 1, got 0"),
        ("lidar.dropout", 1.0, r"lidar.dropout must be in [0, 1), got 1.0"),
        ("lidar.min_range_m", 90.0, "lidar.max_range_m must be > lidar.min_range_m >= 0, got 80.0 and 90.0"),
        ("camera.height", 0, "camera.height must be >= 1, got 0"),
        ("nuscenes.version", "v2", "nuscenes.version must be v1.0-mini or v1.0-trainval, got 'v2'"),
    ],
)
def test_config_messages_give_key_rule_and_value(key, value, message):
    config = SimConfig()
    section, _, name = key.rpartition(".")
    setattr(getattr(config, section) if section else config, name, value)
    with pytest.raises(ConfigError) as err:
        validate_sim_config(config, "here")
    assert str(err.value) == f"here: {message}"
