"""Training end to end on the tiny SemanticKITTI fixture: run folder, learning, predict -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfseg.cli import main
from nerfseg.config import load_config
from nerfseg.engine.checkpoint import load_checkpoint
from nerfseg.engine.logging import read_metrics
from nerfseg.engine.train import train, validate
from nerfseg.errors import ConfigError
from train_testing import TINY_SEGMENTOR_OVERRIDES

PRESET = Path(__file__).resolve().parents[2] / "configs" / "synthetic" / "supervised.yaml"


def tiny_overrides(root: Path, steps: int) -> list[str]:
    """Keys that make the synthetic preset tiny: a small model, few steps, no workers, no bars."""
    return [
        f"data.root={root}",
        f"train.max_steps={steps}",
        "train.checkpoint_every=10",
        "train.log_every=5",
        "train.val_every=0",
        "train.lr=0.02",
        "train.progress=false",
        "train.num_threads=1",
        "data.batch_size=2",
        "data.num_workers=0",
        *TINY_SEGMENTOR_OVERRIDES,
    ]


@pytest.fixture(scope="module")
def trained_run(tiny_kitti, tmp_path_factory):
    cfg = load_config(PRESET, tiny_overrides(tiny_kitti, 20))
    run_dir = tmp_path_factory.mktemp("run")
    result = train(cfg, run_dir)
    return cfg, run_dir, result


def test_run_folder_layout_and_metrics(trained_run):
    cfg, run_dir, result = trained_run
    assert result.step == 20
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt", "model.pt"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").iterdir())
    assert load_config(run_dir / "config.yaml") == cfg
    records = read_metrics(run_dir / "metrics.jsonl")
    assert records[0]["data/train_scans"] == 6 and records[0]["data/labeled_scans"] == 6
    train_steps = [r["step"] for r in records if "train/loss" in r]
    assert train_steps == [5, 10, 15, 20]
    assert all(np.isfinite(r["train/loss"]) and r["train/lr"] > 0 for r in records if "train/loss" in r)
    assert any("val/miou" in r and r["step"] == 20 for r in records)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["step"] == 20 and state["kind"] == "train" and "nerf_head" not in state
    export = load_checkpoint(run_dir / "model.pt")
    assert export["kind"] == "model" and "optimizer" not in export
    assert all(torch.equal(export["model"][k], v) for k, v in state["model"].items())


def test_training_learns_the_toy_scene(trained_run):
    _, run_dir, result = trained_run
    losses = [r["train/loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "train/loss" in r]
    assert losses[-1] < 0.7 * losses[0]
    # 5 classes present in val out of 19: mIoU over all 19 is at most 5/19; predicting one class
    # everywhere scores at most that class's share of the points (road, < 0.5) / 19.
    assert result.val_miou is not None and result.val_miou > 1.0 / 19


def test_predict_then_evaluate_round_trip(trained_run, tiny_kitti, tmp_path, capsys):
    from nerfseg.data.datasets import open_dataset
    from nerfseg.data.submission import semantickitti_prediction_path
    from nerfseg.engine.checkpoint import build_segmentor

    cfg, run_dir, _ = trained_run
    pred = tmp_path / "pred"
    predict_args = ["--data", str(tiny_kitti), "--out", str(pred), "--threads", "1", "--no-progress"]
    assert main(["predict", str(run_dir / "model.pt"), *predict_args]) == 0
    val = open_dataset("semantickitti", tiny_kitti, "val")
    for i, sample_id in enumerate(val.sample_ids):
        path = semantickitti_prediction_path(pred, sample_id)
        assert path.stat().st_size == 4 * val[i].num_points
        raw = np.fromfile(path, dtype="<u4")
        assert set(np.unique(raw)) <= {
            10,
            11,
            15,
            18,
            20,
            30,
            31,
            32,
            40,
            44,
            48,
            49,
            50,
            51,
            70,
            71,
            72,
            80,
            81,
        }
    scores_json = tmp_path / "scores.json"
    capsys.readouterr()
    args = ["--data", str(tiny_kitti), "--predictions", str(pred), "--json", str(scores_json)]
    assert main(["evaluate", "--dataset", "semantickitti", *args, "--no-progress"]) == 0
    evaluated = json.loads(scores_json.read_text())
    model, _ = build_segmentor(load_checkpoint(run_dir / "model.pt"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads crawl on shared cores
    try:
        direct = validate(model, val, cfg, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    assert evaluated["miou"] == pytest.approx(direct.miou, abs=1e-9)
    assert evaluated["accuracy"] == pytest.approx(direct.accuracy, abs=1e-9)


def test_bf16_predict_on_the_cpu_agrees_with_float32(trained_run, tiny_kitti, tmp_path, monkeypatch):
    import nerfseg.sparse.conv as conv
    from nerfseg.data.datasets import open_dataset
    from nerfseg.data.submission import semantickitti_prediction_path

    conv_dtypes = set()
    forward = conv._conv_forward

    def spy(feats, *args, **kwargs):
        conv_dtypes.add(feats.dtype)
        return forward(feats, *args, **kwargs)

    monkeypatch.setattr(conv, "_conv_forward", spy)
    monkeypatch.setattr("nerfseg.engine.precision.cpu_has_native_bf16", lambda: True)  # any host
    _, run_dir, _ = trained_run
    common = ["--data", str(tiny_kitti), "--threads", "1", "--no-progress"]
    for precision, dtype in (("float32", torch.float32), ("bf16", torch.bfloat16)):
        out = ["--out", str(tmp_path / precision), "--precision", precision]
        conv_dtypes.clear()
        assert main(["predict", str(run_dir / "model.pt"), *common, *out]) == 0
        assert conv_dtypes == {dtype}
    val = open_dataset("semantickitti", tiny_kitti, "val")

    def labels(precision: str) -> np.ndarray:
        paths = [semantickitti_prediction_path(tmp_path / precision, i) for i in val.sample_ids]
        return np.concatenate([np.fromfile(path, dtype="<u4") for path in paths])

    f32, bf16 = labels("float32"), labels("bf16")
    assert len(f32) == len(bf16) == sum(val[i].num_points for i in range(len(val)))
    assert (f32 == bf16).mean() > 0.97  # bf16 keeps 8 mantissa bits: labels flip only near ties


@pytest.mark.parametrize("native", [True, False])
def test_bf16_predict_falls_back_to_float32_on_cpus_without_native_bf16(
    trained_run, tiny_kitti, tmp_path, monkeypatch, capsys, native
):
    import nerfseg.engine.precision as precision
    import nerfseg.sparse.conv as conv

    conv_dtypes = set()
    forward = conv._conv_forward
    spy = lambda f, *a, **k: conv_dtypes.add(f.dtype) or forward(f, *a, **k)  # noqa: E731
    monkeypatch.setattr(conv, "_conv_forward", spy)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    _, run_dir, _ = trained_run
    args = ["--data", str(tiny_kitti), "--threads", "1", "--no-progress", "--out", str(tmp_path / "p")]
    assert main(["predict", str(run_dir / "model.pt"), *args, "--precision", "bf16", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert ("no native bf16" in err) == (not native) and err.count("running in float32") == (not native)
    assert conv_dtypes == {torch.bfloat16 if native else torch.float32}  # never emulated bf16


def test_cli_errors_are_one_clear_line(tiny_kitti, tmp_path, capsys):
    assert main(["train", str(PRESET), "--out", str(tmp_path / "r"), "--set", "train.max_stepz=3"]) == 1
    err = capsys.readouterr().err
    assert "unknown key 'train.max_stepz'" in err and "Traceback" not in err
    assert (
        main(["predict", str(tmp_path / "none.pt"), "--data", str(tiny_kitti), "--out", str(tmp_path)]) == 1
    )
    assert "none.pt: checkpoint file not found" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="cannot resume with a different config"):
        cfg = load_config(PRESET, tiny_overrides(tiny_kitti, 4) + ["train.max_steps=2"])
        run = tmp_path / "short"
        train(cfg, run)
        train(load_config(PRESET, tiny_overrides(tiny_kitti, 4) + ["train.max_steps=3"]), run, resume=True)


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 11])
@pytest.mark.parametrize("pct", [0.01, 0.1, 0.5, 0.99])
def test_one_cycle_schedule_for_any_length(steps, pct):
    from nerfseg.engine.train import build_optimizer

    cfg = load_config(None, [f"train.max_steps={steps}", f"train.pct_start={pct}", "train.lr=0.01"])
    optimizer, scheduler = build_optimizer(cfg, torch.nn.Linear(2, 2).parameters())
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert all(0 < lr <= 0.01 + 1e-12 for lr in lrs)
    if steps >= 10:
        peak = int(np.argmax(lrs))
        assert lrs[peak] == pytest.approx(0.01, rel=0.05) and 1 <= peak <= steps - 2
        assert lrs[-1] < 0.01 / 25


def test_help_texts():
    for command in ("train", "predict"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0


def test_label_fraction_trains_on_a_seeded_subset(tiny_kitti, tmp_path):
    from nerfseg.data.loader import labeled_subset

    sets = tiny_overrides(tiny_kitti, 1) + ["data.label_fraction=0.5", "data.label_seed=4", "data.val_split="]
    result = train(load_config(PRESET, sets), tmp_path / "half")
    first = read_metrics(tmp_path / "half" / "metrics.jsonl")[0]
    assert first["data/train_scans"] == 6 and first["data/labeled_scans"] == 3
    assert result.val_miou is None  # validation disabled by an empty val split
    assert len(labeled_subset(6, 0.5, 4)) == 3
