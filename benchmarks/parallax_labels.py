"""Parallax: projection pseudo-labels against rendered (ray) labels, per depth band (issue 10, item 7).

Over the camera-visible, labelled LiDAR points of the given frames (each camera that sees a point counts
once), per band of distance from the camera (0-20, 20-40, 40-60 m):

- projection: the ground-truth ``semantic_2/`` class at the pixel the point projects to (pure parallax, no
  model): coverage (pixel has a class) and the share wrong against the point's label;
- mask vote: each cached mask of the image votes with the points' ground-truth labels
  (``mask_vote_labels``, the run's ``ssl.projection`` min_votes / min_agreement): the best the projection
  baseline could do with its masks;
- rays: the run's EMA teacher (segmentor + head; ``--weights student`` for the student) renders the camera
  ray from the camera centre through each point; the point takes the rendered class argmax only where
  the rendered depth agrees with its distance within ``2 * volume_stride * voxel_size`` (two cells of the
  head's render volume) and the ray is >= ``--min-opacity`` opaque: that coverage and the error over it;
- oracle rays: the same with the true geometry: the point takes its pixel's true class where the true first
  surface (``depth_2/`` converted to ray distance) agrees with its distance within the same tolerance;
- occluded: the share of points farther than that first surface by more than the tolerance (hidden from
  the camera), with the projection error on occluded and on unoccluded points (parallax lives there).

    .venv/bin/python benchmarks/parallax_labels.py --data D --run R [--frames 00/000001,...|--split train] \
        --out benchmarks/results/parallax_labels.json

Writes FILE.json (protocol, per-band counts and shares) and FILE.md (the table) beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import nerfseg  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE while libgomp is not loaded yet)

# isort: split
import torch

from nerfseg.data.collate import collate_samples
from nerfseg.data.datasets import DatasetKind
from nerfseg.data.ground_truth import read_depth_m, read_semantic_train
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.errors import ConfigError, DataError
from nerfseg.geometry.rays import RayBundle, read_at_pixels, z_depth_to_ray_distance
from nerfseg.io_utils import atomic_write_text
from nerfseg.ssl.parallax_eval import (
    DEPTH_BANDS,
    band_counts,
    band_medians,
    band_rates,
    depth_agrees,
    occluded_points,
    rays_through_points,
)
from nerfseg.ssl.projection import mask_vote_labels, pixel_label_of_points, project_to_pixels

PATHS = ("projection", "mask_vote", "rays", "oracle_rays", "occluded", "rays_opaque",
         "projection_on_occluded", "projection_on_unoccluded", "rays_on_occluded")
"""Tallies kept per band (``occluded`` / ``rays_opaque``: covered = occluded points / rays at least
``--min-opacity`` opaque; an ``_on_`` row counts only those points)."""


def load_run(run_dir: Path, weights: str, device: torch.device):
    """(segmentor, NeRF head, config, num_classes, step) of ``RUN/checkpoints/last.pt`` with ``weights``
    (``teacher``: the EMA teacher's segmentor and head; ``student``)."""
    from nerfseg.engine.build import build_head
    from nerfseg.engine.checkpoint import build_segmentor, load_checkpoint

    path = run_dir / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(path)
    model_key, head_key = ("teacher", "teacher_head") if weights == "teacher" else ("model", "nerf_head")
    for key in (model_key, head_key):
        if checkpoint.get(key) is None:
            raise DataError(path, f"holds no '{key}' weights (a `nerf` run keeps model, nerf_head, "
                            "teacher and teacher_head; use --weights student for a run without a teacher)")
    model, cfg = build_segmentor(checkpoint, path)
    num_classes = int(checkpoint["num_classes"])
    head = build_head(cfg, model, num_classes)
    try:
        model.load_state_dict(checkpoint[model_key])
        head.load_state_dict(checkpoint[head_key])
    except RuntimeError as err:
        raise DataError(path, f"{weights} weights do not fit the stored config: {str(err).splitlines()[0]}"
                        ) from err
    step = int(checkpoint.get("step", -1))
    return model.to(device).eval(), head.to(device).eval(), cfg, num_classes, step


def pick_samples(cfg, frames: list[str], split: str) -> list:
    """The samples with ids ``frames`` (searched in train, val, test), or every sample of ``split``."""
    from nerfseg.engine.build import open_split

    if not frames:
        reader = open_split(cfg, split)
        return [reader[i] for i in range(len(reader))]
    found = {}
    for name in ("train", "val", "test"):
        try:
            reader = open_split(cfg, name)
        except DataError:
            continue
        ids = list(reader.sample_ids)
        for frame in frames:
            if frame in ids and frame not in found:
                found[frame] = reader[ids.index(frame)]
    missing = [f for f in frames if f not in found]
    if missing:
        raise DataError(cfg.data.root, f"frames {missing} not found in the {cfg.data.dataset} splits")
    return [found[f] for f in frames]


def camera_tallies(sample, camera_index: int, grid, head, ctx: dict
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Per-band tallies (:data:`PATHS` -> (B, 3) int64) of one camera of one scan, with the distances (M,)
    of the opaque rays' points and their signed rendered-depth errors ``D / A - distance`` (M,), metres."""
    camera = sample.cameras[camera_index]
    semantic = read_semantic_train(camera, ctx["label_map"])
    depth_z = read_depth_m(camera)
    if semantic is None or depth_z is None:
        raise DataError(camera.image_path, "has no ground-truth semantic_2/ or depth_2/ image (the "
                        "simulator writes them)")
    xyz = torch.as_tensor(sample.points[:, :3], dtype=torch.float64)
    labels = torch.as_tensor(sample.labels, dtype=torch.int64)
    pixels, visible = project_to_pixels(xyz, camera.K, camera.lidar_to_cam, camera.image_size)
    idx = (visible & (labels != IGNORE_INDEX)).nonzero(as_tuple=True)[0]
    truth, px = labels[idx], pixels[idx]
    origin = torch.as_tensor(camera.cam_to_lidar[:3, 3])
    dirs, distance = rays_through_points(origin, xyz[idx])
    tol = ctx["tolerance"]

    projected = pixel_label_of_points(pixels, visible, semantic)[idx]
    masks = ctx["mask_cache"].get(camera.load_image(), camera.image_path, ctx["compute_missing"])
    voted = mask_vote_labels(pixels, visible, labels, masks, ctx["num_classes"], ctx["min_votes"],
                             ctx["min_agreement"])[idx]
    z = torch.as_tensor(read_at_pixels(depth_z, px.numpy()), dtype=torch.float64)
    surface = z_depth_to_ray_distance(z, torch.as_tensor(camera.K), px)
    occluded = occluded_points(distance, surface, tol)
    true_agree = (surface > 0) & ((surface - distance).abs() <= tol)

    device = ctx["device"]
    n = idx.numel()
    bundle = RayBundle(
        origin.float().to(device).expand(n, 3).contiguous(),
        dirs.float().to(device),
        px.to(device),
        torch.full((n,), camera_index, dtype=torch.int64, device=device),
        torch.zeros(n, dtype=torch.int64, device=device),
    )
    rendered = head.render_chunked(grid, bundle)
    ray_depth, ray_opacity = rendered.depth.cpu().double(), rendered.opacity.cpu().double()
    ray_covered = depth_agrees(ray_depth, ray_opacity, distance, tol, ctx["min_opacity"])
    opaque = ray_opacity >= ctx["min_opacity"]
    depth_error = ray_depth[opaque] / ray_opacity[opaque].clamp_min(1e-6) - distance[opaque]
    ray_wrong = rendered.probs.argmax(dim=1).cpu() != truth

    proj_covered, proj_wrong = projected != IGNORE_INDEX, projected != truth
    tallies = {
        "projection": band_counts(distance, proj_covered, proj_wrong),
        "mask_vote": band_counts(distance, voted != IGNORE_INDEX, voted != truth),
        "rays": band_counts(distance, ray_covered, ray_wrong),
        "oracle_rays": band_counts(distance, true_agree & proj_covered, proj_wrong),
        "occluded": band_counts(distance, occluded, occluded),
        "rays_opaque": band_counts(distance, opaque, opaque),
        "projection_on_occluded": band_counts(distance, proj_covered, proj_wrong, selected=occluded),
        "projection_on_unoccluded": band_counts(distance, proj_covered, proj_wrong, selected=~occluded),
        "rays_on_occluded": band_counts(distance, ray_covered, ray_wrong, selected=occluded),
    }
    return tallies, distance[opaque], depth_error


def pct(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{100 * x:.1f}"


def markdown(report: dict) -> str:
    r = report["results"]
    lines = [
        "# Parallax: projection labels against rendered labels, per depth band",
        "",
        f"Data `{report['data']}`, run `{report['run']}` ({report['weights']} weights, step "
        f"{report['step']}), "
        f"{len(report['frames'])} frames ({report['frames_spec']}), {report['camera_views']} camera views. "
        f"Tolerance {report['tolerance_m']:.2f} m = 2 x volume_stride {report['volume_stride']} x voxel "
        f"{report['voxel_size_m']:.2f} m; rays need opacity >= {report['min_opacity']}. Commit "
        f"{report['commit']}. Command:",
        "",
        f"    {report['command']}",
        "",
        "Shares in %: `cov` = points that get a label, `err` = wrong among them. Projection = true pixel "
        "class at the projected pixel; mask vote = masks voting with the true point labels; rays = the "
        "rendered class where the rendered depth agrees; oracle rays = the true pixel class where the true "
        "depth agrees; occluded = farther than the true first surface by more than the tolerance.",
        "",
        "| band | points | projection cov / err | mask vote cov / err | rays cov / err | "
        "oracle rays cov / err | occluded | projection err occluded / unoccluded | "
        "rays cov / err on occluded |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b, band in enumerate(r["projection"]):
        def ce(path: str, row: int = b) -> str:
            x = r[path][row]
            return f"{pct(x['coverage'])} / {pct(x['error'])}"

        lines.append(
            f"| {band['band']} | {band['points']} | {ce('projection')} | {ce('mask_vote')} | {ce('rays')} | "
            f"{ce('oracle_rays')} | {pct(r['occluded'][b]['coverage'])} | "
            f"{pct(r['projection_on_occluded'][b]['error'])} / "
            f"{pct(r['projection_on_unoccluded'][b]['error'])} | {ce('rays_on_occluded')} |"
        )
    lines += [
        "",
        "Ray geometry (why the ray coverage is what it is): share of rays at least "
        f"{report['min_opacity']} opaque, and over those the median rendered-depth error D / A - distance "
        "(signed: negative = the ray stops in front of the point) and its median absolute value, metres.",
        "",
        "| band | opaque % | median signed error (m) | median abs error (m) |",
        "|---|---|---|---|",
    ]
    signed, absolute = report["rays_median_signed_depth_error_m"], report["rays_median_abs_depth_error_m"]
    for b, band in enumerate(r["rays_opaque"]):
        lines.append(f"| {band['band']} | {pct(band['coverage'])} | {signed[b]:.2f} | {absolute[b]:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, metavar="ROOT", help="simulated dataset root (semantic_2/, "
                        "depth_2/ beside the images)")
    parser.add_argument("--run", required=True, metavar="RUN", help="run folder of a `nerf` training")
    parser.add_argument("--frames", default="", help="comma-separated sample ids, e.g. 00/000001,00/000003")
    parser.add_argument("--split", default="train", help="split scored without --frames (default train: the "
                        "scans whose pseudo-labels training uses; the masks cache holds them)")
    parser.add_argument("--weights", choices=("teacher", "student"), default="teacher",
                        help="which weights render the rays (default: the EMA teacher, as in training)")
    parser.add_argument("--min-opacity", type=float, default=0.5, help="rays less opaque carry no label")
    parser.add_argument("--compute-missing-masks", action="store_true",
                        help="compute masks missing from the cache instead of failing")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="results (FILE.md beside it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from nerfseg.engine.build import resolve_device
    from nerfseg.masks.config import open_mask_cache

    device = resolve_device(args.device)
    run_dir = Path(args.run)
    model, head, cfg, num_classes, step = load_run(run_dir, args.weights, device)
    cfg = replace(cfg, data=replace(cfg.data, root=str(args.data)))
    if DatasetKind(cfg.data.dataset) is DatasetKind.NUSCENES:
        raise ConfigError("parallax_labels reads the SemanticKITTI layout (semantic_2/, depth_2/)")
    frames = [f for f in args.frames.split(",") if f]
    samples = pick_samples(cfg, frames, args.split)
    voxel_size = float(cfg.model.segmentor.voxel_size)
    ctx = {
        "label_map": DatasetKind(cfg.data.dataset).label_map,
        "mask_cache": open_mask_cache(cfg.masks, args.data),
        "compute_missing": args.compute_missing_masks or cfg.masks.compute_missing,
        "num_classes": num_classes,
        "min_votes": cfg.ssl.projection.min_votes,
        "min_agreement": cfg.ssl.projection.min_agreement,
        "tolerance": 2.0 * head.cfg.volume_stride * voxel_size,
        "min_opacity": args.min_opacity,
        "device": device,
    }
    totals = {p: torch.zeros(len(DEPTH_BANDS) - 1, 3, dtype=torch.int64) for p in PATHS}
    opaque_distance, depth_errors = [], []
    views, start = 0, time.perf_counter()
    with torch.no_grad():
        for sample in samples:
            out = model(collate_samples([sample]).to(device))
            if not math.isclose(float(out.voxel_size), voxel_size):
                raise ConfigError(f"segmentor voxel size {out.voxel_size} != config {voxel_size}")
            grid = head.build_volume(out)
            for c in range(len(sample.cameras)):
                tallies, dist, err = camera_tallies(sample, c, grid, head, ctx)
                opaque_distance.append(dist)
                depth_errors.append(err)
                for p in PATHS:
                    totals[p] += tallies[p]
                views += 1
            rays = totals["rays"][:, 1].sum().item() / max(totals["rays"][:, 0].sum().item(), 1)
            print(f"{sample.sample_id}: {totals['projection'][:, 0].sum().item()} points so far, "
                  f"ray coverage {100 * rays:.1f} %", flush=True)
    opaque_distance, depth_errors = torch.cat(opaque_distance), torch.cat(depth_errors)
    report = {
        "data": str(args.data),
        "run": str(args.run),
        "weights": args.weights,
        "step": step,
        "frames": [s.sample_id for s in samples],
        "frames_spec": f"--frames {args.frames}" if frames else f"--split {args.split}",
        "camera_views": views,
        "bands_m": list(DEPTH_BANDS),
        "tolerance_m": ctx["tolerance"],
        "volume_stride": head.cfg.volume_stride,
        "voxel_size_m": voxel_size,
        "min_opacity": args.min_opacity,
        "mask_vote": {"min_votes": ctx["min_votes"], "min_agreement": ctx["min_agreement"],
                      "cache": str(ctx["mask_cache"].folder)},
        "seconds": time.perf_counter() - start,
        "command": " ".join(["python", *sys.argv]) if argv is None else " ".join(["python", *argv]),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
                                 ).stdout.strip(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "results": {p: band_rates(totals[p]) for p in PATHS},
        "rays_median_signed_depth_error_m": band_medians(opaque_distance, depth_errors),
        "rays_median_abs_depth_error_m": band_medians(opaque_distance, depth_errors.abs()),
    }
    out = Path(args.out)
    atomic_write_text(out, json.dumps(report, indent=2, default=float) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(report))
    print(markdown(report))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def cli() -> int:
    """:func:`main` with data / config problems printed as one line (exit status 2)."""
    try:
        return main()
    except (DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        if "cached masks" in str(err):
            print("(or pass --compute-missing-masks to compute them here)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(cli())
