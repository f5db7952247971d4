"""Training-step time of the supervised engine (segmentor forward + CE/Lovász loss + backward + AdamW step),
for the `tiny` preset on synthetic-size scans and the `full` preset on SemanticKITTI-size scans.

Scans come from the built-in simulator (written once into a temporary folder): 64 beams x 512 azimuth
steps (~30k points, the synthetic dataset's size) and 64 x 2048 (~120k points, a SemanticKITTI scan).
Each configuration builds the model as the presets do (configs/synthetic, configs/semantickitti), feeds
a batch of `--batch-size` augmented scans, runs `--warmup` untimed steps, then `--steps` timed steps;
reports the median and the best step time, the voxel count and the process's peak RSS.

    .venv/bin/python benchmarks/bench_train_step.py                      # writes benchmarks/results/
    .venv/bin/python benchmarks/bench_train_step.py --threads 2 --steps 3 --only tiny

`--methods [LIST]` measures instead every training method of the one loop side by side in one run
(issue 10 item 8), at the synthetic preset of each (configs/synthetic/<method>.yaml: tiny segmentor,
0.15 m voxels), on a batch of 2 labeled + 2 unlabeled simulated scans (64 x 512 beams) with one full-size
1242 x 375 front camera per scan whose superpixel masks are in the cache before anything is timed. Every
method starts from the same weights: the `geometry` control trained `--pretrain-steps` steps on the same
scans (a fresh head renders transparent rays, which pass no opacity gate, so a fresh `nerf` step would
render no student ray). Each method runs `train_step` (the loop's step: losses, backward, clipping, AdamW,
EMA teacher) in its own fresh process, so its peak RSS is its own: the peak after the steps minus the RSS
just before the first step is the step's peak (the kernel's high-water mark VmHWM, reset to the current RSS
just before the first step, and `ru_maxrss`, which also counts the parent's RSS at the fork; both are
reported). Timers around the step's parts (teacher forward, teacher render, fusion, sampler, student
forwards and renders, backward, optimiser, EMA) tell where the time goes. A list entry may carry config
overrides after `@` (`nerf@ssl.camera.stride=8@model.nerf.samples_per_ray=128`) to measure a lever in the
same run.

    .venv/bin/python benchmarks/bench_train_step.py --methods                 # all, -> train_step_methods.*
    .venv/bin/python benchmarks/bench_train_step.py --methods supervised,nerf --steps 1 --warmup 0
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
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

import nerfseg  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE while libgomp is not loaded yet)

# isort: split
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
    from nerfseg.engine.precision import cpu_isa

    isa = f"ISA {cpu_isa().describe()}"
    return f"{model}, {os.cpu_count()} logical CPUs, {isa}, {platform.system()} {platform.release()}"


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


# ---------------------------------------------------------------------------------------------------------
# Every method side by side (--methods)

METHOD_PRESETS = {
    # method (the config's `method:` value): its synthetic preset
    "supervised": "configs/synthetic/supervised.yaml",
    "mean-teacher": "configs/synthetic/mean_teacher.yaml",
    "lasermix": "configs/synthetic/lasermix.yaml",
    "projection": "configs/synthetic/projection.yaml",
    "nerf": "configs/synthetic/nerf.yaml",
    "nerf+mean-teacher": "configs/synthetic/nerf_mt.yaml",
    "nerf+lasermix": "configs/synthetic/nerf_lasermix.yaml",
    "geometry": "configs/synthetic/geometry.yaml",
}
LABELED_SCANS = 2
"""Labeled scans per batch (the presets' data.batch_size); as many unlabeled scans come beside them."""
PARTS_TO_SPLIT = "nerf"
"""The method whose step is split into parts in the results file (every method's parts are in the JSON)."""


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """``"nerf@ssl.camera.stride=8@model.nerf.samples_per_ray=128"`` -> ("nerf", [overrides])."""
    method, *overrides = spec.strip().split("@")
    if method not in METHOD_PRESETS:
        raise SystemExit(f"--methods: unknown method {method!r} (known: {', '.join(METHOD_PRESETS)})")
    return method, overrides


def simulate_ssl(root: Path, frames: int) -> float:
    """Simulate ``frames`` full-size frames of sequence 00 (64 x 512 beams, one 1242 x 375 front camera,
    0.5 s apart) and fill the superpixel mask cache of every image; returns the seconds the masks took."""
    from nerfseg.config import load_config
    from nerfseg.data.datasets import open_dataset
    from nerfseg.masks.config import open_run_mask_cache

    simulate(root, 512, frames)
    started = time.perf_counter()
    cfg = load_config(REPO / METHOD_PRESETS["nerf"], [f"data.root={root}"])
    cache = open_run_mask_cache(cfg)
    for sample in open_dataset("semantickitti", root, "train"):
        for camera in sample.cameras:
            cache.ensure(camera.load_image())
    return time.perf_counter() - started


def pretrain_head(root: Path, steps: int, run_dir: Path) -> Path:
    """Train the `geometry` control for ``steps`` steps on the simulated scans (labels of scans 0-1 only,
    LiDAR-ray geometry on all four) and return its checkpoint: the starting weights of every method, so that
    the teacher's renders are opaque where the LiDAR saw surfaces (a fresh head is nearly transparent: no ray
    passes the opacity gate and the student renders nothing, which would make the `nerf` step look cheap)."""
    from nerfseg.config import load_config
    from nerfseg.data.datasets import open_dataset
    from nerfseg.engine.train import train

    last = run_dir / "checkpoints" / "last.pt"
    if last.exists():
        return last
    run_dir.mkdir(parents=True, exist_ok=True)
    ids = list(open_dataset("semantickitti", root, "train").sample_ids)[:LABELED_SCANS]
    split = run_dir / "labeled.txt"
    split.write_text("".join(f"{i}\n" for i in ids))
    cfg = load_config(
        REPO / METHOD_PRESETS["geometry"],
        [
            f"data.root={root}", f"data.labeled_split={split}", "data.val_split=", "data.num_workers=0",
            f"train.max_steps={steps}", f"train.checkpoint_every={steps}", "train.log_every=10",
            "train.progress=false",
        ],
    )
    train(cfg, run_dir)
    return last


def load_initial_weights(state, checkpoint: Path) -> None:
    """Student segmentor (and NeRF head, where the method has one) from a training checkpoint; the EMA
    teacher's copies start as the student."""
    from nerfseg.engine import checkpoint as ckpt

    stored = ckpt.load_checkpoint(checkpoint, map_location="cpu")
    state.model.load_state_dict(stored["model"])
    if state.head is not None:
        state.head.load_state_dict(stored["nerf_head"])
    if state.teacher is not None:
        state.teacher.copies["model"].load_state_dict(state.model.state_dict())
        if state.head is not None:
            state.teacher.copies["head"].load_state_dict(state.head.state_dict())


def proc_status_gib(key: str) -> float:
    """A memory line of /proc/self/status (``VmRSS``: resident set size now, ``VmHWM``: its peak), GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError(f"no {key} in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (VmHWM) to its current RSS (Linux >= 4.0: ``5`` written to
    /proc/self/clear_refs); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def max_rss_gib() -> float:
    """Peak resident set size of this process so far (getrusage ru_maxrss, KiB on Linux), GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class PartTimers:
    """Wall-clock timers around named calls, nested: each call's time is kept under its path of enclosing
    timed calls (``"losses/camera/teacher pseudo-labels/teacher render"``); ``exclusive`` leaves the timed
    children out, so the exclusive times of one step add up to its timed total."""

    def __init__(self):
        self.stack: list[str] = []
        self.inclusive: dict[str, float] = {}
        self.children: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.counters: dict[str, float] = {}

    def wrap(self, name: str, fn, count=None):
        """``fn`` timed under ``name``; ``count(result) -> {counter: value}`` adds counters per call."""

        @functools.wraps(fn)  # keeps markers such as the LR scheduler's on a wrapped optimizer.step
        def timed(*args, **kwargs):
            path = "/".join([*self.stack, name])
            self.stack.append(name)
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.stack.pop()
            self.inclusive[path] = self.inclusive.get(path, 0.0) + elapsed
            self.calls[path] = self.calls.get(path, 0) + 1
            if self.stack:
                parent = "/".join(self.stack)
                self.children[parent] = self.children.get(parent, 0.0) + elapsed
            if count is not None:
                for key, value in count(result).items():
                    key = f"{path}: {key}"
                    self.counters[key] = self.counters.get(key, 0.0) + value
            return result

        return timed

    def reset(self) -> None:
        self.inclusive, self.children, self.calls, self.counters = {}, {}, {}, {}

    def snapshot(self) -> dict:
        """{path: {"inclusive_s", "exclusive_s", "calls"}} plus the counters, for one step."""
        parts = {
            path: {
                "inclusive_s": seconds,
                "exclusive_s": seconds - self.children.get(path, 0.0),
                "calls": self.calls[path],
            }
            for path, seconds in self.inclusive.items()
        }
        return {"parts": parts, "counters": dict(self.counters)}


def _render_counts(out) -> dict[str, float]:
    """Rays, samples and field evaluations (occupied samples) of a RenderOutput."""
    return {
        "rays": float(out.depth.shape[0]),
        "samples": float(out.num_samples),
        "field evaluations": float(out.num_evaluated),
    }


def instrument(timers: PartTimers, state, loss_fn) -> None:
    """Put timers around the parts of `train_step` (module functions it looks up at call time, and the
    instances' methods): nothing of the library changes but the wrappers."""
    import nerfseg.engine.step as step_mod
    import nerfseg.models.nerf.losses as nerf_losses
    import nerfseg.ssl.camera_step as camera_step
    import nerfseg.ssl.lasermix as lasermix
    import nerfseg.ssl.methods as methods
    import nerfseg.ssl.projection_step as projection_step

    step_mod.method_losses = timers.wrap("losses", step_mod.method_losses)
    methods.teacher_points = timers.wrap("teacher forward", methods.teacher_points)
    nerf_losses.lidar_ray_losses = timers.wrap("geometry loss", nerf_losses.lidar_ray_losses)
    lasermix.lasermix_batch = timers.wrap("lasermix mixing", lasermix.lasermix_batch)
    projection_step.projection_labels = timers.wrap("projection labels", projection_step.projection_labels)
    camera_step.camera_render_loss = timers.wrap("camera", camera_step.camera_render_loss)
    camera_step.camera_pseudo_labels = timers.wrap("teacher pseudo-labels", camera_step.camera_pseudo_labels)
    camera_step.fuse_pseudo_labels = timers.wrap("fusion", camera_step.fuse_pseudo_labels)
    camera_step.sample_rays_with = timers.wrap("sampler", camera_step.sample_rays_with)
    camera_step.camera_ray_bundle = timers.wrap("ray bundle", camera_step.camera_ray_bundle)
    torch.Tensor.backward = timers.wrap("backward", torch.Tensor.backward)
    torch.nn.utils.clip_grad_norm_ = timers.wrap("grad clip", torch.nn.utils.clip_grad_norm_)
    state.optimizer.step = timers.wrap("optimizer", state.optimizer.step)
    state.model.forward = timers.wrap("student forward", state.model.forward)
    loss_fn.forward = timers.wrap("CE + Lovasz", loss_fn.forward)
    if state.head is not None:
        head = state.head
        head.build_volume = timers.wrap("student volume", head.build_volume)
        head.render_grid = timers.wrap("student render", head.render_grid, _render_counts)
    if state.teacher is not None:
        state.teacher.update = timers.wrap("EMA update", state.teacher.update)
        if "head" in state.teacher.copies:
            teacher_head = state.teacher["head"]
            teacher_head.build_volume = timers.wrap("teacher volume", teacher_head.build_volume)
            teacher_head.render_chunked = timers.wrap(
                "teacher render", teacher_head.render_chunked, _render_counts
            )


def method_worker(
    spec: str, data_root: Path, warmup: int, steps: int, out: Path, init: Path | None = None
) -> None:
    """Measure one method in this (fresh) process and write its JSON record to ``out``."""
    from nerfseg.config import load_config
    from nerfseg.data.collate import collate_samples
    from nerfseg.data.datasets import DatasetKind, open_dataset
    from nerfseg.data.loader import TrainingDataset
    from nerfseg.engine.losses import SegmentationLoss
    from nerfseg.engine.step import train_step
    from nerfseg.engine.streams import UnlabeledDataset, collate_unlabeled
    from nerfseg.engine.train import build_state, camera_inputs
    from nerfseg.sparse import voxelize
    from nerfseg.ssl.config import Method
    from nerfseg.ssl.recipe import recipe_for

    method, overrides = parse_spec(spec)
    preset = METHOD_PRESETS[method]
    cfg = load_config(REPO / preset, [f"data.root={data_root}", "data.num_workers=0", *overrides])
    if cfg.method != Method(method):
        raise SystemExit(f"{preset}: method {cfg.method.value!r}, expected {method!r}")
    recipe = recipe_for(cfg.method)
    label_map = DatasetKind(cfg.data.dataset).label_map
    device = torch.device("cpu")
    source = open_dataset("semantickitti", data_root, "train")
    batch = cfg.data.batch_size
    if len(source) < 2 * batch:
        raise SystemExit(f"{data_root}: {len(source)} train scans, need {2 * batch}")
    labeled = np.arange(batch)
    unlabeled = np.arange(batch, 2 * batch)
    labeled_data = TrainingDataset(source, labeled, cfg.augment, cfg.train.seed)
    unlabeled_data = UnlabeledDataset(source, unlabeled, cfg.augment, cfg.train.seed, camera_inputs(cfg))

    # every step's batches are read before the first step (data time is not step time); step s is epoch s
    started = time.perf_counter()
    batches = []
    for s in range(warmup + steps):
        labeled_batch = collate_samples([labeled_data[(s, p)] for p in range(batch)])
        unlabeled_batch = None
        if recipe.uses_unlabeled:
            unlabeled_batch = collate_unlabeled([unlabeled_data[(s, p)] for p in range(batch)])
        batches.append((labeled_batch, unlabeled_batch))
    data_seconds = (time.perf_counter() - started) / len(batches)

    state = build_state(cfg, label_map.num_classes, device)
    if init is not None:
        load_initial_weights(state, init)
    state.model.train()
    if state.head is not None:
        state.head.train()
    loss_fn = SegmentationLoss(cfg.loss)
    timers = PartTimers()
    instrument(timers, state, loss_fn)
    gc.collect()
    hwm_before = proc_status_gib("VmHWM")
    maxrss_before = max_rss_gib()
    hwm_reset = reset_peak_rss()
    rss_before = proc_status_gib("VmRSS")

    timings, parts, step_metrics = [], [], []
    for s, (labeled_batch, unlabeled_batch) in enumerate(batches):
        timers.reset()
        t0 = time.perf_counter()
        metrics = train_step(
            recipe, state, loss_fn, cfg, labeled_batch, unlabeled_batch, device, label_map.num_classes, s + 1
        )
        elapsed = time.perf_counter() - t0
        step_metrics.append({k: v for k, v in metrics.items() if np.isfinite(v)})
        if s >= warmup:
            timings.append(elapsed)
            parts.append({"step_s": elapsed, **timers.snapshot()})
    maxrss_after = max_rss_gib()
    hwm_after = proc_status_gib("VmHWM")

    labeled_batch, unlabeled_batch = batches[-1]
    voxel = cfg.model.segmentor.voxel_size
    voxels = int(
        voxelize(labeled_batch.points[:, :3], labeled_batch.batch_index, labeled_batch.points, voxel)
        .tensor.coords.shape[0]
    )
    params = sum(p.numel() for p in state.model.parameters())
    head_params = 0 if state.head is None else sum(p.numel() for p in state.head.parameters())
    record = {
        "spec": spec,
        "method": method,
        "preset": preset,
        "overrides": overrides,
        "settings": method_settings(cfg, recipe),
        "labeled_scans": batch,
        "unlabeled_scans": batch if recipe.uses_unlabeled else 0,
        "points_per_labeled_batch": int(labeled_batch.points.shape[0]),
        "voxels_per_labeled_batch": voxels,
        "segmentor_parameters": params,
        "head_parameters": head_params,
        "initial_weights": str(init) if init else "fresh (train.seed)",
        "warmup_steps": warmup,
        "steps": steps,
        "step_seconds_median": statistics.median(timings),
        "step_seconds_best": min(timings),
        "step_seconds_all": [round(t, 4) for t in timings],
        "data_seconds_per_step": data_seconds,
        "rss_before_first_step_gib": rss_before,
        "vm_hwm_before_first_step_gib": hwm_before,
        "vm_hwm_reset": hwm_reset,
        "vm_hwm_after_steps_gib": hwm_after,
        "ru_maxrss_before_first_step_gib": maxrss_before,
        "ru_maxrss_after_steps_gib": maxrss_after,
        "step_peak_gib": (hwm_after if hwm_reset else maxrss_after) - rss_before,
        "step_peak_ru_maxrss_gib": maxrss_after - rss_before,
        "process_peak_gib": max(hwm_before, hwm_after),
        "parts_per_step": parts,
        "parts_median": median_parts(parts),
        "metrics_last_step": step_metrics[-1],
        "metrics_per_step": step_metrics,  # warm-up steps included: step 1's teacher is the initial weights
        "threads": torch.get_num_threads(),
    }
    out.write_text(json.dumps(record, indent=2) + "\n")


def method_settings(cfg, recipe) -> dict:
    """The settings that decide a step's cost."""
    settings = {"voxel_size_m": cfg.model.segmentor.voxel_size, "segmentor": cfg.model.segmentor.preset}
    if recipe.uses_head:
        nerf = cfg.model.nerf
        settings.update(
            samples_per_ray=nerf.samples_per_ray,
            lidar_samples_per_ray=nerf.lidar_samples_per_ray,
            lidar_surface_samples=nerf.lidar_surface_samples,
            lidar_rays_per_scan=nerf.lidar_rays_per_scan,
            near=nerf.near,
            far=nerf.far,
            chunk_rays=nerf.chunk_rays,
            early_stop_transmittance=nerf.early_stop_transmittance,
            volume_stride=nerf.volume_stride,
            volume_dilation=nerf.volume_dilation,
        )
    if recipe.camera or recipe.projection:
        camera = cfg.ssl.camera
        settings.update(cameras_per_scan=camera.cameras_per_scan)
    if recipe.camera:
        settings.update(stride=camera.stride, budget=camera.sampler.budget)
    return settings


def median_parts(parts: list[dict]) -> dict:
    """Per part path, the median over the timed steps of its exclusive and inclusive seconds and its calls;
    counters likewise."""
    paths = sorted({p for step in parts for p in step["parts"]})
    result = {}
    for path in paths:
        empty = {"inclusive_s": 0.0, "exclusive_s": 0.0, "calls": 0}
        values = [step["parts"].get(path, empty) for step in parts]
        result[path] = {
            key: statistics.median(v[key] for v in values) for key in ("inclusive_s", "exclusive_s", "calls")
        }
    counters = sorted({c for step in parts for c in step["counters"]})
    return {
        "parts": result,
        "counters": {c: statistics.median(step["counters"].get(c, 0.0) for step in parts) for c in counters},
    }


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def git_commit() -> dict:
    """HEAD and the paths with uncommitted changes (the measurement runs the working tree)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return {"commit": git("rev-parse", "HEAD").strip(), "uncommitted_changes": dirty}


def run_methods(specs: list[str], args, command: str) -> dict:
    """Simulate the data once, then measure each spec in its own subprocess, one after the other."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    results = {
        "benchmark": "training step of every method (losses + backward + clip + AdamW + EMA), CPU",
        "command": command,
        "machine": machine(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_commit(),
        "torch": torch.__version__,
        "threads": args.threads,
        "omp_wait_policy": env["OMP_WAIT_POLICY"],
        "uptime_before": uptime(),
        "data": (
            f"simulated SemanticKITTI layout, {2 * LABELED_SCANS} frames of sequence 00 0.5 s apart, "
            "64 x 512 beams, one 1242 x 375 front camera each; scans 0-1 labeled, 2-3 unlabeled; "
            "superpixel masks cached before timing"
        ),
        "methods": [],
    }
    print(results["uptime_before"])
    with tempfile.TemporaryDirectory(prefix="bench_methods_") as tmp:
        work = args.workdir or Path(tmp)
        root = work / "sim"
        if not (root / "sequences").exists():
            simulate_ssl(root, 2 * LABELED_SCANS)
        init = None
        if args.pretrain_steps > 0:
            started = time.perf_counter()
            init = work / f"geometry_{args.pretrain_steps}" / "checkpoints" / "last.pt"
            if not init.exists():  # in a subprocess: this process stays small for the workers it forks
                cmd = [sys.executable, str(Path(__file__).resolve()), "--pretrain-only", "--data", str(root),
                       "--pretrain-steps", str(args.pretrain_steps), "--workdir", str(work)]
                subprocess.run(cmd, check=True, env=env)
            results["pretrain_seconds"] = time.perf_counter() - started
        results["initial_weights"] = (
            f"`geometry` preset trained {args.pretrain_steps} steps on the 4 scans (labels of scans 0-1)"
            if init else "fresh (train.seed)"
        )
        results["uptime_before_timing"] = uptime()
        print(results["uptime_before_timing"])
        for spec in specs:
            out = work / "record.json"
            load_before = os.getloadavg()[0]
            cmd = [
                sys.executable, str(Path(__file__).resolve()), "--worker", spec, "--data", str(root),
                "--warmup", str(args.warmup), "--steps", str(args.steps), "--threads", str(args.threads),
                "--worker-out", str(out),
            ]
            if init is not None:
                cmd += ["--init", str(init)]
            subprocess.run(cmd, check=True, env=env)
            record = json.loads(out.read_text())
            record["load_average_1min_before"] = load_before
            record["load_average_1min_after"] = os.getloadavg()[0]
            results["methods"].append(record)
            extra = record["metrics_last_step"]
            print(
                f"{spec:28s} step median {record['step_seconds_median']:7.3f} s, best "
                f"{record['step_seconds_best']:7.3f} s; step peak {record['step_peak_gib']:.3f} GiB "
                f"(process peak {record['process_peak_gib']:.3f} GiB); render rays "
                f"{extra.get('render_rays', '-')}, pseudo coverage "
                f"{extra.get('render_pseudo_coverage', '-')}, "
                f"accuracy {extra.get('render_pseudo_accuracy', '-')}",
                flush=True,
            )
    results["uptime_after"] = uptime()
    print(results["uptime_after"])
    add_ratios(results)
    return results


def add_ratios(results: dict) -> None:
    """Time and memory ratios to the plain `supervised` entry of the same run."""
    base = next((m for m in results["methods"] if m["spec"] == "supervised"), None)
    if base is None:
        return
    for m in results["methods"]:
        m["time_ratio_median"] = m["step_seconds_median"] / base["step_seconds_median"]
        m["time_ratio_best"] = m["step_seconds_best"] / base["step_seconds_best"]
        m["step_peak_ratio"] = m["step_peak_gib"] / base["step_peak_gib"]
        m["step_peak_ru_maxrss_ratio"] = m["step_peak_ru_maxrss_gib"] / base["step_peak_ru_maxrss_gib"]
        m["process_peak_ratio"] = m["process_peak_gib"] / base["process_peak_gib"]


def _fmt_ratio(record: dict, key: str) -> str:
    return f"{record[key]:.2f}x" if key in record else "-"


def methods_markdown(results: dict) -> str:
    """The results file: setup, the side-by-side table, the split of the split method's step."""
    first = results["methods"][0]
    git = results["git"]
    lines = [
        "# Training-step cost of every method, side by side (CPU)",
        "",
        "Generated by `benchmarks/bench_train_step.py --methods` (JSON beside this file). What is timed: one",
        "`nerfseg.engine.step.train_step` call (the loop's step: the method's losses, backward, gradient",
        "clipping, AdamW + one-cycle schedule, EMA teacher update), batches read beforehand; median and",
        f"best of {first['steps']} steps after {first['warmup_steps']} warm-up step(s). Each method runs in",
        "its own fresh process. *Step peak* = the peak RSS after the steps minus the RSS just before the",
        "first step (model, teacher, optimiser and every batch already built): VmHWM reset to the current",
        "RSS just before the first step, and `ru_maxrss` (not resettable; it also holds the parent's RSS at",
        "the fork).",
        "*Process peak*: the whole process's VmHWM. Every method starts from the same weights: "
        f"{results['initial_weights']}.",
        "",
        f"- Command: `{results['command']}`",
        f"- Machine: {results['machine']}; torch {results['torch']}; {results['threads']} thread(s), "
        f"OMP_WAIT_POLICY={results['omp_wait_policy']}",
        f"- Date (UTC): {results['date_utc']}; git {git['commit'][:12]}"
        + (f" plus uncommitted changes in {', '.join(git['uncommitted_changes'])}"
           if git["uncommitted_changes"] else ""),
        f"- `uptime` at the start: `{results['uptime_before']}`",
        f"- `uptime` before the first timed method: `{results['uptime_before_timing']}`",
        f"- `uptime` after the last: `{results['uptime_after']}`",
        f"- Data: {results['data']}.",
        "",
        "| method (overrides) | step median | step best | time / supervised (median, best) | step peak | "
        "/ supervised | step peak (ru_maxrss) | / supervised | process peak | camera rays, pseudo-label "
        "coverage, accuracy (last step) | load 1 min before -> after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in results["methods"]:
        extra = m["metrics_last_step"]
        camera = "-"
        if "render_rays" in extra:
            camera = f"{extra['render_rays']:.0f}, {100 * extra.get('render_pseudo_coverage', 0.0):.1f} %"
            if "render_pseudo_accuracy" in extra:
                camera += f", {100 * extra['render_pseudo_accuracy']:.1f} %"
        lines.append(
            f"| `{m['spec']}` | {m['step_seconds_median']:.3f} s | {m['step_seconds_best']:.3f} s | "
            f"{_fmt_ratio(m, 'time_ratio_median')}, {_fmt_ratio(m, 'time_ratio_best')} | "
            f"{m['step_peak_gib'] * 1024:.0f} MiB | {_fmt_ratio(m, 'step_peak_ratio')} | "
            f"{m['step_peak_ru_maxrss_gib'] * 1024:.0f} MiB | {_fmt_ratio(m, 'step_peak_ru_maxrss_ratio')} | "
            f"{m['process_peak_gib'] * 1024:.0f} MiB | {camera} | "
            f"{m['load_average_1min_before']:.2f} -> {m['load_average_1min_after']:.2f} |"
        )
    for m in results["methods"]:
        if m["spec"] == PARTS_TO_SPLIT:
            lines += ["", *parts_markdown(m)]
    variants = [m for m in results["methods"] if m["method"] == PARTS_TO_SPLIT]
    if len(variants) > 1:
        lines += ["", *levers_markdown(variants)]
    return "\n".join(lines) + "\n"


TEACHER_RENDER = "losses/camera/teacher pseudo-labels/teacher render"
STUDENT_CAMERA_RENDER = "losses/camera/student render"


def levers_markdown(variants: list[dict]) -> list[str]:
    """One row per measured setting of the split method: its cost and its pseudo-labels."""
    lines = [
        f"## `{PARTS_TO_SPLIT}` levers, measured in the same run",
        "",
        "Teacher render / student camera render / backward: exclusive seconds per step (median). Samples:",
        "the teacher's ray samples per step, and how many of them were evaluated by the field (occupied).",
        "Pseudo-labels: share of the reduced grid's pixels given a fused pseudo-label and their accuracy",
        "against `semantic_2/`, at step 1 (the same initial teacher and batch for every setting; later steps",
        "differ by the training trajectory, not by the setting).",
        "",
        "| setting | step median | / supervised | step peak / supervised | teacher render | teacher samples "
        "(field evaluations) | student camera render | backward | pseudo-label coverage, accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in variants:
        parts, counters = m["parts_median"]["parts"], m["parts_median"]["counters"]
        extra = m["metrics_per_step"][0] if "metrics_per_step" in m else {}  # older results: not recorded

        def seconds(path, parts=parts):
            return f"{parts[path]['exclusive_s']:.3f} s" if path in parts else "-"

        samples = counters.get(f"{TEACHER_RENDER}: samples", 0.0)
        evaluated = counters.get(f"{TEACHER_RENDER}: field evaluations", 0.0)
        labels = "not recorded" if "metrics_per_step" not in m else "-"
        if "render_pseudo_coverage" in extra:
            labels = f"{100 * extra['render_pseudo_coverage']:.1f} %"
            if "render_pseudo_accuracy" in extra:
                labels += f", {100 * extra['render_pseudo_accuracy']:.1f} %"
        lines.append(
            f"| `{m['spec']}` | {m['step_seconds_median']:.3f} s | {_fmt_ratio(m, 'time_ratio_median')} | "
            f"{_fmt_ratio(m, 'step_peak_ratio')} | {seconds(TEACHER_RENDER)} | {samples / 1e6:.2f} M "
            f"({evaluated / 1e3:.0f} k) | {seconds(STUDENT_CAMERA_RENDER)} | {seconds('backward')} | "
            f"{labels} |"
        )
    return lines


def parts_markdown(record: dict) -> list[str]:
    """Table of one method's step split into its timed parts (median over the timed steps)."""
    med = record["parts_median"]
    total = record["step_seconds_median"]
    lines = [
        f"## Where the time of a `{record['spec']}` step goes",
        "",
        "Exclusive time of each timed part (its timed sub-parts left out), median over the timed steps; the",
        "path shows what encloses it. *other* is the step's time outside every timer.",
        "",
        "| part | calls | exclusive | share of step |",
        "|---|---|---|---|",
    ]
    timed = 0.0
    for path, part in sorted(med["parts"].items(), key=lambda kv: -kv[1]["exclusive_s"]):
        timed += part["exclusive_s"]
        lines.append(
            f"| {path} | {part['calls']:g} | {part['exclusive_s']:.3f} s | "
            f"{100 * part['exclusive_s'] / total:.1f} % |"
        )
    lines.append(f"| other | | {total - timed:.3f} s | {100 * (total - timed) / total:.1f} % |")
    counters = med["counters"]
    if counters:
        lines += ["", "| counted per step | value |", "|---|---|"]
        lines += [f"| {k} | {v:,.0f} |" for k, v in sorted(counters.items())]
    return lines


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
    parser.add_argument(
        "--out", type=Path, help="results JSON (train_step.json; with --methods train_step_methods.json)"
    )
    parser.add_argument(
        "--methods",
        nargs="?",
        const=",".join(METHOD_PRESETS),
        help="measure these methods side by side instead of the cases (comma-separated, default all: "
        + ",".join(METHOD_PRESETS)
        + "); an entry may add config overrides after '@'",
    )
    parser.add_argument(
        "--pretrain-steps",
        type=int,
        default=100,
        help="with --methods: steps of the `geometry` control whose weights every method starts from "
        "(default 100; 0 = fresh weights, whose transparent renders draw no camera rays)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="with --methods: keep (and reuse) the simulated data and pre-training"
    )
    parser.add_argument(
        "--report", type=Path, help="rewrite the markdown of a --methods results JSON (next to it) and exit"
    )
    parser.add_argument("--init", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pretrain-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one method, in a subprocess
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.report:
        args.report.with_suffix(".md").write_text(methods_markdown(json.loads(args.report.read_text())))
        return 0
    if args.pretrain_only:
        pretrain_head(args.data, args.pretrain_steps, args.workdir / f"geometry_{args.pretrain_steps}")
        return 0
    if args.worker:
        method_worker(args.worker, args.data, args.warmup, args.steps, args.worker_out, args.init)
        return 0
    command = "python benchmarks/bench_train_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.methods is not None:
        specs = [spec for spec in args.methods.split(",") if spec.strip()]
        for spec in specs:
            parse_spec(spec)
        out = args.out or RESULTS / "train_step_methods.json"
        results = run_methods(specs, args, command.strip())
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        out.with_suffix(".md").write_text(methods_markdown(results))
        print(f"wrote {out} and {out.with_suffix('.md')}")
        return 0
    args.out = args.out or RESULTS / "train_step.json"
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
