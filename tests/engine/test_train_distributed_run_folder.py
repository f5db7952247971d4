"""`torchrun --nproc_per_node 2` (gloo, CPU) with main's run-folder behaviours: bad scans, lock, finished run.

Two bad scans in the first epoch of the tiny dataset (6 train scans, global batch 2): the scan drawn fourth
(step 2, second item: process 1's slice) has a truncated ``.bin``, the one drawn fifth (step 3, first item:
process 0's) a short ``.label``. With ``skip`` the two-process run must name both in ``skipped.jsonl`` as the
one-process run does and train on the same global batches; with ``error`` every process stops with the one
line (none waits for the others in a collective). Rank 0 alone takes the run folder's lock; when it is held
elsewhere every process stops at once. Resuming a finished run returns on every process and changes nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nerfseg.config import load_config
from nerfseg.data.loader import epoch_order
from nerfseg.engine.logging import read_metrics
from nerfseg.engine.run_lock import RunLock
from nerfseg.engine.skipped import read_skipped
from nerfseg.engine.train import train
from train_testing import TINY_SEGMENTOR_OVERRIDES, corrupt_two_scans, subprocess_env

PRESET = Path(__file__).resolve().parents[2] / "configs" / "synthetic" / "supervised.yaml"
STEPS = 3
SEED = 0
pytestmark = pytest.mark.slow  # four 2-process launches (about 17 s each on 2 shared cores)
RTOL = 1e-5  # sync batch norm and the gathered CE + Lovász: the one-process math up to summation order


@pytest.fixture(scope="module")
def bad_kitti(tiny_kitti, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ddp_bad_kitti") / "data"
    order = epoch_order(6, SEED, 0).tolist()
    truncated, short = corrupt_two_scans(tiny_kitti, root, order[3], order[4])
    return {"root": root, "bin": truncated, "label": short}


def _sets(root: Path, policy: str) -> list[str]:
    return [
        f"data.root={root}", f"train.max_steps={STEPS}", "train.checkpoint_every=1", "train.log_every=1",
        "train.val_every=0", "train.progress=false", "train.num_threads=1", "data.batch_size=2",
        "data.num_workers=0", "data.val_split=", f"train.seed={SEED}", f"data.on_bad_scan={policy}",
        *TINY_SEGMENTOR_OVERRIDES,
    ]  # fmt: skip


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "nerfseg", *args]
    return subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)


def _train_args(root: Path, policy: str, run_dir: Path) -> list[str]:
    args = ["train", str(PRESET), "--out", str(run_dir)]
    for s in _sets(root, policy):
        args += ["--set", s]
    return args


def _curve(run_dir: Path, key: str) -> np.ndarray:
    return np.array([r[key] for r in read_metrics(run_dir / "metrics.jsonl") if key in r])


@pytest.fixture(scope="module")
def two_skip_run(bad_kitti, tmp_path_factory):
    run = tmp_path_factory.mktemp("ddp_skip") / "run"
    done = _torchrun(_train_args(bad_kitti["root"], "skip", run))
    assert done.returncode == 0, done.stderr[-3000:]
    return run, done


def test_skip_names_the_bad_scans_of_every_process_like_one_process(bad_kitti, two_skip_run, tmp_path):
    run, done = two_skip_run
    one = tmp_path / "one"
    train(load_config(PRESET, _sets(bad_kitti["root"], "skip")), one)
    records = [(r["file"], r["step"], r["stream"], r["reason"]) for r in read_skipped(run / "skipped.jsonl")]
    assert records == [
        (r["file"], r["step"], r["stream"], r["reason"]) for r in read_skipped(one / "skipped.jsonl")
    ]
    assert [(f, s, st) for f, s, st, _ in records] == [
        (str(bad_kitti["bin"]), 2, "labeled"),  # met by process 1
        (str(bad_kitti["label"]), 3, "labeled"),  # met by process 0
    ]
    for path in (bad_kitti["bin"], bad_kitti["label"]):  # named once, by rank 0
        assert done.stderr.count(f"skipped unreadable scan {path}") == 1, done.stderr[-3000:]
    assert not list(run.glob("skipped.rank*"))
    # the same global batches (replacements included) and the one-process losses
    np.testing.assert_array_equal(_curve(run, "train/points"), _curve(one, "train/points"))
    np.testing.assert_allclose(_curve(run, "train/loss"), _curve(one, "train/loss"), rtol=RTOL)


def test_error_on_one_process_stops_every_process_with_the_one_line(bad_kitti, tmp_path):
    run = tmp_path / "run"
    done = _torchrun(_train_args(bad_kitti["root"], "error", run))  # timeout 300: it must not hang
    assert done.returncode != 0
    line = f"nerfseg train: error: {bad_kitti['bin']}: "
    assert done.stderr.count(line) == 2, done.stderr[-3000:]  # process 1 met it, process 0 was told
    assert "--set data.on_bad_scan=skip" in done.stderr
    assert _curve(run, "train/loss").size == 1  # step 1 trained, step 2 stopped


def test_a_locked_folder_stops_every_process_and_a_finished_run_changes_nothing(two_skip_run, tmp_path):
    run, _ = two_skip_run
    finished = tmp_path / "finished"
    shutil.copytree(run, finished)
    before = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()}
    done = _torchrun(["train", "--resume", str(finished)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("is already finished") == 1  # rank 0 alone reports
    assert {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()} == before

    with RunLock(finished):
        done = _torchrun(["train", "--resume", str(finished)])
    assert done.returncode != 0
    assert done.stderr.count("run folder in use by another training process") == 2, done.stderr[-3000:]
