"""One process per run folder (``RUN/.lock``), and ``--resume`` of a finished run changes nothing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nerfseg.cli import main
from nerfseg.config import load_config
from nerfseg.engine.logging import read_metrics
from nerfseg.engine.run_lock import RunFolderLocked, RunLock
from nerfseg.engine.train import train
from train_testing import TINY_SEGMENTOR_OVERRIDES, checkpoint_step, subprocess_env

PRESET = Path(__file__).resolve().parents[2] / "configs" / "synthetic" / "supervised.yaml"

HOLD = """
import sys, time
from nerfseg.engine.run_lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
lock.write_pid()
print("held", flush=True)
time.sleep(120)
"""


def _overrides(root: Path, steps: int, extra=()) -> list[str]:
    return [
        f"data.root={root}", f"train.max_steps={steps}", "train.checkpoint_every=1", "train.log_every=1",
        "train.val_every=0", "train.progress=false", "train.num_threads=1", "data.batch_size=2",
        "data.num_workers=0", *TINY_SEGMENTOR_OVERRIDES, *extra,
    ]  # fmt: skip


def test_lock_is_exclusive_names_the_holder_and_dies_with_it(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], env=subprocess_env(),
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderLocked) as err:
            RunLock(run).acquire()
        assert str(err.value).startswith(f"{run}: run folder in use by another training process")
        assert f"(pid {holder.pid})" in str(err.value)
    finally:
        holder.send_signal(signal.SIGKILL)  # no cleanup code runs: the kernel drops the flock
        holder.wait()
        holder.stdout.close()
    with RunLock(run) as lock:  # free again
        lock.write_pid()
        assert (run / ".lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(RunFolderLocked):  # also against a second lock of the same process
            RunLock(run).acquire()
    RunLock(run).acquire().release()


def test_second_train_on_a_run_folder_fails_at_once(tiny_kitti, tmp_path, capsys):
    run = tmp_path / "run"
    sets = _overrides(tiny_kitti, 400)
    args = [sys.executable, "-m", "nerfseg", "train", str(PRESET), "--out", str(run)]
    for s in sets:
        args += ["--set", s]
    first = subprocess.Popen(args, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None and checkpoint_step(run / "checkpoints"
                                                                                        / "last.pt") < 1:
            time.sleep(0.05)  # fmt: skip
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        before = (run / "metrics.jsonl").stat().st_size
        started = time.monotonic()
        assert main(["train", "--resume", str(run), "--no-progress"]) == 1
        assert time.monotonic() - started < 10  # refused at once, not after waiting
        err = capsys.readouterr().err.strip()
        assert err == (
            f"nerfseg train: error: {run}: run folder in use by another training process (pid {first.pid}); "
            "wait for it to end or stop it, or train into another --out"
        )
        assert first.poll() is None  # the first run goes on untouched
        assert (run / "metrics.jsonl").stat().st_size >= before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()


def _snapshot(run: Path) -> dict[str, tuple[int, str]]:
    """(mtime ns, sha256) of every file under the run folder."""
    return {
        str(p.relative_to(run)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


def test_resume_of_a_finished_run_says_so_and_changes_nothing(tiny_kitti, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = load_config(PRESET, _overrides(tiny_kitti, 3))
    done = train(cfg, run)
    before = _snapshot(run)
    assert {"config.yaml", "metrics.jsonl", "model.pt", "checkpoints/last.pt", ".lock"} <= set(before)
    time.sleep(0.01)  # a rewrite would show in the mtimes
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{run} is already finished: its checkpoint is at step 3 of train.max_steps 3")
    assert f"final train loss {done.train['loss']:.4f}" in out
    assert f"val mIoU {100 * done.val_miou:.2f} %" in out and "Nothing changed" in out
    assert _snapshot(run) == before
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if "val/miou" in r] == [3]  # no duplicate
    # a harmless key (workers) does not make it unfinished; a raised max_steps is a config change, as before
    assert main(["train", "--resume", str(run), "--set", "data.num_workers=1"]) == 0
    assert main(["train", "--resume", str(run), "--set", "train.max_steps=5"]) == 1
    assert "changed keys: train.max_steps" in capsys.readouterr().err
    assert _snapshot(run) == before


def test_resume_at_max_steps_without_model_pt_redoes_the_final_validation(tiny_kitti, tmp_path, capsys):
    """Stopped between its last checkpoint and model.pt (during the final validation): not finished."""
    run = tmp_path / "run"
    train(load_config(PRESET, _overrides(tiny_kitti, 2)), run)
    (run / "model.pt").unlink()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("trained 2 steps in ")
    assert (run / "model.pt").is_file()
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records if "val/miou" in r] == [2]  # validated again, logged once
    assert [r["step"] for r in records if "train/loss" in r] == [1, 2]
