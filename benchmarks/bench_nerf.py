"""NeRF head benchmark, measured in one run on this machine:

1. rendering throughput: ray samples per second, forward + backward (loss on rendered P and D, gradients to
   the voxel features and the head), for camera rays (a KITTI-like camera at the sensor looking forward)
   and LiDAR rays (the geometry loss's rays);
2. the cost the head adds to a training step at the default LiDAR ray budget: a plain supervised step
   (segmentor forward + CE + backward + AdamW step) against the same step plus ``lidar_ray_losses``, timed
   alternately on the same batch; target: the head adds at most 50 %.

Scans: the built-in simulator's (``nerfseg simulate``, 64 beams; ``--azimuth-steps 512`` is its default,
~30k points per scan, what the synthetic preset trains on; ``--azimuth-steps 2048`` gives KITTI-sized scans of
~120k points), or ``--data ROOT`` (any SemanticKITTI-layout tree). Timings are the best of ``--repeats``
(other processes share the CPU; the best run is the least disturbed one).

    .venv/bin/python benchmarks/bench_nerf.py [--azimuth-steps 512] [--preset tiny] [--batch 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import nerfseg  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE while libgomp is not loaded yet)

# isort: split
import torch

from nerfseg.data.collate import PointBatch, collate_samples
from nerfseg.data.datasets import open_dataset
from nerfseg.engine.precision import cpu_isa
from nerfseg.geometry.rays import RayBundle, camera_rays
from nerfseg.io_utils import atomic_write_text
from nerfseg.models.nerf import NerfConfig, NerfHead, lidar_ray_losses
from nerfseg.models.segmentor import LidarSegmentor, SegmentorConfig

NUM_CLASSES = 19


def make_batch(data_root: str | None, num_scans: int, azimuth_steps: int) -> PointBatch:
    """The first ``num_scans`` training scans of ``data_root``, or of a freshly simulated sequence 00."""
    if data_root is None:
        data_root = tempfile.mkdtemp(prefix="bench_nerf_")
        subprocess.run(
            [sys.executable, "-m", "nerfseg", "simulate", data_root, "--frames", str(num_scans),
             "--sequences", "00", "--no-progress", "--set", f"lidar.azimuth_steps={azimuth_steps}"],
            check=True,
        )  # fmt: skip
    reader = open_dataset("semantickitti", data_root, "train", sequences=[0])
    return collate_samples([reader[i] for i in range(num_scans)])


def git_commit() -> str:
    """Short commit of the checkout the benchmark runs from ("+dirty" with uncommitted changes; "unknown"
    outside git); a source archive may name it in a COMMIT file at its root."""
    root = Path(__file__).resolve().parent.parent
    if (root / "COMMIT").is_file():
        return (root / "COMMIT").read_text().strip()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_step_overhead(batch, seg_cfg, nerf_cfg, budgets, repeats):
    """Times of the plain step and of the step with the head at each LiDAR ray budget (rays per scan),
    measured round-robin so all see the same machine load. Returns ({name: [seconds]}, stats)."""
    torch.manual_seed(0)
    model = LidarSegmentor(seg_cfg, NUM_CLASSES).train()
    head = NerfHead(replace(nerf_cfg), model.voxel_feature_channels, NUM_CLASSES).train()  # own cfg copy
    optimizer = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    stats = {}

    def step(budget: int):
        out = model(batch)
        loss = torch.nn.functional.cross_entropy(out.point_logits, batch.labels, ignore_index=255)
        if budget > 0:
            head.cfg.lidar_rays_per_scan = budget
            nerf = lidar_ray_losses(head, out, batch, generator)
            loss = loss + nerf["total"]
            stats[f"rays_{budget}"] = int(nerf["num_rays"])
        stats["num_voxels"] = int(out.voxel_features.coords.shape[0])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    schedule = [0, *budgets]
    for budget in schedule:  # warm-up
        step(budget)
    times = {budget: [] for budget in schedule}
    order_rng = np.random.default_rng(0)
    for _ in range(repeats):  # every configuration once per round, in a shuffled order (no ordering bias)
        for budget in order_rng.permutation(schedule).tolist():
            times[budget].append(timed(lambda b=budget: step(b)))
    return times, stats


def bench_render_throughput(batch, seg_cfg, nerf_cfg, repeats, num_rays):
    torch.manual_seed(0)
    model = LidarSegmentor(seg_cfg, NUM_CLASSES).eval()
    with torch.no_grad():
        out = model(batch)
    feats = out.voxel_features.feats.detach().clone().requires_grad_(True)
    coords = out.voxel_features.coords
    head = NerfHead(nerf_cfg, feats.shape[1], NUM_CLASSES).train()
    gen = torch.Generator().manual_seed(1)
    # A KITTI-like camera at the LiDAR origin looking along +x (OpenCV axes).
    K = torch.tensor([[721.5, 0, 621.0], [0, 721.5, 187.5], [0, 0, 1]], dtype=torch.float64)
    lidar_to_cam = torch.eye(4, dtype=torch.float64)
    lidar_to_cam[:3, :3] = torch.tensor([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=torch.float64)
    uv = torch.rand(num_rays, 2, generator=gen, dtype=torch.float64) * torch.tensor([1242.0, 375.0])
    origins, dirs = camera_rays(K, lidar_to_cam, uv)
    bundle = RayBundle.from_rays(origins, dirs, 0)
    result = {}

    def camera_pass():
        voxels = SimpleNamespace(coords=coords, feats=feats)
        grid = head.build_volume(SimpleNamespace(voxel_features=voxels, voxel_size=out.voxel_size))
        r = head.render(grid, bundle, generator=gen)
        (r.probs.sum() + r.depth.sum()).backward()
        result["camera"] = (r.num_samples, r.num_evaluated, float(r.opacity.detach().mean()))

    camera_pass()
    camera_time = min(timed(camera_pass) for _ in range(repeats))
    return camera_time, result["camera"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny", help="segmentor preset (tiny: the synthetic config's)")
    parser.add_argument("--voxel-size", type=float, default=0.15, help="metres (synthetic config: 0.15)")
    parser.add_argument("--batch", type=int, default=2, help="scans per step (synthetic config: 2)")
    parser.add_argument("--data", help="SemanticKITTI-layout root with sequence 00 (default: simulate one)")
    parser.add_argument(
        "--azimuth-steps", type=int, default=512, help="simulated LiDAR columns (default 512)"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--budgets", default="256,512,1024", help="LiDAR rays per scan to time besides the default"
    )
    parser.add_argument("--camera-rays", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results", help="results folder (NAME.md, NAME.json)")
    parser.add_argument("--name", default="nerf", help="results file name (default nerf)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    batch = make_batch(args.data, args.batch, args.azimuth_steps)
    seg_cfg = SegmentorConfig(preset=args.preset, voxel_size=args.voxel_size)
    nerf_cfg = NerfConfig(enabled=True)
    budgets = sorted({nerf_cfg.lidar_rays_per_scan, *(int(b) for b in args.budgets.split(",") if b)})
    times, stats = bench_step_overhead(batch, seg_cfg, nerf_cfg, budgets, args.repeats)
    plain = min(times[0])
    with_head = min(times[nerf_cfg.lidar_rays_per_scan])
    overhead = (with_head - plain) / plain
    per_budget = {
        b: {
            "rays_per_step": stats[f"rays_{b}"],
            "best_s": round(min(times[b]), 4),
            "median_s": round(float(np.median(times[b])), 4),
            "overhead_best": round((min(times[b]) - plain) / plain, 4),
            "overhead_median": round(
                (float(np.median(times[b])) - float(np.median(times[0]))) / float(np.median(times[0])), 4
            ),
        }
        for b in budgets
    }
    camera_time, (samples, evaluated, opacity) = bench_render_throughput(
        batch, seg_cfg, nerf_cfg, args.repeats, args.camera_rays
    )
    record = {
        "command": " ".join(
            [f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"] * ("OMP_WAIT_POLICY" in os.environ)
            + [".venv/bin/python", *sys.argv]
        ),
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "commit": git_commit(),
        "machine": f"{cpu_isa().model}, ISA {cpu_isa().describe()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}",
        "load_average_at_end": Path("/proc/loadavg").read_text().split()[:3],
        "points_per_step": int(batch.points.shape[0]),
        "scans_per_step": args.batch,
        "scans": args.data or f"simulated, lidar.azimuth_steps={args.azimuth_steps}",
        "segmentor": {"preset": args.preset, "voxel_size": args.voxel_size},
        "nerf_config": asdict(nerf_cfg),
        "voxels_per_step": stats["num_voxels"],
        "lidar_rays_per_step": stats[f"rays_{nerf_cfg.lidar_rays_per_scan}"],
        "supervised_step_s": round(plain, 4),
        "supervised_step_median_s": round(float(np.median(times[0])), 4),
        "by_budget": per_budget,
        "step_with_nerf_head_s": round(with_head, 4),
        "head_overhead_fraction_best_of": round(overhead, 4),
        "head_overhead_fraction_median": per_budget[nerf_cfg.lidar_rays_per_scan]["overhead_median"],
        "target_overhead_fraction": 0.5,
        "camera_render": {
            "rays": args.camera_rays,
            "samples": samples,
            "samples_through_mlp": evaluated,
            "mean_opacity_untrained": round(opacity, 3),
            "forward_backward_s": round(camera_time, 4),
            "ray_samples_per_s": round(samples / camera_time),
            "mlp_samples_per_s": round(evaluated / camera_time),
        },
    }
    out = Path(args.out)
    atomic_write_text(out / f"{args.name}.json", json.dumps(record, indent=2) + "\n")
    md = [
        "# NeRF head benchmark (`benchmarks/bench_nerf.py`)",
        "",
        f"- command: `{record['command']}`",
        f"- machine: {record['machine']}",
        f"- load average at the end: {record['load_average_at_end']} (the machine is shared: other work was "
        "running during the measurement, so absolute times are noisy; the overhead is measured round-robin)",
        f"- date (UTC): {record['date_utc']}, commit {record['commit']}",
        f"- batch: {args.batch} scans ({record['scans']}), {record['points_per_step']} points, "
        f"{record['voxels_per_step']} voxels of {args.voxel_size} m, segmentor preset `{args.preset}`",
        f"- timings: best of {args.repeats}",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| supervised step (forward + CE + backward + AdamW), best | {plain:.3f} s |",
        f"| same step + LiDAR-ray losses, best, default budget ({nerf_cfg.lidar_rays_per_scan} rays/scan, "
        f"{nerf_cfg.lidar_samples_per_ray}+{nerf_cfg.lidar_surface_samples} samples/ray) | "
        f"{with_head:.3f} s |",
        f"| **cost the head adds at the default budget** (target <= 50 %), best step vs best step "
        f"| **{100 * overhead:.1f} %** |",
        f"| same, median step vs median step (noisier on the shared CPU) "
        f"| {100 * record['head_overhead_fraction_median']:.1f} % |",
        f"| camera rays rendered, forward + backward ({args.camera_rays} rays x "
        f"{samples // args.camera_rays} samples) | {camera_time:.3f} s |",
        f"| ray samples / s (forward + backward) | {samples / camera_time:,.0f} |",
        f"| samples through the MLP / s (occupied space only: {evaluated} of {samples}) | "
        f"{evaluated / camera_time:,.0f} |",
        "",
        "Cost by LiDAR ray budget (same run; overhead relative to the plain step, best-of and median):",
        "",
        "| rays per scan | rays per step | step best | step median | overhead (best) | overhead (median) |",
        "|---|---|---|---|---|---|",
        f"| 0 (plain) | 0 | {plain:.3f} s | {record['supervised_step_median_s']:.3f} s | - | - |",
        *[
            f"| {b} | {v['rays_per_step']} | {v['best_s']:.3f} s | {v['median_s']:.3f} s | "
            f"{100 * v['overhead_best']:.1f} % | {100 * v['overhead_median']:.1f} % |"
            for b, v in per_budget.items()
        ],
        "",
    ]
    atomic_write_text(out / f"{args.name}.md", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
