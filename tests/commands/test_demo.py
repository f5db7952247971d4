"""`nerfseg demo`: the whole pipeline on a tiny override (few frames and steps) end to end, re-running into
the same folder reuses what is finished, and folders that are not this demo are refused with one line."""

from __future__ import annotations

import json

import pytest

from nerfseg.cli import main
from nerfseg.commands.demo import METHODS, DemoSettings, check_out_dir, run_demo
from nerfseg.errors import ConfigError
from train_testing import SMALL_HEAD_OVERRIDES, TINY_SEGMENTOR_OVERRIDES

TINY_SIM = [
    "frame_interval_s=0.5",
    "camera.image_scale=0.25",
    "lidar.beams=16",
    "lidar.azimuth_steps=256",
    "lidar.dynamic_time_slices=8",
]
TINY_TRAIN = [
    *TINY_SEGMENTOR_OVERRIDES,
    *SMALL_HEAD_OVERRIDES,
    "data.num_workers=0",
    "data.batch_size=1",
    "data.label_fraction=0.5",
    "data.val_max_scans=1",
    "train.val_every=1",
    "train.log_every=1",
    "train.lr=0.001",
]


@pytest.mark.slow
def test_the_demo_runs_end_to_end_and_a_rerun_reuses_it(tmp_path, capsys, one_thread):
    out = tmp_path / "demo"
    settings = DemoSettings(frames=3, steps=2, overrides=TINY_TRAIN, sim_set=TINY_SIM)
    result = run_demo(out, settings, workers=1, progress=False)
    report = (out / "report.md").read_text()
    for method in METHODS:
        assert (out / "runs" / method / "model.pt").is_file()
        assert f"| {method} | {method} |" in report  # one table row per method
        assert f"(pages/{method}.html)" in report and (out / "pages" / f"{method}.html").is_file()
    assert (out / "figures" / "camera_nerf.png").stat().st_size > 0  # only nerf has a NeRF head
    for name in ("bev.png", "curves.png", *(f"confusion_{m}.png" for m in METHODS)):
        assert (out / "figures" / name).stat().st_size > 0
    assert set(result.scores) == set(METHODS)
    # the report states what ran and what it cost, filled in from this run
    assert "2, 2, 2 steps (supervised, projection, nerf)" in report
    assert "(pending)" not in report and "| train nerf |" in report and "In all:" in report
    state = json.loads((out / "demo.json").read_text())
    assert [s["name"] for s in state["stages"]] == [
        "simulate",
        "masks",
        "train supervised",
        "train projection",
        "train nerf",
        "evaluate + report",
    ]
    printed = capsys.readouterr().out
    assert "=== 1/6 simulate" in printed and "=== 6/6 evaluate" in printed

    # a re-run into the same folder reuses the data and the finished trainings
    before = (out / "runs" / "nerf" / "model.pt").stat().st_mtime_ns
    run_demo(out, settings, workers=1, progress=False)
    state = json.loads((out / "demo.json").read_text())
    notes = {s["name"]: s["note"] for s in state["stages"]}
    assert notes["simulate"] == "reused" and all(notes[f"train {m}"] == "reused" for m in METHODS)
    assert (out / "runs" / "nerf" / "model.pt").stat().st_mtime_ns == before


def test_a_folder_that_is_not_this_demo_is_refused(tmp_path, capsys):
    settings = DemoSettings(frames=3, steps=2)
    assert check_out_dir(tmp_path / "new", settings) is False
    (tmp_path / "empty").mkdir()
    assert check_out_dir(tmp_path / "empty", settings) is False
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(other)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--out {other}: folder is not empty and holds no demo" in err
    assert (other / "notes.txt").read_text() == "mine"
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "demo.json").write_text(json.dumps({"settings": {**settings.__dict__, "steps": 5}}))
    with pytest.raises(ConfigError, match="holds a demo with other settings \\(steps\\)"):
        check_out_dir(earlier, settings)
    assert check_out_dir(earlier, DemoSettings(frames=3, steps=5)) is True
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "file")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "f"), "--frames", "1"]) == 1
    assert "--frames must be >= 2" in capsys.readouterr().err
