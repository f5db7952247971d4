"""Ctrl-C on `nerfseg train` with loader workers: exit 130 at once, one line saying how to resume, no
traceback (also for a second Ctrl-C), no worker left, and `--resume` goes on from the last checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nerfseg.engine.checkpoint import load_checkpoint
from train_testing import TINY_SEGMENTOR_OVERRIDES, checkpoint_step, child_pids, process_alive, subprocess_env

PRESET = Path(__file__).resolve().parents[2] / "configs" / "synthetic" / "supervised.yaml"
STEPS = 12
EXIT_WITHIN_S = 2.0


def _sigint_as_from_a_terminal() -> None:
    """The child's SIGINT at its default, as a terminal starts a command (a test run started in the
    background by a non-interactive shell inherits SIGINT ignored, and Python then keeps ignoring it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _command(root: Path, run: Path) -> list[str]:
    sets = [
        f"data.root={root}", f"train.max_steps={STEPS}", "train.checkpoint_every=1", "train.log_every=1",
        "train.val_every=0", "train.progress=false", "train.num_threads=1", "data.batch_size=2",
        "data.num_workers=2", *TINY_SEGMENTOR_OVERRIDES,
    ]  # fmt: skip
    args = [sys.executable, "-m", "nerfseg", "train", str(PRESET), "--out", str(run)]
    for s in sets:
        args += ["--set", s]
    return args


def _interrupt(command: list[str], run: Path, second_after_s: float | None):
    """Start ``command`` in its own process group, Ctrl-C it (SIGINT to the group, as a terminal does) after
    its checkpoint of step 2; returns (returncode, seconds from the first SIGINT to the exit, stderr,
    worker pids)."""
    proc = subprocess.Popen(command, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=_sigint_as_from_a_terminal)  # fmt: skip
    last = run / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and checkpoint_step(last) < 2:
        time.sleep(0.02)
    assert proc.poll() is None, f"training ended before the interrupt: {proc.stderr.read()[-2000:]}"
    workers = child_pids(proc.pid)
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    if second_after_s is not None:
        time.sleep(second_after_s)
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:  # already gone
            pass
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, time.monotonic() - started, err, workers


@pytest.mark.slow
def test_ctrl_c_stops_at_once_and_resume_continues(tiny_kitti, tmp_path):
    run = tmp_path / "run"
    code, seconds, err, workers = _interrupt(_command(tiny_kitti, run), run, None)
    assert code == 130, err[-2000:]
    assert seconds < EXIT_WITHIN_S, f"took {seconds:.2f} s to stop"
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stopped by Ctrl-C after ")
    assert f"`nerfseg train --resume {run}` continues from it exactly" in lines[0]
    assert len(workers) >= 2  # the labeled stream's loader workers ...
    time.sleep(0.5)
    assert not [pid for pid in workers if process_alive(pid)]  # ... are gone with it
    stopped_at = checkpoint_step(run / "checkpoints" / "last.pt")
    assert 2 <= stopped_at < STEPS and f"checkpoint of step {stopped_at} kept" in lines[0]

    resumed = subprocess.run(
        [sys.executable, "-m", "nerfseg", "train", "--resume", str(run), "--no-progress"],
        env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == STEPS


@pytest.mark.slow
def test_second_ctrl_c_during_the_shutdown_is_quiet(tiny_kitti, tmp_path):
    run = tmp_path / "run"
    code, seconds, err, _ = _interrupt(_command(tiny_kitti, run), run, 0.05)
    assert code == 130, err[-2000:]
    assert seconds < EXIT_WITHIN_S and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 1


LONG_CALL = """
import sys, torch
from nerfseg.engine.interrupt import InterruptWatchdog
InterruptWatchdog(sys.argv[1], grace_s=0.5).start()
print("busy", flush=True)
torch.linalg.matrix_power(torch.rand(3000, 3000), 2**20 - 1)  # one torch call of many seconds
print("the call ended before the watchdog did", flush=True)
"""


def test_watchdog_ends_a_process_stuck_in_one_long_torch_call(tmp_path):
    """Python runs a signal handler only between bytecodes; the watchdog thread does not wait for that."""
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    proc = subprocess.Popen([sys.executable, "-c", LONG_CALL, str(tmp_path)], env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_as_from_a_terminal)  # fmt: skip
    assert proc.stdout.readline().strip() == "busy"
    time.sleep(0.5)  # inside the call
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and out == "", (out, err)
    assert time.monotonic() - started < 0.5 + EXIT_WITHIN_S
    assert err.strip() == (
        f"stopped by Ctrl-C in the middle of a training step; `nerfseg train --resume {tmp_path}` continues "
        f"exactly from the last checkpoint ({tmp_path / 'checkpoints' / 'last.pt'})"
    )
