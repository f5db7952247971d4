"""``data.on_bad_scan``: a truncated ``.bin`` and a short ``.label`` among good scans.

``skip`` trains to the end, names each bad file once on stderr and in ``RUN/skipped.jsonl``, and stays exact
under resume; ``error`` (the default) stops with one line naming the file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfseg.cli import main
from nerfseg.config import load_config
from nerfseg.data.bad_scans import BadScanPolicy
from nerfseg.data.loader import LoadFailure, Replaced, epoch_order, labeled_subset
from nerfseg.engine.checkpoint import load_checkpoint
from nerfseg.engine.logging import read_metrics
from nerfseg.engine.skipped import read_skipped
from nerfseg.engine.train import train
from nerfseg.errors import DataError
from train_testing import (
    TINY_SEGMENTOR_OVERRIDES,
    checkpoint_step,
    corrupt_two_scans,
    kill_at_checkpoint,
    subprocess_env,
)

PRESET = Path(__file__).resolve().parents[2] / "configs" / "synthetic" / "supervised.yaml"
STEPS = 6  # two epochs of the 6 train scans, batch 2: each bad scan is met twice
SEED = 0


@pytest.fixture(scope="module")
def bad_kitti(tiny_kitti, tmp_path_factory) -> dict:
    """A copy of the tiny dataset (6 train scans of 2000 points) where the scans drawn third and fifth in
    epoch 0 (steps 2 and 3) are bad: one ``.bin`` cut by 6 bytes, one ``.label`` 3 labels short."""
    root = tmp_path_factory.mktemp("bad_kitti") / "data"
    order = epoch_order(6, SEED, 0).tolist()
    truncated, short = corrupt_two_scans(tiny_kitti, root, order[2], order[4])
    return {"root": root, "bin": truncated, "label": short, "positions": (order[2], order[4])}


def _overrides(root: Path, policy: str, extra=()) -> list[str]:
    return [
        f"data.root={root}", f"train.max_steps={STEPS}", "train.checkpoint_every=1", "train.log_every=1",
        "train.val_every=0", "train.progress=false", "train.num_threads=1", "data.batch_size=2",
        "data.num_workers=0", "data.val_split=", f"train.seed={SEED}", f"data.on_bad_scan={policy}",
        *TINY_SEGMENTOR_OVERRIDES, *extra,
    ]  # fmt: skip


def _cli(args: list[str]) -> list[str]:
    out = ["train", str(PRESET)]
    for s in args:
        out += ["--set", s]
    return out


@pytest.fixture(scope="module")
def skip_run(bad_kitti, tmp_path_factory):
    """An uninterrupted ``skip`` run through the CLI (stdout / stderr captured)."""
    run = tmp_path_factory.mktemp("skip_run")
    proc = subprocess.run(
        [sys.executable, "-m", "nerfseg", *_cli(_overrides(bad_kitti["root"], "skip")), "--out", str(run)],
        env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run, proc


def test_skip_trains_to_the_end_and_names_each_bad_file_once(bad_kitti, skip_run):
    run, proc = skip_run
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == STEPS
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if "train/loss" in r] == list(
        range(1, STEPS + 1)
    )
    records = read_skipped(run / "skipped.jsonl")
    assert [(r["file"], r["step"], r["stream"]) for r in records] == [
        (str(bad_kitti["bin"]), 2, "labeled"),
        (str(bad_kitti["label"]), 3, "labeled"),
    ]
    assert "not a whole number" in records[0]["reason"]
    assert "labels but the scan has 2000 points" in records[1]["reason"]
    # met twice each (two epochs), named once each on stderr; no traceback
    assert proc.stderr.count(f"skipped unreadable scan {bad_kitti['bin']}") == 1
    assert proc.stderr.count(f"skipped unreadable scan {bad_kitti['label']}") == 1
    assert "Traceback" not in proc.stderr


def test_error_stops_with_one_line_naming_the_file(bad_kitti, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_cli(_overrides(bad_kitti["root"], "error")) + ["--out", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"nerfseg train: error: {bad_kitti['bin']}: ")
    assert "data.on_bad_scan=skip" in err
    assert checkpoint_step(run / "checkpoints" / "last.pt") == 1  # the step before the bad batch is kept
    assert not (run / "skipped.jsonl").exists()
    # the default is error
    assert load_config(PRESET).data.on_bad_scan is BadScanPolicy.ERROR


def _assert_same_run(a_dir: Path, b_dir: Path) -> None:
    a = load_checkpoint(a_dir / "checkpoints" / "last.pt")
    b = load_checkpoint(b_dir / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == STEPS
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for pid, state in b["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(a["optimizer"]["state"][pid][name], value), (pid, name)
    assert a["scheduler"] == b["scheduler"] and torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    drop_time = lambda path: [  # noqa: E731
        {k: v for k, v in r.items() if k not in ("time", "train/sec_per_step")} for r in read_metrics(path)
    ]
    assert drop_time(a_dir / "metrics.jsonl") == drop_time(b_dir / "metrics.jsonl")
    assert read_skipped(a_dir / "skipped.jsonl") == read_skipped(b_dir / "skipped.jsonl")


def test_stopped_by_error_then_resumed_with_skip_equals_the_skip_run(bad_kitti, skip_run, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_cli(_overrides(bad_kitti["root"], "error")) + ["--out", str(run)]) == 1
    assert main(["train", "--resume", str(run), "--set", "data.on_bad_scan=skip", "--no-progress"]) == 0
    assert "skipped unreadable scan" in capsys.readouterr().err
    _assert_same_run(run, skip_run[0])


@pytest.mark.slow
def test_skip_run_killed_and_resumed_with_workers_is_bit_exact(bad_kitti, skip_run, tmp_path):
    killed = tmp_path / "killed"
    args = _cli(_overrides(bad_kitti["root"], "skip", ["data.num_workers=2"])) + ["--out", str(killed)]
    last = killed / "checkpoints" / "last.pt"
    kill_at_checkpoint([sys.executable, "-m", "nerfseg", *args], last, min_step=3, timeout_s=180, poll_s=0.02)
    assert 3 <= checkpoint_step(last) < STEPS  # both bad scans met before the kill, again after the resume
    resumed = subprocess.run(
        [sys.executable, "-m", "nerfseg", "train", "--resume", str(killed), "--no-progress"],
        env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(killed, skip_run[0])


def test_skip_keeps_labeled_and_unlabeled_streams_apart(bad_kitti, tmp_path, capsys):
    """mean-teacher at half the labels, one bad scan labeled and one not: the run ends and each bad scan is
    reported once, by the stream it belongs to (replacements come from the same stream:
    tests/data/test_loader.py)."""
    bad = set(bad_kitti["positions"])
    label_seed = next(  # a labeled subset holding one bad scan, the unlabeled rest the other
        s for s in range(100) if len(set(labeled_subset(6, 0.5, s).tolist()) & bad) == 1
    )
    labeled = set(labeled_subset(6, 0.5, label_seed).tolist())
    cfg = load_config(
        PRESET,
        _overrides(bad_kitti["root"], "skip", ["method=mean-teacher", "data.label_fraction=0.5",
                                                f"data.label_seed={label_seed}", "ssl.pseudo.threshold=0.0"]),
    )  # fmt: skip
    run = tmp_path / "mt"
    assert train(cfg, run).step == STEPS
    files = (str(bad_kitti["bin"]), str(bad_kitti["label"]))
    positions = dict(zip(files, bad_kitti["positions"], strict=True))
    records = read_skipped(run / "skipped.jsonl")
    assert sorted(r["file"] for r in records) == sorted(files)
    for r in records:
        assert r["stream"] == ("labeled" if positions[r["file"]] in labeled else "unlabeled"), r
    assert capsys.readouterr().err.count("skipped unreadable scan") == 2


def test_unreadable_image_of_an_unlabeled_scan_is_skipped_or_named(tmp_path):
    """An unlabeled scan whose camera image is garbage: ``skip`` loads another unlabeled scan in its place
    and names the image; ``error`` names the image."""
    from kitti_testing import write_tree
    from nerfseg.config import Config
    from nerfseg.data.augment import AugmentConfig
    from nerfseg.data.datasets import DatasetKind, open_dataset
    from nerfseg.engine.streams import CameraInputs, UnlabeledDataset

    write_tree(tmp_path, {"00": 4}, points_per_scan=50, with_images=True)
    bad = tmp_path / "sequences" / "00" / "image_2" / "000002.png"
    bad.write_bytes(b"not a png")
    masks = Config().masks
    masks.compute_missing = True
    inputs = CameraInputs(1, masks, str(tmp_path), DatasetKind("semantickitti").label_map, pixel_truth=False)
    source = open_dataset("semantickitti", tmp_path, "train")
    unlabeled = np.array([1, 2, 3])
    for policy in BadScanPolicy:
        dataset = UnlabeledDataset(source, unlabeled, AugmentConfig(), 0, inputs, policy)
        item = dataset[(0, 1)]  # position 1 = scan 000002
        if policy is BadScanPolicy.ERROR:
            assert isinstance(item, LoadFailure) and item.path == str(bad)
            assert "unreadable image" in item.problem
            with pytest.raises(DataError, match="000002.png: unreadable image"):
                raise item.error()
        else:
            assert isinstance(item, Replaced) and [f.path for f in item.failures] == [str(bad)]
            assert item.item.student.sample_id in ("00/000001", "00/000003") and item.item.mask_ids
            assert item.item.metric_labels is not None and item.item.student.labels is None


def test_bad_scan_policy_is_a_harmless_key_on_resume():
    from nerfseg.config import dataclass_to_dict
    from nerfseg.engine.run_state import check_resume_config

    stored = dataclass_to_dict(load_config(PRESET))
    check_resume_config(stored, load_config(PRESET, ["data.on_bad_scan=skip"]), Path("run"))
    with pytest.raises(Exception, match="on_bad_scan"):
        load_config(PRESET, ["data.on_bad_scan=ignore"])

