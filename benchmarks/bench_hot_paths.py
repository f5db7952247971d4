"""Every hot path of nerfseg timed against this machine's peaks, measured in the same run (issue 12 item 4).

One command, one run, no state kept between runs:

    .venv/bin/python benchmarks/bench_hot_paths.py            # full run (< 5 min), -> results/hot_paths.*
    .venv/bin/python benchmarks/bench_hot_paths.py --quick    # smaller scan, 1 repeat, 2 methods

1. Peaks of this process at the thread count the project uses (torch's default, which ``train.num_threads: 0``
   and ``predict --threads 0`` keep): float32 ``torch.mm`` GFLOP/s of 2048^3 (best of 5), bf16 where the CPU
   has native bf16 (else emulated: not a peak, not measured), and memory copy GB/s (``copy_`` of 256 MiB,
   read + write bytes counted; best of 5).
2. A SemanticKITTI-size scan simulated by ``nerfseg simulate`` (64 beams x 2048 columns, ~120k points, one
   1242 x 375 camera; /work/shared/data/real holds no full SemanticKITTI scan, only a 50-point excerpt) and
   its superpixel masks, then each hot path on it: voxelize, kernel maps (submanifold, strided), one 64 -> 64
   submanifold conv, backbone inference (``full``, ``full`` under bf16 autocast, ``tiny``), the camera path
   (render volume, the ray grid of ``ssl.camera.stride``, the teacher's clipped render through the NeRF head),
   fusion (masks + rendered P -> pseudo-labels), projection (points -> pixels -> mask majority), the loader's
   per-scan data path (``bench_loader.per_sample_split``), and one training step of each method
   (``bench_train_step.method_worker`` in a fresh process per method, synthetic presets).
3. For each: median of the repeats (after one warm-up), the work (FLOPs of the matmuls: the kernel map's
   pairs x Cin x Cout x 2 for sparse convs, torch's FlopCounterMode for the rest; or the bytes a streaming
   implementation must at least read and write), and the fraction of the measured peak.
4. The OpenMP wait-policy gap (nerfseg/threads.py) before / after in the same run: fresh processes that import
   torch first (policy unset, threads spin) and nerfseg first (PASSIVE) time the kernel map with and without
   the single-thread scope, and ``tiny`` inference, on 2 threads.

Load average before / after is recorded; the machine is shared, so read ratios within one run.
"""

import nerfseg  # noqa: F401,I001 - first: sets OMP_WAIT_POLICY=PASSIVE before torch loads, as `nerfseg` does

import argparse
import contextlib
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


# isort: split
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
CONFIG = REPO / "configs" / "semantickitti" / "nerf.yaml"
NUM_CLASSES = 19
METHODS = (
    "supervised",
    "mean-teacher",
    "lasermix",
    "projection",
    "nerf",
    "nerf+mean-teacher",
    "nerf+lasermix",
)
sys.path.insert(0, str(HERE))  # the sibling benchmarks (bench_sparse, bench_train_step, bench_loader) are
# reused: wall seconds of `repeats` calls after `warmup` untimed ones, and the n x n matmul's GFLOP/s
from bench_sparse import matmul_peak  # noqa: E402
from bench_sparse import timings as timed_runs  # noqa: E402

# ---------------------------------------------------------------------------------------------------------
# measuring


def measure_peaks(repeats: int = 5) -> dict:
    """float32 (and native bf16) matmul GFLOP/s and copy GB/s of this process, best of ``repeats``."""
    from nerfseg.engine.precision import cpu_isa

    n = 2048
    peaks = {"matmul_n": n, "threads": torch.get_num_threads()}
    dtypes = [("float32", torch.float32)] + ([("bf16", torch.bfloat16)] if cpu_isa().native_bf16 else [])
    for name, dtype in dtypes:
        peaks[f"{name}_gflops"] = matmul_peak(repeats, dtype, n)
    peaks.setdefault("bf16_gflops", None)
    src = torch.ones(64 << 20)  # 256 MiB of float32
    dst = torch.empty_like(src)
    best = min(timed_runs(lambda: dst.copy_(src), repeats))
    peaks["copy_bytes"] = 2 * src.numel() * 4
    peaks["copy_gbs"] = peaks["copy_bytes"] / best / 1e9
    return peaks


class ConvFlops(contextlib.AbstractContextManager):
    """Counts the useful FLOPs of every ``sparse_conv`` call while active: 2 x pairs x Cin x Cout forward (the
    identity offset counted once per voxel), x3 when autograd records the call (input and weight gradients
    cost one forward each). Patches ``nerfseg.sparse.conv.sparse_conv``, which the conv modules call."""

    def __init__(self):
        self.flops = 0
        self.calls = 0

    def __enter__(self):
        import nerfseg.sparse.conv as conv

        self._module, self._original = conv, conv.sparse_conv

        def counted(feats, weight, kmap, chunk_rows=None, bias=None):
            pairs = kmap.num_pairs(int(feats.shape[0]))
            grad = torch.is_grad_enabled() and (feats.requires_grad or weight.requires_grad)
            self.flops += 2 * pairs * int(weight.shape[1]) * int(weight.shape[2]) * (3 if grad else 1)
            self.calls += 1
            return self._original(feats, weight, kmap, chunk_rows, bias)

        conv.sparse_conv = counted
        return self

    def __exit__(self, *exc):
        self._module.sparse_conv = self._original
        return False


def matmul_flops(fn) -> int:
    """FLOPs of the matmuls (mm / addmm / bmm / linear) one call of ``fn`` runs (torch FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def row(
    path: str,
    times: list[float],
    peaks: dict,
    flops: float | None = None,
    nbytes: float | None = None,
    peak: str = "float32",
    note: str = "",
    **extra,
) -> dict:
    """One result: median seconds, work and the fraction of the matching peak (FLOP/s over the ``peak``
    matmul rate, or bytes/s over the copy bandwidth when only bytes are given)."""
    seconds = statistics.median(times)
    result = {
        "path": path,
        "seconds_median": seconds,
        "seconds_all": [round(t, 5) for t in times],
        "flops": flops,
        "bytes": nbytes,
        "note": note,
        **extra,
    }
    if flops:
        rate = peaks.get(f"{peak}_gflops")
        result["gflops"] = flops / seconds / 1e9
        result["peak"] = f"{peak} matmul"
        result["fraction_of_peak"] = result["gflops"] / rate if rate else None
    elif nbytes:
        result["gbs"] = nbytes / seconds / 1e9
        result["peak"] = "copy"
        result["fraction_of_peak"] = result["gbs"] / peaks["copy_gbs"]
    print(
        f"  {path}: {seconds * 1e3:.1f} ms"
        + (f", {result['fraction_of_peak']:.3f} of peak" if result.get("fraction_of_peak") else ""),
        flush=True,
    )
    return result


# ---------------------------------------------------------------------------------------------------------
# the data


def simulate_scan(root: Path, azimuth_steps: int) -> None:
    """One simulated SemanticKITTI frame (64 beams x ``azimuth_steps``, one front camera) in sequence 00."""
    from bench_train_step import simulate

    simulate(root, azimuth_steps, 1)


def load_inputs(root: Path):
    """(run config with superpixel masks, the sample, its collated batch, mask ids of its camera image)."""
    from bench_loader import precompute_masks, run_config

    from nerfseg.data.collate import collate_samples
    from nerfseg.engine.build import open_split
    from nerfseg.masks.config import open_run_mask_cache

    cfg = run_config(root, CONFIG, None, None, 1.0)
    precompute_masks(cfg)
    sample = open_split(cfg, cfg.data.train_split)[0]
    image = sample.cameras[0].load_image()
    mask_ids = open_run_mask_cache(cfg).get(image, sample.cameras[0].image_path)
    return cfg, sample, collate_samples([sample]), mask_ids


# ---------------------------------------------------------------------------------------------------------
# the hot paths


def bench_sparse_paths(batch, voxel: float, peaks: dict, repeats: int) -> tuple[list[dict], torch.Tensor]:
    """Voxelize, kernel maps, one 64 -> 64 submanifold conv (forward; forward + backward)."""
    from nerfseg.sparse import sparse_conv, submanifold_map, voxelize
    from nerfseg.sparse.kernel_map import downsampling_map

    pts, index = batch.points, batch.batch_index
    n, c = pts.shape
    vox = voxelize(pts[:, :3], index, pts, voxel)
    coords = vox.tensor.coords
    m = int(coords.shape[0])
    rows = [
        row(
            "voxelize",
            timed_runs(lambda: voxelize(pts[:, :3], index, pts, voxel), repeats),
            peaks,
            nbytes=n * (c * 4 + 8 + 8 + 8) + m * (4 * 8 + c * 4 + 8),
            note=f"{n} points -> {m} voxels of {voxel} m; bytes: points read, key + sort + inverse per "
            "point, "
            "coords + mean features + counts per voxel written once",
            points=n,
            voxels=m,
        )
    ]
    kmap = submanifold_map(coords)
    pairs = kmap.num_pairs(m)
    listed = int(kmap.in_rows.numel())
    rows.append(
        row(
            "kernel map: submanifold 3x3x3",
            timed_runs(lambda: submanifold_map(coords), repeats),
            peaks,
            nbytes=m * 8 * 6 + listed * 8 * 3,
            note=f"{pairs} pairs ({pairs / m:.1f} per voxel); bytes: keys read by 5 searches, "
            "3 int64 per listed pair written",
            voxels=m,
            pairs=pairs,
        )
    )
    down = downsampling_map(coords)
    m2 = int(down.coarse_coords.shape[0])
    rows.append(
        row(
            "kernel map: strided 2x2x2 (s=2)",
            timed_runs(lambda: downsampling_map(coords), repeats),
            peaks,
            nbytes=m * (4 * 8 + 8 + 8 * 2) + m2 * 4 * 8,
            note=f"{m} -> {m2} voxels; bytes: coords read, parent key + sort, pairs and coarse coords "
            "written",
            voxels=m,
            coarse_voxels=m2,
        )
    )
    torch.manual_seed(0)
    channels = 64
    feats = torch.randn(m, channels, requires_grad=True)
    weight = (torch.randn(27, channels, channels) / 40).requires_grad_(True)
    upstream = torch.randn(m, channels)

    def forward():
        with torch.no_grad():
            sparse_conv(feats, weight, kmap)

    def forward_backward():
        feats.grad = weight.grad = None
        sparse_conv(feats, weight, kmap).backward(upstream)

    flop = 2 * pairs * channels * channels
    rows.append(
        row(
            "sparse conv 64->64 submanifold, forward",
            timed_runs(forward, repeats),
            peaks,
            flops=flop,
            note=f"{pairs} pairs x 64 x 64 x 2",
            bytes_moved=(listed * 2 + m) * channels * 4,
        )
    )
    rows.append(
        row(
            "sparse conv 64->64 submanifold, forward + backward",
            timed_runs(forward_backward, repeats),
            peaks,
            flops=3 * flop,
            note="input and weight gradients: 3x the forward FLOPs",
        )
    )
    return rows, coords


def bench_backbones(batch, voxel: float, peaks: dict, repeats: int, quick: bool) -> tuple[list[dict], dict]:
    """Segmentor inference (voxelize, U-Net, point head): full float32, full bf16 (native only), tiny float32.
    Returns the rows and the full float32 model's output (the NeRF head renders through it)."""
    from nerfseg.models.segmentor import LidarSegmentor, SegmentorConfig

    rows, kept = [], {}
    cases = [("full", False), ("full", True), ("tiny", False)]
    for preset, bf16 in cases:
        if bf16 and not peaks.get("bf16_gflops"):
            continue
        if bf16 and quick:
            continue
        torch.manual_seed(0)
        model = LidarSegmentor(SegmentorConfig(preset=preset, voxel_size=voxel), NUM_CLASSES).eval()
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.inference_mode(), cast:
            with ConvFlops() as conv:  # also the warm-up
                out = model(batch)
            total = None if bf16 else matmul_flops(lambda model=model: model(batch))
            times = timed_runs(lambda model=model: model(batch), max(1, repeats - 1) if bf16 else repeats, 0)
        name = f"backbone inference `{preset}`" + (" bf16 autocast" if bf16 else " float32")
        peak = "bf16" if bf16 else "float32"
        r = row(
            name,
            times,
            peaks,
            flops=conv.flops,
            peak=peak,
            note=f"{conv.calls} sparse convs"
            + (f"; all matmuls (FlopCounterMode) {total / 1e9:.1f} GFLOP" if total else ""),
            all_matmul_flops=total,
            voxels=int(out.voxel_features.num_voxels),
            parameters=sum(p.numel() for p in model.parameters()),
        )
        rate = peaks[f"{peak}_gflops"]
        r["floor_s"] = conv.flops / (rate * 1e9)
        r["wall_over_floor"] = r["seconds_median"] / r["floor_s"]
        rows.append(r)
        if preset == "full" and not bf16:
            kept = {"model": model, "out": out}
    return rows, kept


def bench_camera(cfg, sample, mask_ids, kept: dict, peaks: dict, repeats: int) -> list[dict]:
    """Camera path of the `nerf` step on the full model's features: render volume, ray grid, clipped render,
    fusion; and the projection baseline's labels."""
    from nerfseg.engine.build import build_head
    from nerfseg.geometry.rays import PixelGrid, camera_ray_bundle, read_at_pixels
    from nerfseg.ssl.fusion import fuse_pseudo_labels
    from nerfseg.ssl.projection import projection_pseudo_labels

    model, out = kept["model"], kept["out"]
    torch.manual_seed(0)
    head = build_head(cfg, model, NUM_CLASSES).eval()
    camera = sample.cameras[0]
    grid = PixelGrid(*camera.image_size, cfg.ssl.camera.stride)
    rows = []
    with torch.no_grad():
        volume = head.build_volume(out)
        f = int(out.voxel_features.feats.shape[1])
        m = int(out.voxel_features.num_voxels)
        rows.append(
            row(
                "NeRF render volume (build_volume)",
                timed_runs(lambda: head.build_volume(out), repeats),
                peaks,
                nbytes=m * f * 4 * 2 + int(volume.coords.shape[0]) * (int(volume.feats.shape[1]) * 4 + 32),
                note=f"{m} voxels -> {int(volume.coords.shape[0])} cells of {volume.voxel_size:.2f} m",
            )
        )
        bundle = camera_ray_bundle(camera, grid.pixels, scan=0, camera_index=0)
        r = len(bundle)
        rows.append(
            row(
                "camera ray grid (camera_ray_bundle)",
                timed_runs(lambda: camera_ray_bundle(camera, grid.pixels, scan=0, camera_index=0), repeats),
                peaks,
                nbytes=r * (16 + 24 + 24 + 16),
                note=f"{grid.shape[1]} x {grid.shape[0]} rays (stride {grid.stride})",
            )
        )
        rendered = head.render_clipped(volume, bundle)
        flops = matmul_flops(lambda: head.render_clipped(volume, bundle))
        rows.append(
            row(
                "camera render (render_clipped, teacher)",
                timed_runs(lambda: head.render_clipped(volume, bundle), repeats, 0),  # warmed up above
                peaks,
                flops=flops,
                note=f"{r} rays, {rendered.num_samples} samples, {rendered.num_evaluated} field "
                f"evaluations (fresh head: no ray stops early); FLOPs: the field MLP",
                rays=r,
                samples=rendered.num_samples,
                evaluations=rendered.num_evaluated,
                trilinear_bytes=rendered.num_evaluated * 8 * int(volume.feats.shape[1]) * 4,
            )
        )
        h, w = grid.shape
        probs = rendered.probs.view(h, w, -1)
        opacity = torch.ones(h, w)  # every pixel opaque: every branch of the fusion runs
        ids = torch.as_tensor(read_at_pixels(mask_ids, grid.pixels)).view(h, w)
        fusion = cfg.ssl.camera.fusion
        rows.append(
            row(
                "fusion (masks + rendered P -> pseudo-labels)",
                timed_runs(
                    lambda: fuse_pseudo_labels(
                        probs, opacity, ids, fusion.tau_mask, fusion.tau_pix, cfg.ssl.camera.tau_opacity
                    ),
                    repeats,
                ),
                peaks,
                nbytes=h * w * (NUM_CLASSES * 4 * 2 + 4 + 8 + 8 + 4),
                note=f"{h} x {w} pixels, {int(ids.max()) + 1} masks, all opaque; bytes: P read twice",
            )
        )
        points = torch.from_numpy(sample.points[:, :3].copy())
        classes = out.point_logits.argmax(1)  # the (untrained) full model's point classes vote
        proj = cfg.ssl.projection
        n = int(points.shape[0])
        rows.append(
            row(
                "projection (points -> pixels -> mask majority)",
                timed_runs(
                    lambda: projection_pseudo_labels(
                        points, [camera], [mask_ids], classes, NUM_CLASSES, proj.min_votes, proj.min_agreement
                    ),
                    repeats,
                ),
                peaks,
                nbytes=n * (12 + 8 * 2 + 8 * 3) + mask_ids.size * 4,
                note=f"{n} points into one {camera.image_size[0]} x {camera.image_size[1]} mask image",
            )
        )
    return rows


def bench_loading(cfg, peaks: dict, repeats: int) -> list[dict]:
    """The loader's per-scan work in this process (bench_loader.per_sample_split, one sample per call) and
    the stream rate measured by bench_loader.py (cited from results/loader.json)."""
    from bench_loader import per_sample_split

    from nerfseg.engine.build import open_split

    source = open_split(cfg, cfg.data.train_split)
    files = [source.scan_path(0), source.label_path(0)]
    camera = source[0].cameras[0]
    image_files = [camera.image_path] + ([camera.semantic_path] if camera.semantic_path else [])
    labeled_bytes = sum(Path(p).stat().st_size for p in files)
    unlabeled_bytes = labeled_bytes + sum(Path(p).stat().st_size for p in image_files)
    splits = [per_sample_split(cfg, 1) for _ in range(repeats)]
    rows = [
        row(
            "data: one labeled scan (read + augment + collate, one thread)",
            [s["labeled_scan_wall_s"] for s in splits],
            peaks,
            nbytes=labeled_bytes,
            note="bench_loader.per_sample_split; bytes: the .bin and .label files",
        ),
        row(
            "data: one unlabeled scan (+ 2 views, image, masks, pixel truth)",
            [s["unlabeled_scan_wall_s"] for s in splits],
            peaks,
            nbytes=unlabeled_bytes,
            note="bytes: .bin, .label, PNG image and semantic PNG files (decoded sizes are larger)",
        ),
    ]
    cited = RESULTS / "loader.json"
    if cited.exists():
        loader = json.loads(cited.read_text())
        rows[0]["cited_stream_rates"] = {
            s["stream"]: s["scans_per_s"]
            for s in loader.get("streams", loader.get("results", []))
            if isinstance(s, dict) and "scans_per_s" in s
        }
        rows[0]["cited_from"] = f"benchmarks/results/loader.json ({loader.get('date', '?')})"
    return rows


# ---------------------------------------------------------------------------------------------------------
# training steps (one fresh process per method)


def train_worker(spec: str, data: Path, init: Path | None, out: Path, warmup: int, steps: int) -> None:
    """bench_train_step.method_worker under a sparse-conv FLOP counter; adds the FLOPs per step to its
    record."""
    from bench_train_step import method_worker

    with ConvFlops() as conv:
        method_worker(spec, data, warmup, steps, out, init)
    record = json.loads(out.read_text())
    record["sparse_conv_flops_per_step"] = conv.flops / (warmup + steps)
    out.write_text(json.dumps(record))


def bench_training(
    methods: list[str], work: Path, peaks: dict, pretrain_steps: int, warmup: int, steps: int
) -> list[dict]:
    """One step of each method, its own process each, from the same `geometry`-pretrained weights."""
    from bench_train_step import LABELED_SCANS, simulate_ssl

    root = work / "ssl"
    simulate_ssl(root, 2 * LABELED_SCANS)
    env = dict(os.environ)
    init = None
    if pretrain_steps > 0:
        subprocess.run(
            [
                sys.executable,
                str(HERE / "bench_train_step.py"),
                "--pretrain-only",
                "--data",
                str(root),
                "--pretrain-steps",
                str(pretrain_steps),
                "--workdir",
                str(work),
                "--threads",
                str(torch.get_num_threads()),
            ],
            check=True,
            env=env,
        )
        init = work / f"geometry_{pretrain_steps}" / "checkpoints" / "last.pt"
    rows = []
    for method in methods:
        out = work / f"{method}.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--train-worker",
            method,
            "--data",
            str(root),
            "--out-record",
            str(out),
            "--warmup",
            str(warmup),
            "--steps",
            str(steps),
            "--threads",
            str(torch.get_num_threads()),
        ]
        if init is not None:
            cmd += ["--init", str(init)]
        subprocess.run(cmd, check=True, env=env)
        record = json.loads(out.read_text())
        metrics = record["metrics_last_step"]
        rays = metrics.get("render_rays")
        rows.append(
            row(
                f"train step `{method}` (synthetic preset)",
                record["step_seconds_all"],
                peaks,
                flops=record["sparse_conv_flops_per_step"],
                note=f"{record['labeled_scans']} + {record['unlabeled_scans']} scans of 64 x 512 beams, "
                f"{record['voxels_per_labeled_batch']} labeled voxels"
                + (f", {rays:.0f} camera rays" if rays is not None else "")
                + "; FLOPs: the segmentor's sparse convs (forward x1, with gradients x3)",
                method=method,
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------------------
# the wait-policy gap, before / after, in fresh processes


def policy_child(order: str, coords_file: Path, repeats: int) -> None:
    """In this fresh process (``order``: which of torch / nerfseg it imported first, see main): 2 threads,
    the kernel map without the single-thread scope (the code before the fix), with it, and `tiny`
    inference."""
    from nerfseg.data.collate import PointBatch
    from nerfseg.models.segmentor import LidarSegmentor, SegmentorConfig
    from nerfseg.sparse import kernel_map as km
    from nerfseg.threads import wait_policy

    torch.set_num_threads(2)
    saved = torch.load(coords_file)
    coords, points = saved["coords"], saved["points"]
    result = {"order": order, "policy": wait_policy(), "threads": torch.get_num_threads(),
              "tiny_points": len(points[::4])}
    result["map_unscoped_s"] = timed_runs(
        lambda: km._submanifold_map(coords, None, km.DEFAULT_BLOCK_ROWS), repeats
    )
    result["map_scoped_s"] = timed_runs(lambda: km.submanifold_map(coords), repeats)
    torch.manual_seed(0)
    model = LidarSegmentor(SegmentorConfig(preset="tiny", voxel_size=0.05), NUM_CLASSES).eval()
    points = points[::4]  # a quarter of the scan: bounded time where threads spin (10-20x slower)
    batch = PointBatch(points, torch.zeros(len(points), dtype=torch.int64), None, ["scan"])
    with torch.inference_mode():
        result["tiny_inference_s"] = timed_runs(lambda: model(batch), 1)
    print(json.dumps(result))


def bench_policy(coords: torch.Tensor, points: torch.Tensor, work: Path, repeats: int) -> list[dict]:
    """Run :func:`policy_child` with torch imported first (policy unset, as in a user's script) and with
    nerfseg first (as the `nerfseg` command); OMP_WAIT_POLICY removed from both environments."""
    coords_file = work / "coords.pt"
    torch.save({"coords": coords, "points": points}, coords_file)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    results = []
    for order in ("torch-first", "nerfseg-first"):
        first = "import torch" if order == "torch-first" else "import nerfseg"
        code = (
            f"{first}; import sys; sys.path.insert(0, {str(HERE)!r}); import bench_hot_paths as b; "
            f"b.policy_child({order!r}, __import__('pathlib').Path({str(coords_file)!r}), {repeats})"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"  wait policy, {order}: {result['policy']}: map unscoped "
            f"{statistics.median(result['map_unscoped_s']) * 1e3:.0f} ms, scoped "
            f"{statistics.median(result['map_scoped_s']) * 1e3:.0f} ms, "
            f"tiny {result['tiny_inference_s'][0]:.2f} s",
            flush=True,
        )
        results.append(result)
    return results


# ---------------------------------------------------------------------------------------------------------
# report


def machine() -> dict:
    from nerfseg.engine.precision import cpu_isa
    from nerfseg.threads import wait_policy

    isa = cpu_isa()
    return {
        "cpu": isa.model or "unknown",
        "isa": isa.describe(),
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": wait_policy(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def git_commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


def _fmt_work(r: dict) -> str:
    if r.get("flops"):
        return f"{r['flops'] / 1e9:.2f} GFLOP"
    if r.get("bytes"):
        return f"{r['bytes'] / 1e6:.1f} MB"
    return "-"


def _fmt_rate(r: dict) -> str:
    if "gflops" in r:
        return f"{r['gflops']:.1f} GFLOP/s"
    if "gbs" in r:
        return f"{r['gbs']:.2f} GB/s"
    return "-"


def markdown(results: dict) -> str:
    p, m = results["peaks"], results["machine"]
    bf16 = f"{p['bf16_gflops']:.1f} GFLOP/s" if p.get("bf16_gflops") else "not native (not measured)"
    lines = [
        "# Hot paths against this machine's peaks (issue 12 item 4)",
        "",
        f"- command: `{results['command']}`",
        f"- date: {results['date_utc']} UTC; commit {results['commit']}; run took {results['wall_s']:.0f} s",
        f"- machine: {m['cpu']}, ISA {m['isa']}, {m['logical_cpus']} logical CPUs, torch {m['torch']}, "
        f"{m['threads']} threads (torch's default: `train.num_threads: 0` and `predict --threads 0` keep "
        "it); "
        f"OpenMP wait policy: {m['omp_wait_policy']}; GPU: {m['gpu'] or 'none lent (GPU columns empty)'}",
        f"- load average before / after: {results['load_before']} / {results['load_after']} (1, 5, 15 min)",
        f"- peaks in this process: float32 matmul {p['float32_gflops']:.1f} GFLOP/s, bf16 matmul {bf16} "
        f"({p['matmul_n']}^3 torch.mm, best of 5); copy {p['copy_gbs']:.2f} GB/s (copy_ of 256 MiB, read + "
        "write bytes)",
        f"- scan: {results['scan']}",
        "",
        "Times: median of the repeats after one warm-up. Work: FLOPs of the matmuls (sparse convs: "
        "kernel-map "
        "pairs x Cin x Cout x 2), else the bytes a streaming implementation must at least read and write. "
        "Fraction: achieved FLOP/s over the matmul peak, or bytes/s over the copy bandwidth.",
        "",
        "| path | time (CPU) | work | rate | fraction of peak | time (GPU) | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        frac = r.get("fraction_of_peak")
        frac_s = f"{frac:.3f} ({r['peak']})" if frac is not None else "-"
        lines.append(
            f"| {r['path']} | {r['seconds_median'] * 1e3:,.1f} ms | {_fmt_work(r)} | {_fmt_rate(r)} | "
            f"{frac_s} |  | {r['note']} |"
        )
    floors = [r for r in results["rows"] if "wall_over_floor" in r]
    if floors:
        lines += [
            "",
            "Inference against its floor (sparse-conv FLOPs / matmul peak of this run; issue 12 item 5 "
            "targets: <= 1.6 float32, <= 2.0 bf16):",
            "",
            "| path | wall | floor | wall / floor |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['path']} | {r['seconds_median']:.2f} s | {r['floor_s']:.2f} s | "
            f"**{r['wall_over_floor']:.2f}** |"
            for r in floors
        ]
    if results.get("policy"):
        lines += [
            "",
            "OpenMP wait policy, before / after the fix (fresh processes, 2 threads, no OMP_WAIT_POLICY "
            "in the environment; `unscoped` = the kernel map as it was, on 2 threads):",
            "",
            "| process | policy | kernel map unscoped | kernel map (scoped to 1 thread) "
            "| `tiny` inference, 1/4 of the scan |",
            "|---|---|---|---|---|",
        ]
        for r in results["policy"]:
            lines.append(
                f"| {r['order']} | {r['policy']} | {statistics.median(r['map_unscoped_s']) * 1e3:.0f} ms | "
                f"{statistics.median(r['map_scoped_s']) * 1e3:.0f} ms | {r['tiny_inference_s'][0]:.2f} s |"
            )
    lines += ["", "Raw results: `hot_paths.json` beside this file.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller scan (64 x 512), 1 repeat, 2 methods")
    parser.add_argument("--repeats", type=int, help="timed repeats per path (default 3; --quick 1)")
    parser.add_argument(
        "--methods",
        help=f"comma-separated training methods (default all: {','.join(METHODS)}; "
        "--quick: supervised,nerf; empty: none)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "hot_paths.json")
    parser.add_argument("--train-worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--init", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out-record", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_worker:
        train_worker(args.train_worker, args.data, args.init, args.out_record, args.warmup, args.steps)
        return 0

    from nerfseg.io_utils import atomic_write_text

    started = time.perf_counter()
    repeats = args.repeats or (1 if args.quick else 3)
    azimuth = 512 if args.quick else 2048
    if args.methods is None:
        methods = ["supervised", "nerf"] if args.quick else list(METHODS)
    else:
        methods = [m for m in args.methods.split(",") if m.strip()]
    command = "python benchmarks/bench_hot_paths.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {
        "command": command.strip(),
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "commit": git_commit(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "quick": args.quick,
        "repeats": repeats,
        "machine": machine(),
    }
    print(
        f"load {results['load_before']}; {results['machine']['isa']}; {torch.get_num_threads()} threads",
        flush=True,
    )
    results["peaks"] = peaks = measure_peaks()
    print(f"  peaks: {peaks}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_hot_paths_") as tmp:
        work = Path(tmp)
        root = work / "kitti"
        simulate_scan(root, azimuth)
        cfg, sample, batch, mask_ids = load_inputs(root)
        voxel = cfg.model.segmentor.voxel_size
        results["scan"] = (
            f"simulated by `nerfseg simulate` (64 beams x {azimuth} columns, one 1242 x 375 camera): "
            f"{batch.points.shape[0]} points; voxel {voxel} m; superpixel masks"
        )
        rows, coords = bench_sparse_paths(batch, voxel, peaks, repeats)
        backbone_rows, kept = bench_backbones(batch, voxel, peaks, repeats, args.quick)
        rows += backbone_rows
        rows += bench_camera(cfg, sample, mask_ids, kept, peaks, repeats)
        kept.clear()
        rows += bench_loading(cfg, peaks, repeats)
        results["policy"] = bench_policy(coords, batch.points, work, max(repeats, 3))
        if methods:
            rows += bench_training(methods, work, peaks, 5 if args.quick else 10, 1, 1 if args.quick else 2)
    results["rows"] = rows
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(results, indent=2, default=float) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), markdown(results))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} in {results['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
