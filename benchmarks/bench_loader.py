"""Loader rate: scans per second the training DataLoaders deliver into one training process (issue 12 item 6).

Target: >= 20 scans/s with the default workers, above a GPU's step rate (mmdet3d's MinkUNet on an A100 trains
at about 15 scans/s), so data loading never starves a GPU.

What runs: the loaders of `nerfseg train` exactly as the run builds them (``nerfseg.engine.train._streams`` of
the config: same datasets, augmentation, workers, collate), iterated with no model:

1. ``labeled``: the labeled stream alone (what `supervised` reads).
2. ``labeled+unlabeled``: both streams drawn in turn as the `nerf` recipe's step draws them; each unlabeled
   scan is read, augmented twice (teacher and student views), and its camera image decoded, its cached
   superpixel masks read (sha256 of the decoded image + .npz) and its ground-truth semantic image read.

Data: a simulated SemanticKITTI-layout sequence of SemanticKITTI size (64 beams x 2048 azimuth steps: about
123k points per scan, a 1242 x 375 camera image per scan), simulated once into --data, masks precomputed
there with the built-in superpixel source (the nerf preset's SAM masks are read the same way: one .npz per
image). Each measurement runs ``--warmup`` steps (workers start, first batches) before ``--steps`` timed ones.

The per-sample split times every stage of the same data path one at a time in this process (one sample at a
time, no workers): read .bin, read + map labels, decode the image, read its masks, read the pixel truth,
augment, collate; and, for reference, voxelization (which the model does in the training process, not the
loader).

Writes benchmarks/results/loader.json and loader.md (command, machine: CPU model, ISA, cores; date; load
average before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nerfseg  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE while libgomp is not loaded yet)

# isort: split
import torch

from nerfseg.engine.precision import cpu_isa

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CONFIG = REPO / "configs" / "semantickitti" / "nerf.yaml"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def simulate_data(root: Path, frames: int, azimuth_steps: int) -> None:
    """A SemanticKITTI-layout sequence 00 (a training sequence) of ``frames`` scans under ``root``, unless
    one with that many scans is there already."""
    from nerfseg.sim.config import LidarConfig, SimConfig
    from nerfseg.sim.simulate import OutputFormat, simulate

    velodyne = root / "sequences" / "00" / "velodyne"
    if velodyne.is_dir() and len(list(velodyne.glob("*.bin"))) == frames:
        return
    config = SimConfig(frames=frames, lidar=LidarConfig(azimuth_steps=azimuth_steps))
    workers = os.cpu_count() or 1
    simulate(root, config, OutputFormat.SEMANTICKITTI, ["00"], show_progress=True, workers=workers)


def run_config(root: Path, config: Path, workers: int | None, batch_size: int | None, label_fraction: float):
    """The run config (default: the nerf preset) with the built-in superpixel masks (SAM needs weights) on
    ``root`` and ``label_fraction`` of its scans labeled."""
    from nerfseg.config import load_config

    overrides = [f"data.root={root}", "masks.source=superpixel", "masks.compute_missing=false",
                 f"data.label_fraction={label_fraction}"]
    if workers is not None:
        overrides.append(f"data.num_workers={workers}")
    if batch_size is not None:
        overrides.append(f"data.batch_size={batch_size}")
    return load_config(config, overrides)


def precompute_masks(cfg) -> int:
    """Fill the config's mask cache for every training image; returns the number of images."""
    from nerfseg.engine.build import open_split
    from nerfseg.masks.config import open_run_mask_cache

    cache = open_run_mask_cache(cfg)
    source = open_split(cfg, cfg.data.train_split)
    count = 0
    for i in range(len(source)):
        for camera in source[i].cameras:
            cache.ensure(camera.load_image())
            count += 1
    return count


def measure_streams(cfg, steps: int, warmup: int, with_unlabeled: bool) -> dict:
    """Iterate the run's streams (no model) for ``warmup`` + ``steps`` steps; scans/s over the timed ones."""
    from nerfseg.data.loader import close_batches, next_batch
    from nerfseg.engine.build import open_split
    from nerfseg.engine.train import _streams, labeled_indices

    source = open_split(cfg, cfg.data.train_split)
    labeled = labeled_indices(cfg, source)
    started = time.perf_counter()
    labeled_batches, unlabeled_batches, _ = _streams(cfg, source, labeled, 0)
    if not with_unlabeled:
        close_batches(unlabeled_batches)
        unlabeled_batches = None
    scans = points = 0
    first_batch_s = None
    t0 = None
    try:
        for step in range(warmup + steps):
            if step == warmup:
                t0, scans, points = time.perf_counter(), 0, 0
            batch = next_batch(labeled_batches)
            scans += batch.batch_size
            points += int(batch.points.shape[0])
            if unlabeled_batches is not None:
                unlabeled = next_batch(unlabeled_batches)
                scans += unlabeled.batch_size
                points += int(unlabeled.student.points.shape[0])
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - started
        seconds = time.perf_counter() - t0
    finally:
        close_batches(labeled_batches)
        close_batches(unlabeled_batches)
    return {
        "stream": "labeled+unlabeled" if with_unlabeled else "labeled",
        "workers_per_stream": cfg.data.num_workers,
        "loader_processes": cfg.data.num_workers * (2 if with_unlabeled else 1),
        "batch_size": cfg.data.batch_size,
        "steps": steps,
        "scans": scans,
        "seconds": seconds,
        "scans_per_s": scans / seconds,
        "steps_per_s": steps / seconds,
        "points_per_scan": points / max(scans, 1),
        "first_batch_s": first_batch_s,
    }


def _timed(fn, *args):
    """((wall seconds, CPU seconds of this process), fn(*args)); the CPU time is what a stage costs whatever
    else shares the cores (each stage runs on one thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return (time.perf_counter() - wall, time.process_time() - cpu), out


READER = "reader: dataset[i] (.bin, .label, label map, image header)"


def per_sample_split(cfg, samples: int) -> dict:
    """Median seconds per sample of each stage of the data path, timed one at a time in this process."""
    from nerfseg.data import io
    from nerfseg.data.augment import augment_sample, augmentation_rng
    from nerfseg.data.collate import collate_samples
    from nerfseg.data.datasets import DatasetKind
    from nerfseg.data.ground_truth import read_semantic_train
    from nerfseg.engine.build import open_split
    from nerfseg.engine.streams import UnlabeledScan, collate_unlabeled, strip_labels
    from nerfseg.masks.config import open_run_mask_cache
    from nerfseg.sparse import voxelize

    source = open_split(cfg, cfg.data.train_split)
    cache = open_run_mask_cache(cfg)
    label_map = DatasetKind(cfg.data.dataset).label_map
    stages: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, timed):
        stages.setdefault(name, []).append(timed[0])
        return timed[1]

    for index in range(min(samples, len(source))):
        points = add("read .bin", _timed(io.read_points_bin, source.scan_path(index), 4))
        add("read .label", _timed(io.read_label_file, source.label_path(index), points.shape[0]))
        sample = add(READER, _timed(source.__getitem__, index))
        camera = sample.cameras[0]
        image = add("decode image (PNG 1242x375)", _timed(camera.load_image))
        add("masks (image sha256 + .npz read)", _timed(cache.get, image, camera.image_path))
        add("pixel truth (semantic PNG + label map)", _timed(read_semantic_train, camera, label_map))
        rng = augmentation_rng(0, 0, index)
        view = add("augment (one view)", _timed(augment_sample, strip_labels(sample), cfg.augment, rng))
        add("collate labeled (one scan)", _timed(collate_samples, [sample]))
        scan = UnlabeledScan(view, view, sample.labels)
        add("collate unlabeled (one scan, two views)", _timed(collate_unlabeled, [scan]))
        feats = torch.from_numpy(sample.points[:, :4].copy())
        zeros = torch.zeros(len(feats), dtype=torch.int64)
        voxel = cfg.model.segmentor.voxel_size
        add("voxelize (training process, not the loader)", _timed(voxelize, feats[:, :3], zeros, feats,
                                                                   voxel))
    wall = {name: statistics.median(w for w, _ in v) for name, v in stages.items()}
    cpu = {name: statistics.median(c for _, c in v) for name, v in stages.items()}

    def per_scan(m: dict[str, float]) -> tuple[float, float]:
        labeled = m[READER] + m["augment (one view)"] + m["collate labeled (one scan)"]
        unlabeled = (
            m[READER]
            + 2 * m["augment (one view)"]
            + m["decode image (PNG 1242x375)"]
            + m["masks (image sha256 + .npz read)"]
            + m["pixel truth (semantic PNG + label map)"]
            + m["collate unlabeled (one scan, two views)"]
        )
        return labeled, unlabeled

    (labeled_wall, unlabeled_wall), (labeled_cpu, unlabeled_cpu) = per_scan(wall), per_scan(cpu)
    return {"samples": len(stages["read .bin"]), "median_wall_s": wall, "median_cpu_s": cpu,
            "labeled_scan_wall_s": labeled_wall, "unlabeled_scan_wall_s": unlabeled_wall,
            "labeled_scan_cpu_s": labeled_cpu, "unlabeled_scan_cpu_s": unlabeled_cpu}


def write_markdown(path: Path, r: dict) -> None:
    m = r["machine"]
    lines = [
        "# Loader rate (issue 12 item 6)",
        "",
        f"- command: `{r['command']}`",
        f"- machine: {m['cpu']}, ISA {m['isa']} ({'native bf16' if m['native_bf16'] else 'no native bf16'}), "
        f"{m['cores']} cores, torch {m['torch']}",
        f"- date: {r['date']}; commit {r['commit']}",
        f"- load average before / after: {r['load_before']} / {r['load_after']} (1, 5, 15 min)",
        f"- data: {r['data']['frames']} simulated SemanticKITTI-size scans "
        f"({r['data']['points_per_scan']:.0f} points each), config `{r['config']}` with superpixel masks, "
        f"label fraction {r['label_fraction']}",
        "- target: >= 20 scans/s into one training process with the default workers",
        "",
        "| stream | workers per stream (processes) | batch | scans/s | steps/s | first batch |",
        "|---|---|---|---|---|---|",
    ]
    for s in r["streams"]:
        lines.append(
            f"| {s['stream']} | {s['workers_per_stream']} ({s['loader_processes']}) | {s['batch_size']} | "
            f"**{s['scans_per_s']:.1f}** | {s['steps_per_s']:.2f} | {s['first_batch_s']:.1f} s |"
        )
    split = r["per_sample"]
    lines += [
        "",
        f"Per-sample time of each stage (median of {split['samples']} samples, one process, no workers):",
        "",
        "| stage | wall ms | CPU ms |",
        "|---|---|---|",
        *[f"| {name} | {s * 1e3:.1f} | {split['median_cpu_s'][name] * 1e3:.1f} |"
          for name, s in split["median_wall_s"].items()],
        f"| **one labeled scan (reader + augment + collate)** | "
        f"**{split['labeled_scan_wall_s'] * 1e3:.1f}** | "
        f"**{split['labeled_scan_cpu_s'] * 1e3:.1f}** |",
        f"| **one unlabeled scan (reader + 2 augments + image + masks + pixel truth + collate)** | "
        f"**{split['unlabeled_scan_wall_s'] * 1e3:.1f}** | **{split['unlabeled_scan_cpu_s'] * 1e3:.1f}** |",
        "",
        f"CPU capacity of the data path (CPU ms per scan, robust to other load on the cores): labeled stream "
        f"{1 / split['labeled_scan_cpu_s']:.0f} scans/s per core; labeled+unlabeled (one of each in turn) "
        f"{2 / (split['labeled_scan_cpu_s'] + split['unlabeled_scan_cpu_s']):.0f} scans/s per core, before "
        "the transfer from the workers to the training process.",
        "",
        "Raw results:",
        "",
        "```json",
        json.dumps(r, indent=2),
        "```",
        "",
    ]
    from nerfseg.io_utils import atomic_write_text

    atomic_write_text(path, "\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("/tmp/nerfseg_bench_loader"),
                        help="simulated dataset folder (made on the first run, reused after)")
    parser.add_argument("--frames", type=int, default=24, help="simulated scans")
    parser.add_argument("--azimuth", type=int, default=2048, help="LiDAR azimuth steps (64 beams)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="run config whose loaders are measured")
    parser.add_argument("--workers", type=int, help="data.num_workers (default: the config's)")
    parser.add_argument("--batch-size", type=int, help="data.batch_size (default: the config's)")
    parser.add_argument("--label-fraction", type=float, default=0.1, help="data.label_fraction")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=10,
                        help="untimed steps first (worker start, and the prefetched batches drained)")
    parser.add_argument("--split-samples", type=int, default=8, help="samples in the per-stage split")
    parser.add_argument("--out", type=Path, default=RESULTS / "loader", help="writes OUT.json and OUT.md")
    args = parser.parse_args()

    simulate_data(args.data, args.frames, args.azimuth)
    cfg = run_config(args.data, args.config, args.workers, args.batch_size, args.label_fraction)
    images = precompute_masks(cfg)
    load_before = load_average()
    streams = [measure_streams(cfg, args.steps, args.warmup, with_unlabeled=u) for u in (False, True)]
    split = per_sample_split(cfg, args.split_samples)
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=REPO).stdout.strip(),
        "machine": {"cpu": cpu_isa().model, **{k: v for k, v in cpu_isa().as_dict().items() if k != "cpu"},
                    "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()},
        "config": str(args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config),
        "label_fraction": cfg.data.label_fraction,
        "data": {"root": str(args.data), "frames": args.frames, "azimuth_steps": args.azimuth,
                 "images": images, "points_per_scan": streams[0]["points_per_scan"]},
        "load_before": load_before,
        "streams": streams,
        "per_sample": split,
        "load_after": load_average(),
        "target_scans_per_s": 20.0,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from nerfseg.io_utils import atomic_write_text

    atomic_write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    write_markdown(args.out.with_suffix(".md"), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
