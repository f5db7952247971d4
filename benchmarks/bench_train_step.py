"""Training-step time of the supervised engine (segmentor forward + CE/Lovász loss + backward + AdamW step),
for the `tiny` preset on synthetic-size scans and the `full` preset on SemanticKITTI-size scans.

Scans come from the built-in simulator (written once into a temporary folder): 64 beams x 512 azimuth
steps (~30k points, the synthetic dataset's size) and 64 x 2048 (~120k points, a SemanticKITTI scan).
Each configuration builds the model as the presets do (configs/synthetic, configs/semantickitti), feeds
a batch of `--batch-size` augmented scans, runs `--warmup` untimed steps, then `--steps` timed steps;
reports the median and the best step time, the voxel count and the process's peak RSS.

    .venv/bin/python benchmarks/bench_train_step.py                      # writes benchmarks/results/
    .venv/bin/python benchmarks/bench_train_step.py --threads 2 --steps 3 --only tiny
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

CASES = {
    # name: (segmentor preset, voxel size m, simulator azimuth steps, preset file it mirrors)
    "tiny": ("tiny", 0.15, 512, "configs/synthetic/supervised.yaml"),
    "full": ("full", 0.05, 2048, "configs/semantickitti/supervised.yaml"),
}


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def simulate(root: Path, azimuth_steps: int, frames: int) -> Path:
    from nerfseg.cli import main

    args = ["simulate", str(root), "--frames", str(frames), "--sequences", "00", "--no-progress"]
    args += ["--set", f"lidar.azimuth_steps={azimuth_steps}", "--set", "frame_interval_s=0.5"]
    if main(args) != 0:
        raise SystemExit("simulation failed")
    return root


def bench_case(name: str, data_root: Path, batch_size: int, warmup: int, steps: int) -> dict:
    from nerfseg.config import load_config
    from nerfseg.data.augment import augment_sample, augmentation_rng
    from nerfseg.data.collate import collate_samples
    from nerfseg.data.datasets import open_dataset
    from nerfseg.engine.losses import SegmentationLoss
    from nerfseg.engine.train import build_model, build_optimizer
    from nerfseg.sparse import voxelize

    preset, voxel, _, preset_file = CASES[name]
    cfg = load_config(
        REPO / preset_file,
        [f"model.segmentor.preset={preset}", f"model.segmentor.voxel_size={voxel}", "train.max_steps=1000"],
    )
    source = open_dataset("semantickitti", data_root, "train")
    torch.manual_seed(0)
    model, _ = build_model(cfg, 19)
    model.train()
    optimizer, scheduler = build_optimizer(cfg, model.parameters())
    loss_fn = SegmentationLoss(cfg.loss)

    def batch_at(step: int):
        samples = [
            augment_sample(
                source[(step * batch_size + i) % len(source)], cfg.augment, augmentation_rng(0, 0, i)
            )
            for i in range(batch_size)
        ]
        return collate_samples(samples)

    timings, data_times = [], []
    voxels = points = 0
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        batch = batch_at(step)
        t1 = time.perf_counter()
        out = model(batch)
        loss = loss_fn(out.point_logits, batch.labels)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        t2 = time.perf_counter()
        if step >= warmup:
            timings.append(t2 - t1)
            data_times.append(t1 - t0)
        points = int(batch.points.shape[0])
        voxels = int(
            voxelize(batch.points[:, :3], batch.batch_index, batch.points, voxel).tensor.coords.shape[0]
        )
    return {
        "case": name,
        "preset": preset,
        "voxel_size_m": voxel,
        "batch_size": batch_size,
        "points_per_batch": points,
        "voxels_per_batch": voxels,
        "parameters": sum(p.numel() for p in model.parameters()),
        "step_seconds_median": statistics.median(timings),
        "step_seconds_best": min(timings),
        "step_seconds_all": [round(t, 4) for t in timings],
        "data_seconds_median": statistics.median(data_times),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument(
        "--batch-size", type=int, default=2, help="scans per step (default 2, as the presets)"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--only", choices=sorted(CASES), help="run one case")
    parser.add_argument("--out", type=Path, default=RESULTS / "train_step.json", help="results JSON")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    command = "python benchmarks/bench_train_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {
        "benchmark": "training step (segmentor fwd + CE/Lovasz + bwd + AdamW), CPU",
        "command": command.strip(),
        "machine": machine(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()),
        "cases": [],
    }
    names = [args.only] if args.only else list(CASES)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        for name in names:
            azimuth = CASES[name][2]
            root = simulate(Path(tmp) / f"sim_{azimuth}", azimuth, frames=max(args.batch_size, 2))
            case = bench_case(name, root, args.batch_size, args.warmup, args.steps)
            results["cases"].append(case)
            print(
                f"{name:5s}: {case['points_per_batch']} points, {case['voxels_per_batch']} voxels per "
                f"batch of {args.batch_size}: step median {case['step_seconds_median']:.3f} s, best "
                f"{case['step_seconds_best']:.3f} s; data {case['data_seconds_median']:.3f} s; "
                f"peak RSS {case['peak_rss_gib']:.2f} GiB"
            )
    results["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
