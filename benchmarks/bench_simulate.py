"""Speed of `nerfseg simulate`: 100 frames of about 30k LiDAR points and one 1242x375 camera.

Target (issue 3): <= 60 s on the 2-core development machine. Appends one JSON record per run to
benchmarks/results/simulate.jsonl with the command, machine, date, load average, wall and CPU time.

Run:  .venv/bin/python benchmarks/bench_simulate.py [--frames 100] [--workers 2] [--out /tmp/bench_sim]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nerfseg.engine.precision import cpu_isa

RESULTS = Path(__file__).resolve().parent / "results" / "simulate.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--out", default="/tmp/nerfseg_bench_simulate")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes (default 1)")
    parser.add_argument("--no-record", action="store_true", help="do not append to the results file")
    args = parser.parse_args()

    from nerfseg.sim.config import SimConfig
    from nerfseg.sim.simulate import OutputFormat, simulate

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    config = SimConfig(frames=args.frames)  # defaults: 64 beams x 512 firings, 1242x375 camera
    load_before = os.getloadavg()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    simulate(out, config, OutputFormat.SEMANTICKITTI, ["00"], show_progress=True, workers=args.workers)
    wall = time.perf_counter() - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    cpu += children.ru_utime + children.ru_stime  # worker processes (0 with --workers 1)
    scans = sorted((out / "sequences" / "00" / "velodyne").glob("*.bin"))
    points = [p.stat().st_size // 16 for p in scans]
    record = {
        "benchmark": "simulate",
        "command": "python benchmarks/bench_simulate.py " + " ".join(sys.argv[1:]),
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_isa().model, "cores": os.cpu_count(), "python": platform.python_version(),
                    "isa": cpu_isa().describe()},
        "load_average_1m_before": round(load_before[0], 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "workers": args.workers,
        "frames": len(scans),
        "points_per_frame_mean": int(np.mean(points)) if points else 0,
        "image_size": [
            round(config.camera.width * config.camera.image_scale),
            round(config.camera.height * config.camera.image_scale),
        ],
        "lidar": {"beams": config.lidar.beams, "azimuth_steps": config.lidar.azimuth_steps},
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "wall_s_per_frame": round(wall / max(len(scans), 1), 3),
        "target_wall_s_for_100_frames": 60.0,
    }
    print(json.dumps(record, indent=2))
    if not args.no_record:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as f:
            f.write(json.dumps(record) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
