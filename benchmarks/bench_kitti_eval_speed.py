"""Throughput of `nerfseg evaluate` and `nerfseg check-data` on a SemanticKITTI-sized tree.

Writes a temporary tree of SCANS scans of POINTS points each (the real SemanticKITTI averages ~120k points
per scan), with labels and corrupted predictions, then times both commands end to end (fresh processes).

    .venv/bin/python benchmarks/bench_kitti_eval_speed.py [--scans 40] [--points 120000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nerfseg.engine.precision import cpu_isa

RAW_IDS = np.array([0, 10, 11, 15, 18, 20, 30, 40, 44, 48, 49, 50, 51, 52, 70, 71, 72, 80, 81, 99, 252])


def write_tree(root: Path, scans: int, points: int, rng: np.random.Generator) -> None:
    seq = root / "data" / "sequences" / "08"
    for sub in ("velodyne", "labels"):
        (seq / sub).mkdir(parents=True)
    pred = root / "pred" / "sequences" / "08" / "predictions"
    pred.mkdir(parents=True)
    for frame in range(scans):
        rng.normal(0, 10, (points, 4)).astype("<f4").tofile(seq / "velodyne" / f"{frame:06d}.bin")
        labels = rng.choice(RAW_IDS, size=points).astype("<u4")
        labels.tofile(seq / "labels" / f"{frame:06d}.label")
        flip = rng.random(points) < 0.2
        labels[flip] = rng.choice(RAW_IDS, size=int(flip.sum()))
        labels.tofile(pred / f"{frame:06d}.label")


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"{argv} failed: {result.stderr}")
    return elapsed, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scans", type=int, default=40)
    parser.add_argument("--points", type=int, default=120_000)
    parser.add_argument("--out", type=Path, help="append the result as one JSON line to this file")
    args = parser.parse_args()
    nerfseg = [sys.executable, "-m", "nerfseg"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tree(root, args.scans, args.points, np.random.default_rng(0))
        eval_s, eval_out = timed(
            [*nerfseg, "evaluate", "--dataset", "semantickitti", "--data", str(root / "data"),
             "--predictions", str(root / "pred"), "--no-progress"]
        )  # fmt: skip
        check_s, _ = timed([*nerfseg, "check-data", str(root / "data"), "--no-progress"])
        idle_s, _ = timed([*nerfseg, "--help"])
    miou_line = next(line for line in eval_out.splitlines() if line.startswith("mIoU"))
    record = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
        "isa": cpu_isa().describe(),
        "command": " ".join(sys.argv),
        "scans": args.scans,
        "points_per_scan": args.points,
        "evaluate_s": round(eval_s, 2),
        "check_data_s": round(check_s, 2),
        "cli_start_s": round(idle_s, 2),
        "evaluate_scans_per_s": round(args.scans / max(eval_s - idle_s, 1e-9), 1),
        "check_data_scans_per_s": round(args.scans / max(check_s - idle_s, 1e-9), 1),
        "miou_line": miou_line.strip(),
    }
    print(json.dumps(record, indent=2))
    if args.out:
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
