"""Camera-ray coverage of the NeRF head's render volume options (issue 10, item 3), measured on simulated val
frames against the simulator's ``depth_2/``:

- bound (pure geometry, no model): the share of pixels whose true surface point has an occupied cell of the
  volume among its 8 trilinear neighbours (:func:`nerfseg.models.nerf.coverage.reachable_share`), for the
  volumes (stride, dilation) in ``--volumes``, built from the scan's 0.15 m voxels;
- measured: each trained run (``--run LABEL=RUN_DIR``, a run of ``nerfseg train ... --set method=geometry``,
  its volume read from its config) renders every ``--stride``-th pixel of the front camera;
  :func:`nerfseg.models.nerf.coverage.camera_coverage` per depth band, in / out of the LiDAR's vertical FOV.

    .venv/bin/python benchmarks/bench_camera_coverage.py --data D --run raw=R1 --run s2d1=R2 \
        [--frames 4] [--stride 4] [--out benchmarks/results/camera_coverage]

Writes OUT.json (per option: bound, measured, volume build time per scan) and OUT.md (the tables).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import nerfseg  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE while libgomp is not loaded yet)

# isort: split
import torch

from nerfseg.data.collate import collate_samples
from nerfseg.data.datasets import open_dataset
from nerfseg.engine.precision import cpu_isa
from nerfseg.geometry.rays import PixelGrid, camera_ray_bundle, read_at_pixels, z_depth_to_ray_distance
from nerfseg.io_utils import atomic_write_text
from nerfseg.models.nerf.coverage import (
    camera_coverage,
    in_lidar_fov,
    lidar_inclination_range,
    reachable_share,
)
from nerfseg.models.nerf.field import VoxelGrid
from nerfseg.models.nerf.volume import render_volume
from nerfseg.sparse import voxelize
from nerfseg.viz.render_figure import read_uint16_png

VOXEL_SIZE = 0.15


def frame_targets(sample, stride: int) -> dict[str, torch.Tensor]:
    """Pixels of the first camera at ``stride``, their rays, true ray distances, surface points, FOV flags."""
    camera = sample.cameras[0]
    width, height = camera.image_size
    pixels = PixelGrid(width, height, stride).pixel_indices()
    bundle = camera_ray_bundle(camera, pixels, scan=0, camera_index=0)
    z_mm = torch.as_tensor(read_at_pixels(read_uint16_png(camera.depth_path), pixels.numpy()))
    gt = z_depth_to_ray_distance(z_mm.double() / 1000.0, torch.as_tensor(camera.K), pixels)
    points = bundle.origins.double() + gt.unsqueeze(1) * bundle.directions.double()
    incl = lidar_inclination_range(torch.as_tensor(sample.points[:, :3]))
    return {"bundle": bundle, "gt": gt, "points": points, "in_fov": in_lidar_fov(points, incl) & (gt > 0)}


def bound_of(samples, targets, stride: int, dilation: int) -> dict:
    """reachable_share of volume (stride, dilation) over all frames' pixels (scan index = frame)."""
    coords, pts, gts, fovs, batch = [], [], [], [], []
    for b, (sample, t) in enumerate(zip(samples, targets, strict=True)):
        xyz = torch.as_tensor(sample.points[:, :3])
        vox = voxelize(xyz, torch.full((xyz.shape[0],), b, dtype=torch.int64), xyz, VOXEL_SIZE)
        coords.append(vox.tensor.coords)
        pts.append(t["points"])
        gts.append(t["gt"])
        fovs.append(t["in_fov"])
        batch.append(torch.full((t["gt"].shape[0],), b, dtype=torch.int64))
    coords = torch.cat(coords)
    c, f, cell = render_volume(coords, torch.zeros(coords.shape[0], 1), VOXEL_SIZE, stride, dilation)
    return reachable_share(
        VoxelGrid(c, f, cell), torch.cat(pts), torch.cat(gts), torch.cat(fovs), batch=torch.cat(batch)
    )


def load_run(run_dir: Path):
    from nerfseg.engine.build import build_head
    from nerfseg.engine.checkpoint import build_segmentor, load_checkpoint

    path = run_dir / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(path)
    model, cfg = build_segmentor(checkpoint, path)
    head = build_head(cfg, model, int(checkpoint["num_classes"]))
    head.load_state_dict(checkpoint["nerf_head"])
    return model.eval(), head.eval()


@torch.no_grad()
def measure_run(run_dir: Path, samples, targets) -> dict:
    """camera_coverage of a trained run over all frames' pixels, with the volume build time per scan."""
    model, head = load_run(run_dir)
    opacity, depth, gts, fovs, build_s = [], [], [], [], []
    for sample, t in zip(samples, targets, strict=True):
        out = model(collate_samples([sample]))
        start = time.perf_counter()
        grid = head.build_volume(out)
        build_s.append(time.perf_counter() - start)
        rendered = head.render_chunked(grid, t["bundle"])
        opacity.append(rendered.opacity)
        depth.append(rendered.depth / rendered.opacity.clamp_min(1e-6))
        gts.append(t["gt"])
        fovs.append(t["in_fov"])
    result = camera_coverage(torch.cat(opacity), torch.cat(depth), torch.cat(gts), torch.cat(fovs))
    result["volume"] = {"stride": head.cfg.volume_stride, "dilation": head.cfg.volume_dilation}
    result["build_volume_seconds_median"] = float(np.median(build_s))
    return result


def pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def metres(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.2f}"


def markdown(report: dict) -> str:
    lines = [
        "# Camera-ray coverage of the NeRF head's render volume",
        "",
        f"Data: {report['data']}, val frames {', '.join(report['frames'])}, front camera at pixel stride "
        f"{report['stride']} ({report['pixels']} pixels). Commit {report['commit']}. Command:",
        "",
        f"    {report['command']}",
        "",
        "Volume = (stride, dilation): the 0.15 m stride-1 voxels pooled into cells of `stride` voxels, "
        "dilated by `dilation` cells (`model.nerf.volume_stride` / `volume_dilation`). Headline set: pixels "
        "whose true surface is in the LiDAR's vertical FOV and <= 40 m away.",
        "",
        "## Geometric bound (reachable share, no model)",
        "",
        "| volume | cell (m) | in FOV, <= 40 m | 0-20 m | 20-40 m | 40-60 m | out of FOV |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, b in report["bounds"].items():
        s, d = (int(v) for v in name.split("/"))
        bands = " | ".join(pct(x["all"]) for x in b["bands"])
        lines.append(
            f"| {s} / {d} | {s * VOXEL_SIZE:.2f} | {pct(b['in_fov_near'])} | {bands} | "
            f"{pct(b['out_of_fov'])} |"
        )
    lines += [
        "",
        "## Measured after training (opacity >= 0.5 share | median |depth error| m over those)",
        "",
        "| run | volume | in FOV, <= 40 m | 0-20 m | 20-40 m | 40-60 m | out-of-FOV mean opacity | "
        "sky mean opacity | bound in FOV <= 40 m | build_volume s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, m in report["runs"].items():
        v = m["volume"]
        key = f"{v['stride']}/{v['dilation']}"
        near = m["in_fov_near"]
        bands = " | ".join(
            f"{pct(x['all']['opaque_share'])} / {metres(x['all']['median_abs_depth_error'])}"
            for x in m["bands"]
        )
        bound = report["bounds"].get(key, {}).get("in_fov_near", math.nan)
        lines.append(
            f"| {label} | {v['stride']} / {v['dilation']} | {pct(near['opaque_share'])} / "
            f"{metres(near['median_abs_depth_error'])} | {bands} | "
            f"{metres(m['out_of_fov']['mean_opacity'])} | {metres(m['no_surface']['mean_opacity'])} | "
            f"{pct(bound)} | {m['build_volume_seconds_median']:.3f} |"
        )
    lines += [
        "",
        "Per band, in the LiDAR FOV only (opaque share / median depth error, m):",
        "",
        "| run | 0-20 m | 20-40 m | 40-60 m |",
        "|---|---|---|---|",
    ]
    for label, m in report["runs"].items():
        bands = " | ".join(
            f"{pct(x['in_fov']['opaque_share'])} / {metres(x['in_fov']['median_abs_depth_error'])}"
            for x in m["bands"]
        )
        lines.append(f"| {label} | {bands} |")
    notes = report.get("notes")
    if notes:
        lines += ["", "## Notes", "", notes]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", required=True, help="simulated SemanticKITTI-layout root (val = sequence 08)"
    )
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=RUN_DIR", help="trained run")
    parser.add_argument("--frames", type=int, default=4, help="val frames, evenly spaced (default 4)")
    parser.add_argument("--stride", type=int, default=4, help="pixel stride of the rendering (default 4)")
    parser.add_argument("--volumes", default="1/0,1/1,2/0,2/1,4/0,4/1", help="stride/dilation of the bounds")
    parser.add_argument("--notes", default="", help="text for the results' Notes section")
    parser.add_argument("--out", default="benchmarks/results/camera_coverage", help="output stem")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = open_dataset("semantickitti", args.data, split="val")
    ids = list(dataset.sample_ids)
    picks = np.unique(np.linspace(0, len(ids) - 1, args.frames).round().astype(int))
    samples = [dataset[int(i)] for i in picks]
    targets = [frame_targets(s, args.stride) for s in samples]
    report = {
        "data": args.data,
        "frames": [s.sample_id for s in samples],
        "stride": args.stride,
        "pixels": int(sum(t["gt"].shape[0] for t in targets)),
        "command": " ".join(["python", *sys.argv]),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "platform": platform.platform(),
        "isa": cpu_isa().describe(),
        "torch": torch.__version__,
        "bounds": {},
        "runs": {},
        "notes": args.notes,
    }
    for volume in args.volumes.split(","):
        s, d = (int(v) for v in volume.split("/"))
        report["bounds"][f"{s}/{d}"] = bound_of(samples, targets, s, d)
        print(f"bound {s}/{d}: {pct(report['bounds'][f'{s}/{d}']['in_fov_near'])}", flush=True)
    for spec in args.run:
        label, run_dir = spec.split("=", 1)
        report["runs"][label] = measure_run(Path(run_dir), samples, targets)
        print(f"run {label}: {pct(report['runs'][label]['in_fov_near']['opaque_share'])}", flush=True)
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2, default=float) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(report))
    print(f"wrote {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
