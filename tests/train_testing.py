"""Shared settings and helpers of the training tests."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TINY_SEGMENTOR_OVERRIDES = [
    "model.segmentor.preset=tiny",
    "model.segmentor.voxel_size=0.3",
    "model.segmentor.stem_channels=8",
    "model.segmentor.encoder_channels=[16,16]",
    "model.segmentor.decoder_channels=[16,16]",
    "model.segmentor.encoder_depths=[1,1]",
    "model.segmentor.decoder_depths=[1,1]",
    "model.segmentor.point_hidden=16",
]
"""`--set` keys that shrink the segmentor to a two-level, 8-16 channel U-Net for fast tests."""

SMALL_HEAD_OVERRIDES = [
    "model.nerf.lidar_rays_per_scan=64",
    "model.nerf.samples_per_ray=48",
    "model.nerf.lidar_samples_per_ray=24",
    "model.nerf.mlp_width=16",
    "model.nerf.far=40",
    "ssl.camera.stride=8",
    "ssl.camera.sampler.budget=128",
    "ssl.camera.tau_opacity=0.0",  # a fresh head is nearly transparent: let the test rays through
    "ssl.camera.fusion.tau_mask=0.0",
    "ssl.pseudo.threshold=0.0",
    "ssl.projection.min_votes=1",
]
"""`--set` keys that shrink the NeRF head and the camera-ray budget and open every gate (a fresh head is
nearly transparent), so every method runs its whole path in a two-step test."""


def subprocess_env() -> dict[str, str]:
    """Environment of a `python -m nerfseg` subprocess: this checkout's src/ first, one OpenMP thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def checkpoint_step(path: Path) -> int:
    """Step of the training checkpoint at ``path``, -1 while it is missing or being written."""
    from nerfseg.engine.checkpoint import load_checkpoint

    try:
        return int(load_checkpoint(path)["step"])
    except Exception:
        return -1


def child_pids(pid: int) -> list[int]:
    """Pids of the child processes of ``pid`` (Linux /proc), e.g. a training's loader workers."""
    pids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(c) for c in (task / "children").read_text().split()]
    return pids


def process_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def kill_at_checkpoint(
    command: list[str], checkpoint: Path, min_step: int, timeout_s: float, poll_s: float = 0.05
) -> list[int]:
    """Start ``command`` (a training), SIGKILL it once ``checkpoint`` holds step >= ``min_step``, and return
    the pids of its child processes (loader workers) seen just before the kill. Fails if the training ends
    first (with the tail of its stderr).

    The training is held with SIGSTOP while the checkpoint is read and its children listed, and runs only
    during the ``poll_s`` sleeps between reads: however slow a read is on a loaded machine, the training
    advances at most ``poll_s`` of its own time past the first checkpoint at ``min_step`` before the kill
    (a tiny run's last steps take well under a second, so an unheld training could finish, stop its
    workers and write its final checkpoint while a read was under way)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(command, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    children: list[int] = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            proc.send_signal(signal.SIGSTOP)
            if checkpoint_step(checkpoint) >= min_step:
                children = child_pids(proc.pid)
                break
            proc.send_signal(signal.SIGCONT)
            time.sleep(poll_s)
        assert proc.poll() is None, f"training ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        found = checkpoint_step(checkpoint)
        assert found >= min_step, f"no checkpoint at step >= {min_step} in {timeout_s} s"
    finally:
        proc.send_signal(signal.SIGKILL)  # a stopped process dies of SIGKILL too
        proc.wait()
        proc.stderr.close()
    return children


def corrupt_two_scans(source: Path, root: Path, truncated_frame: int, short_frame: int) -> tuple[Path, Path]:
    """Copy the dataset ``source`` to ``root`` and make two scans of sequence 00 unreadable: frame
    ``truncated_frame``'s ``.bin`` cut by 6 bytes, frame ``short_frame``'s ``.label`` 3 labels short.
    Returns (the truncated .bin, the short .label)."""
    import shutil

    shutil.copytree(source, root)
    folder = root / "sequences" / "00"
    truncated = folder / "velodyne" / f"{truncated_frame:06d}.bin"
    truncated.write_bytes(truncated.read_bytes()[:-6])
    short = folder / "labels" / f"{short_frame:06d}.label"
    short.write_bytes(short.read_bytes()[:-12])
    return truncated, short
