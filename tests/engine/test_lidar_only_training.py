"""Training on SemanticKITTI copies without calibration or images: LiDAR-only methods, predict and evaluate
work; a method that reads camera images stops before training, naming the sequences that lack them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lidar_only_testing import lidar_only_copy
from nerfseg.cli import main
from train_testing import SMALL_HEAD_OVERRIDES, TINY_SEGMENTOR_OVERRIDES

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "synthetic"


def train_argv(preset: str, root: Path, run: Path, *extra: str) -> list[str]:
    sets = [
        f"data.root={root}",
        "train.max_steps=2",
        "train.num_threads=1",
        "train.checkpoint_every=2",
        "data.num_workers=0",
        "data.batch_size=1",
        "data.val_batch_size=1",
        *TINY_SEGMENTOR_OVERRIDES,
        *extra,
    ]
    options = [a for s in sets for a in ("--set", s)]
    return ["train", str(CONFIGS / preset), "--out", str(run), "--no-progress", *options]


def test_supervised_train_predict_evaluate_on_real_lidar_only_copy(real_data, tmp_path, capsys):
    root = lidar_only_copy(real_data, tmp_path / "data")
    run, pred = tmp_path / "run", tmp_path / "pred"
    assert main(train_argv("supervised.yaml", root, run)) == 0, capsys.readouterr().err
    common = ["--data", str(root), "--no-progress"]
    assert main(["predict", str(run / "model.pt"), "--out", str(pred), "--threads", "1", *common]) == 0
    prediction = pred / "sequences" / "08" / "predictions" / "000000.label"
    assert np.fromfile(prediction, dtype="<u4").shape == (50,)
    scores = tmp_path / "scores.json"
    evaluate = ["evaluate", "--dataset", "semantickitti", "--predictions", str(pred), "--json", str(scores)]
    assert main([*evaluate, *common]) == 0
    assert json.loads(scores.read_text())["num_scans"] == 1


@pytest.mark.parametrize("preset", ["nerf.yaml", "projection.yaml"])
def test_camera_methods_stop_up_front_naming_the_sequences(real_data, tmp_path, capsys, preset):
    root = lidar_only_copy(real_data, tmp_path / "data", sequences=("00", "01", "08"))
    run = tmp_path / "run"
    argv = train_argv(preset, root, run, "data.label_fraction=0.5", *SMALL_HEAD_OVERRIDES)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    method = preset.removesuffix(".yaml")
    assert err.startswith(f"nerfseg train: error: {root}: method '{method}' trains on camera images")
    assert "\n" not in err
    assert "sequences/00 (1 scan: no calib.txt and no image_2/); sequences/01 (1 scan: no calib.txt" in err
    assert "sequences/08" not in err  # the val split needs no camera
    assert "LiDAR-only method (supervised, mean-teacher, lasermix, geometry)" in err
    assert not (run / "checkpoints").exists()


SMALL_KITTI = ["--set", "lidar.beams=16", "--set", "lidar.azimuth_steps=256"]
SMALL_KITTI += ["--set", "camera.image_scale=0.25"]


@pytest.fixture(scope="module")
def simulated_kitti(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "kitti"
    argv = ["simulate", str(out), "--frames", "2", "--sequences", "00,08", "--no-progress", *SMALL_KITTI]
    assert main(argv) == 0
    return out


def test_simulated_data_without_calibration_or_images(simulated_kitti, tmp_path, capsys):
    root = tmp_path / "sim"
    shutil.copytree(simulated_kitti, root)
    (root / "sequences" / "00" / "calib.txt").unlink()  # images left, calibration gone
    shutil.rmtree(root / "sequences" / "08" / "image_2")  # calibration left, images gone
    assert main(["check-data", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"warning: {root / 'sequences' / '00'}: image_2/ but no calib.txt (LiDAR only)" in out
    assert f"warning: {root / 'sequences' / '08'}: no image_2/ (LiDAR only)" in out
    assert main(["check-data", str(root), "--no-progress", "--require-cameras"]) == 1
    capsys.readouterr()

    argv = train_argv("nerf.yaml", root, tmp_path / "nerf", "data.label_fraction=0.5", *SMALL_HEAD_OVERRIDES)
    assert main(argv) == 1
    assert "sequences/00 (2 scans: image_2/ but no calib.txt)" in capsys.readouterr().err
    assert main(train_argv("supervised.yaml", root, tmp_path / "sup", "train.max_steps=1")) == 0
