"""`nerfseg compare` on two tiny finished runs (supervised and nerf, a few steps on a small simulated
dataset): the report's table and every figure, the table's mIoU equal to `nerfseg evaluate` on the same
predictions, and one clear line for what cannot be compared."""

from __future__ import annotations

import dataclasses
import json

import pytest
from PIL import Image

from nerfseg.cli import main
from train_testing import SMALL_HEAD_OVERRIDES, TINY_SEGMENTOR_OVERRIDES


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    """Sequences 00 (train, 4 frames) and 08 (val, 2 frames), 16 beams x 256 firings, a 1/4-size camera, the
    superpixel masks of every train image cached."""
    from nerfseg.config import Config
    from nerfseg.data.datasets import open_dataset
    from nerfseg.masks.config import open_mask_cache
    from nerfseg.sim.config import CameraConfig, LidarConfig, SimConfig
    from nerfseg.sim.simulate import OutputFormat, simulate

    root = tmp_path_factory.mktemp("compare_sim")
    config = SimConfig(
        frames=4,
        lidar=LidarConfig(beams=16, azimuth_steps=256, dynamic_time_slices=8),
        camera=CameraConfig(image_scale=0.25),
    )
    simulate(
        root,
        dataclasses.replace(config, frame_interval_s=0.5),
        OutputFormat.SEMANTICKITTI,
        ["00", "08"],
        show_progress=False,
    )
    cache = open_mask_cache(Config().masks, root)
    for sample in open_dataset("semantickitti", root, "train"):
        for camera in sample.cameras:
            cache.ensure(camera.load_image())
    return root


def tiny_run(root, out, method: str, steps: int = 2):
    from nerfseg.config import load_config
    from nerfseg.engine.train import train

    cfg = load_config(
        None,
        [
            f"method={method}",
            f"data.root={root}",
            "data.label_fraction=0.5",
            "data.batch_size=1",
            "data.num_workers=0",
            f"train.max_steps={steps}",
            "train.log_every=1",
            "train.val_every=1",
            "train.checkpoint_every=100",
            "train.progress=false",
            "train.num_threads=1",
            "train.lr=0.001",
            *TINY_SEGMENTOR_OVERRIDES,
            *SMALL_HEAD_OVERRIDES,
        ],
    )
    train(cfg, out)
    return out


@pytest.fixture(scope="module")
def two_runs(sim_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("compare_runs")
    return tiny_run(sim_root, base / "sup", "supervised"), tiny_run(sim_root, base / "nerf", "nerf")


@pytest.mark.slow
def test_compare_writes_the_table_every_figure_and_the_pages(
    two_runs, sim_root, tmp_path, capsys, one_thread
):
    sup, nerf = two_runs
    out = tmp_path / "report"
    assert main(["compare", str(sup), str(nerf), "--out", str(out), "--no-progress", "--stride", "8"]) == 0
    report = (out / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| sup |") or line.startswith("| nerf |")]
    assert len(rows) == 2
    assert "| supervised | 2 of 4 train scans (50 %) | 2 |" in rows[0]
    header = next(line for line in report.splitlines() if line.startswith("| run |"))
    assert "| car |" in header and "| traffic-sign |" in header  # the per-class columns
    expected = [
        "figures/bev.png",
        "figures/camera_nerf.png",
        "figures/confusion_sup.png",
        "figures/confusion_nerf.png",
        "figures/curves.png",
    ]
    for name in expected:
        assert f"]({name})" in report, name
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) > 200, name
    assert not (out / "figures" / "camera_sup.png").exists()  # no NeRF head, no rendering
    assert "sup: no camera figure" in report
    for page in ("pages/sup.html", "pages/nerf.html"):
        assert f"({page})" in report and (out / page).stat().st_size > 0
        assert 'src="plotly.min.js"' in (out / page).read_text()  # one shared library copy
    assert (out / "pages" / "plotly.min.js").stat().st_size > 100_000
    assert "wrote" in capsys.readouterr().out

    # the table's mIoU is what `nerfseg evaluate` gives for the same prediction files
    payload = json.loads((out / "report.json").read_text())
    for name in ("sup", "nerf"):
        scores = tmp_path / f"{name}.json"
        assert (
            main(
                [
                    "evaluate",
                    "--dataset",
                    "semantickitti",
                    "--data",
                    str(sim_root),
                    "--predictions",
                    str(out / "predictions" / name),
                    "--json",
                    str(scores),
                    "--no-progress",
                ]
            )
            == 0
        )
        evaluated = json.loads(scores.read_text())
        assert payload["runs"][name]["miou"] == pytest.approx(evaluated["miou"], abs=1e-12)
        assert payload["runs"][name]["per_class_iou"] == pytest.approx(evaluated["per_class_iou"])
        row = next(r for r in rows if r.startswith(f"| {name} |"))
        assert f" {100 * evaluated['miou']:.1f} " in row or f"**{100 * evaluated['miou']:.1f}**" in row


def test_an_unfinished_run_is_one_clear_error(two_runs, tmp_path, capsys):
    sup, _ = two_runs
    half = tmp_path / "half"
    (half / "checkpoints").mkdir(parents=True)
    (half / "checkpoints" / "last.pt").write_bytes(b"")
    assert main(["compare", str(sup), str(half), "--out", str(tmp_path / "r"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "half/model.pt" in err and "nerfseg train --resume" in err
    assert main(["compare", str(tmp_path / "nosuch"), "--out", str(tmp_path / "r")]) == 1
    assert "run folder not found" in capsys.readouterr().err


def test_a_frame_outside_the_split_and_a_bad_stride_are_named(two_runs, tmp_path, capsys):
    sup, _ = two_runs
    out = str(tmp_path / "r")
    assert (
        main(["compare", str(sup), "--out", out, "--frame", "08/999999", "--no-pages", "--no-progress"]) == 1
    )
    assert "--frame '08/999999' is not in split 'val'" in capsys.readouterr().err
    assert main(["compare", str(sup), "--out", out, "--stride", "0"]) == 1
    assert "--stride must be >= 1" in capsys.readouterr().err
