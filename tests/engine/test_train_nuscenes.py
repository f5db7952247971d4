"""nuScenes path end to end on a tiny simulated nuScenes-layout dataset: train -> predict (lidarseg .bin +
submission.json) -> evaluate, and the evaluated mIoU equals the training loop's own validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nerfseg.cli import main
from nerfseg.engine.logging import read_metrics

PRESET = Path(__file__).resolve().parents[2] / "configs" / "nuscenes" / "supervised.yaml"


@pytest.mark.slow
def test_nuscenes_train_predict_evaluate(tmp_path):
    data, run, pred = tmp_path / "nus", tmp_path / "run", tmp_path / "pred"
    assert main(["simulate", str(data), "--format", "nuscenes", "--frames", "2", "--no-progress"]) == 0
    sets = [
        f"data.root={data}",
        "data.version=v1.0-mini",
        "data.train_split=mini_train",
        "data.val_split=mini_val",
        "data.num_workers=0",
        "train.max_steps=3",
        "train.num_threads=1",
        "model.segmentor.preset=tiny",
        "model.segmentor.voxel_size=0.3",
    ]
    args = ["train", str(PRESET), "--out", str(run), "--no-progress"]
    assert main(args + [a for s in sets for a in ("--set", s)]) == 0
    common = ["--data", str(data), "--split", "mini_val", "--no-progress"]
    assert main(["predict", str(run / "model.pt"), "--out", str(pred), "--threads", "1", *common]) == 0
    assert len(list((pred / "lidarseg" / "mini_val").glob("*_lidarseg.bin"))) == 2
    meta = json.loads((pred / "mini_val" / "submission.json").read_text())["meta"]
    assert meta["use_lidar"] is True and meta["use_camera"] is False
    scores = tmp_path / "scores.json"
    evaluate = ["evaluate", "--dataset", "nuscenes", "--version", "v1.0-mini", "--predictions", str(pred)]
    assert main([*evaluate, "--json", str(scores), *common]) == 0
    val = [r for r in read_metrics(run / "metrics.jsonl") if "val/miou" in r]
    assert json.loads(scores.read_text())["miou"] == pytest.approx(val[-1]["val/miou"], abs=1e-9)
