"""Exact resume of the `nerf` method: a `nerfseg train` process with two loader workers per stream, killed
with SIGKILL after a checkpoint and resumed, ends with the same student, NeRF head, EMA teacher, optimiser,
scheduler and RNG states, bit for bit, as an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nerfseg.engine.checkpoint import load_checkpoint
from nerfseg.engine.logging import read_metrics
from train_testing import (
    SMALL_HEAD_OVERRIDES,
    TINY_SEGMENTOR_OVERRIDES,
    checkpoint_step,
    kill_at_checkpoint,
    process_alive,
    subprocess_env,
)

REPO = Path(__file__).resolve().parents[2]
STEPS = 5
APPEARANCE = ("ssl.camera.appearance.enabled=true", "ssl.camera.appearance.steps=5")


def _command(root: Path, run_dir: Path, extra: tuple[str, ...] = ()) -> list[str]:
    sets = [
        *extra, f"data.root={root}", "data.label_fraction=0.5", "data.batch_size=1", "data.num_workers=2",
        "data.val_split=", f"train.max_steps={STEPS}", "train.checkpoint_every=2", "train.log_every=1",
        "train.progress=false", "train.num_threads=1", *TINY_SEGMENTOR_OVERRIDES, *SMALL_HEAD_OVERRIDES,
    ]
    args = [sys.executable, "-m", "nerfseg", "train", str(REPO / "configs/synthetic/nerf.yaml"), "--out",
            str(run_dir)]
    for s in sets:
        args += ["--set", s]
    return args


def _assert_same_tensors(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for key in a:
        assert torch.equal(a[key], b[key]), (what, key)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), APPEARANCE], ids=["nerf", "appearance-gate"])
def test_nerf_run_killed_and_resumed_matches_uninterrupted_run(sim_ssl_root, tmp_path, extra):
    killed = tmp_path / "killed"
    last = killed / "checkpoints" / "last.pt"
    workers = kill_at_checkpoint(_command(sim_ssl_root, killed, extra), last, min_step=2, timeout_s=300)
    assert len(workers) >= 2  # the loader workers of the two streams, seen just before the kill
    assert 2 <= checkpoint_step(last) < STEPS
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(process_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(process_alive(pid) for pid in workers), "loader workers outlived the killed training"

    resumed = subprocess.run(
        [sys.executable, "-m", "nerfseg", "train", "--resume", str(killed), "--no-progress"],
        env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = tmp_path / "straight"
    full = subprocess.run(
        _command(sim_ssl_root, straight, extra), env=subprocess_env(), capture_output=True, text=True,
        timeout=600,
    )
    assert full.returncode == 0, full.stderr[-3000:]

    a = load_checkpoint(killed / "checkpoints" / "last.pt")
    b = load_checkpoint(straight / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == STEPS
    parts = ("model", "nerf_head", "teacher", "teacher_head") + (("appearance_net",) if extra else ())
    for part in parts:
        _assert_same_tensors(a[part], b[part], part)
    assert "appearance net:" not in resumed.stdout  # the resumed run restores the net, it does not retrain it
    assert ("appearance net:" in full.stdout) == bool(extra)
    for pid, state in b["optimizer"]["state"].items():
        _assert_same_tensors(a["optimizer"]["state"][pid], state, f"optimizer {pid}")
    assert a["scheduler"] == b["scheduler"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert torch.equal(a["rng"]["gen/nerf"], b["rng"]["gen/nerf"])
    la = [(r["step"], r["train/loss"], r["train/render"]) for r in read_metrics(killed / "metrics.jsonl")
          if "train/loss" in r]  # fmt: skip
    lb = [(r["step"], r["train/loss"], r["train/render"]) for r in read_metrics(straight / "metrics.jsonl")
          if "train/loss" in r]  # fmt: skip
    assert la == lb and [s for s, *_ in la] == list(range(1, STEPS + 1))
