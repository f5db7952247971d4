"""`torchrun --nproc_per_node 2 -m nerfseg train` (gloo, CPU) against one process with the same global batch.

Tolerances, measured on this dataset with the tiny model (6 steps, global batch 2, relative to the loss), as
the spread between two one-process runs that differ only in the order of the scans inside each batch:

* ``supervised``: 2.7e-6 (summation order only). (Measured 2-process vs 1-process: 6.1e-7: sync batch norm
  and the gathered CE + Lovász make the math the one-process math.) Those figures are from a host with
  AVX-512. On an AVX2-only host (2026-12-02, same torch) 2-process vs 1-process measured 7.7e-7 at step 2,
  8.7e-5 at step 3 and 1.4e-4 at step 4, at this commit and at 1620d93 alike: float32 matmul kernels there
  round a 1-scan and a 2-scan batch differently and the optimiser grows the difference step by step. Test
  tolerance SUPERVISED_RTOL = 1e-3, 7x that spread and still 100x below the nerf spread; the exact checks
  (same points per step, replicas agreeing) stay exact.
* ``nerf``: 4.6e-2 (the scan order also hands the random LiDAR / camera ray draws and the sample jitter to
  other scans, as a second process does). Test tolerance NERF_RTOL = 0.1. (Measured 2-process: 2.9e-2.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nerfseg.config import load_config
from nerfseg.engine.logging import read_metrics
from nerfseg.engine.train import train
from train_testing import SMALL_HEAD_OVERRIDES, TINY_SEGMENTOR_OVERRIDES, subprocess_env

REPO = Path(__file__).resolve().parents[2]
STEPS = 4
SUPERVISED_RTOL = 1e-3
NERF_RTOL = 0.1


def _sets(root: Path) -> list[str]:
    return [
        f"data.root={root}", "data.label_fraction=0.5", "data.batch_size=2", "data.num_workers=0",
        "data.val_split=", f"train.max_steps={STEPS}", "train.checkpoint_every=2", "train.log_every=1",
        "train.keep_step_checkpoints=true", "train.progress=false", "train.num_threads=1",
        *TINY_SEGMENTOR_OVERRIDES, *SMALL_HEAD_OVERRIDES,
    ]


def _config(method: str) -> str:
    return str(REPO / f"configs/synthetic/{method}.yaml")


def _one_process(method: str, root: Path, run_dir: Path) -> None:
    train(load_config(_config(method), _sets(root)), run_dir)


def _two_processes(method: str, root: Path, run_dir: Path) -> None:
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "nerfseg", "train", _config(method), "--out", str(run_dir)]
    for s in _sets(root):
        args += ["--set", s]
    done = subprocess.run(args, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 4 steps") == 1, done.stdout  # rank 0 alone reports


def _curve(run_dir: Path, key: str = "train/loss") -> np.ndarray:
    return np.array([r[key] for r in read_metrics(run_dir / "metrics.jsonl") if key in r])


def _dist_rows(run_dir: Path) -> list[dict]:
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if "dist/replicas_agree" in r]


def test_supervised_two_processes_match_one_process_and_resume_into_one(sim_ssl_root, tmp_path, capsys):
    from nerfseg.cli import main

    _one_process("supervised", sim_ssl_root, tmp_path / "one")
    _two_processes("supervised", sim_ssl_root, tmp_path / "two")
    one, two = _curve(tmp_path / "one"), _curve(tmp_path / "two")
    assert one.shape == two.shape == (STEPS,)
    np.testing.assert_allclose(two, one, rtol=SUPERVISED_RTOL)
    points = [_curve(tmp_path / run, "train/points") for run in ("one", "two")]
    np.testing.assert_array_equal(points[1], points[0])  # the same global batches
    dist_rows = _dist_rows(tmp_path / "two")
    assert [(r["step"], r["dist/processes"], r["dist/replicas_agree"]) for r in dist_rows] == [
        (2, 2, 1.0), (4, 2, 1.0)
    ]
    # resume the 2-process run's step-2 checkpoint with one process: the rest of the one-process curve
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "two", resumed)
    shutil.copy(resumed / "checkpoints" / "step_0000002.pt", resumed / "checkpoints" / "last.pt")
    capsys.readouterr()
    assert main(["train", "--resume", str(resumed)]) == 0
    out = capsys.readouterr().out
    assert (
        "resuming step 2 with 1 process (the checkpoint was written by 2 processes): global batch 2 kept, "
        "2 scans per process (was 1)"
    ) in out
    after = _curve(resumed)
    assert after.shape == (STEPS,)
    np.testing.assert_allclose(after, one, rtol=SUPERVISED_RTOL)
    assert _dist_rows(resumed) == _dist_rows(tmp_path / "two")[:1]  # the 1-process steps log no dist/ rows


def test_nerf_two_processes_match_one_process_and_keep_one_teacher(sim_ssl_root, tmp_path):
    _one_process("nerf", sim_ssl_root, tmp_path / "one")
    _two_processes("nerf", sim_ssl_root, tmp_path / "two")
    one, two = _curve(tmp_path / "one"), _curve(tmp_path / "two")
    assert one.shape == two.shape == (STEPS,)
    np.testing.assert_allclose(two, one, rtol=NERF_RTOL)
    # step 1 starts from the same weights: its supervised term does not depend on the ray draws
    sup = [_curve(tmp_path / run, "train/supervised") for run in ("one", "two")]
    np.testing.assert_allclose(sup[1][0], sup[0][0], rtol=SUPERVISED_RTOL)
    for key in ("train/render", "train/geometry_labeled", "train/geometry_unlabeled"):
        values = _curve(tmp_path / "two", key)
        assert values.size == STEPS and np.all(np.isfinite(values))
    # student, NeRF head and EMA teacher hash the same on both processes at every checkpoint
    agree = [(r["step"], r["dist/replicas_agree"]) for r in _dist_rows(tmp_path / "two")]
    assert agree == [(2, 1.0), (4, 1.0)]


def test_a_world_size_that_does_not_divide_the_global_batch_is_refused(sim_ssl_root, tmp_path, monkeypatch,
                                                                      capsys):
    from nerfseg.cli import main

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    args = ["train", _config("supervised"), "--out", str(tmp_path / "run")]
    for s in _sets(sim_ssl_root):
        args += ["--set", s]
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "data.batch_size=2 (the global batch) is not divisible by the 3 processes" in err[0]
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("name", ["RANK"])
def test_bad_torchrun_environment_is_one_clear_line(name, monkeypatch):
    import torch

    from nerfseg.engine.distributed import setup_distributed
    from nerfseg.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv(name, "x")
    with pytest.raises(ConfigError, match=f"{name}='x' is not an integer"):
        setup_distributed(torch.device("cpu"), 2)
