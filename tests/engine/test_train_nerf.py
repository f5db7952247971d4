"""Training with the NeRF head's LiDAR-ray losses: the head trains, its weights are checkpointed (not
exported), and resuming mid-run reproduces an uninterrupted run exactly (NeRF ray draws included)."""

from __future__ import annotations

from pathlib import Path

import torch

from nerfseg.config import load_config
from nerfseg.engine.checkpoint import load_checkpoint
from nerfseg.engine.logging import read_metrics
from nerfseg.engine.train import train

PRESET = Path(__file__).resolve().parents[2] / "configs" / "synthetic" / "supervised.yaml"


def _cfg(root: Path, steps: int):
    return load_config(
        PRESET,
        [
            f"data.root={root}",
            f"train.max_steps={steps}",
            "train.checkpoint_every=2",
            "train.log_every=1",
            "train.val_every=0",
            "train.progress=false",
            "train.num_threads=1",
            "data.val_split=",
            "data.num_workers=0",
            "model.segmentor.voxel_size=0.4",
            "model.segmentor.stem_channels=8",
            "model.segmentor.encoder_channels=[8]",
            "model.segmentor.decoder_channels=[8]",
            "model.segmentor.encoder_depths=[1]",
            "model.segmentor.decoder_depths=[1]",
            "model.segmentor.point_hidden=8",
            "method=geometry",
            "model.nerf.lidar_rays_per_scan=32",
            "model.nerf.samples_per_ray=24",
            "model.nerf.lidar_surface_samples=4",
            "model.nerf.mlp_width=16",
        ],
    )


def test_nerf_head_trains_checkpoints_and_resumes_exactly(tiny_kitti, tmp_path):
    straight = tmp_path / "straight"
    train(_cfg(tiny_kitti, 3), straight)
    state = load_checkpoint(straight / "checkpoints" / "last.pt")
    assert "nerf_head" in state and state["nerf_head"]
    assert "nerf_head" not in load_checkpoint(straight / "model.pt")
    records = [r for r in read_metrics(straight / "metrics.jsonl") if "train/geo_labeled_depth" in r]
    assert len(records) == 3 and all(r["train/geo_labeled_num_rays"] > 0 for r in records)
    assert all(r["train/geo_labeled_depth"] > 0 and r["train/loss"] > r["train/supervised"] for r in records)
    assert all(r["train/geometry_labeled"] > 0 for r in records)

    # the same run stopped right after its step-2 checkpoint and resumed ends identically
    half = tmp_path / "half"
    _stop_after(_cfg(tiny_kitti, 3), half, 2)
    train(_cfg(tiny_kitti, 3), half, resume=True)
    end = load_checkpoint(half / "checkpoints" / "last.pt")
    assert end["step"] == 3
    for part in ("model", "nerf_head"):
        for key, value in state[part].items():
            assert torch.equal(end[part][key], value), (part, key)
    assert torch.equal(end["rng"]["gen/nerf"], state["rng"]["gen/nerf"])


def _stop_after(cfg, run_dir: Path, steps: int) -> None:
    """Run ``cfg`` but stop right after the checkpoint of step ``steps`` (as a kill would)."""
    import nerfseg.engine.checkpoint as ckpt

    original = ckpt.save_checkpoint

    class Stop(Exception):
        pass

    def save_then_stop(path, payload):
        out = original(path, payload)
        if payload.get("step") == steps:
            raise Stop
        return out

    ckpt.save_checkpoint = save_then_stop
    try:
        train(cfg, run_dir)
    except Stop:
        pass
    finally:
        ckpt.save_checkpoint = original
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == steps
