"""Exact resume: a real `nerfseg train` process killed with SIGKILL after a checkpoint and resumed ends with
the same weights, optimiser and scheduler state, bit for bit, as an uninterrupted run with the same seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nerfseg.config import load_config
from nerfseg.engine.checkpoint import load_checkpoint
from nerfseg.engine.logging import read_metrics
from train_testing import TINY_SEGMENTOR_OVERRIDES, checkpoint_step, kill_at_checkpoint, subprocess_env

REPO = Path(__file__).resolve().parents[2]
PRESET = REPO / "configs" / "synthetic" / "supervised.yaml"
STEPS = 6


def _command(root: Path, run_dir: Path, extra: list[str]) -> list[str]:
    sets = [
        f"data.root={root}",
        f"train.max_steps={STEPS}",
        "train.checkpoint_every=2",
        "train.log_every=1",
        "train.val_every=0",
        "train.progress=false",
        "train.num_threads=1",
        "data.batch_size=2",
        *TINY_SEGMENTOR_OVERRIDES,
    ]
    args = [sys.executable, "-m", "nerfseg", "train", str(PRESET), "--out", str(run_dir)]
    for s in sets:
        args += ["--set", s]
    return args + extra


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tiny_kitti, tmp_path):
    assert load_config(PRESET).data.num_workers > 0  # the preset's workers are exercised below
    killed = tmp_path / "killed"
    last = killed / "checkpoints" / "last.pt"
    kill_at_checkpoint(_command(tiny_kitti, killed, []), last, min_step=2, timeout_s=120)
    killed_at = checkpoint_step(last)
    assert 2 <= killed_at < STEPS

    resumed = subprocess.run(
        [sys.executable, "-m", "nerfseg", "train", "--resume", str(killed), "--no-progress"],
        env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    straight = tmp_path / "straight"
    full = subprocess.run(
        _command(tiny_kitti, straight, []), env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert full.returncode == 0, full.stderr[-3000:]

    a = load_checkpoint(killed / "checkpoints" / "last.pt")
    b = load_checkpoint(straight / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == STEPS
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for pid, state in b["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(a["optimizer"]["state"][pid][name], value), (pid, name)
    assert a["scheduler"] == b["scheduler"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    # the resumed log reads like one run: every step once, same losses as the uninterrupted run
    la = [(r["step"], r["train/loss"]) for r in read_metrics(killed / "metrics.jsonl") if "train/loss" in r]
    lb = [(r["step"], r["train/loss"]) for r in read_metrics(straight / "metrics.jsonl") if "train/loss" in r]
    assert la == lb and [s for s, _ in la] == list(range(1, STEPS + 1))
