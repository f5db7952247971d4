"""The synthetic semi-supervised benchmark: every method, the geometry control, a fully supervised reference
and two oracle diagnostics, trained with one budget on the built-in simulator, for two rigs.

Protocol (fixed; ``--quick`` is a subset):

* front rig: SemanticKITTI layout, the KITTI-like front camera (sees about a quarter of the points).
  ``--sequences 5`` (four training streets 00-03 and the validation street 08), 20 frames each, 2 s apart
  (16 m at 8 m/s: consecutive scans show different parts of the street). 80 training scans.
* ring rig: nuScenes layout (v1.0-mini scene names), six cameras around the car, at the low fraction only
  (2.5 %: at 10 % the front rig has no headroom left under this budget).
* label fractions 1.25 % and 2.5 % (1 and 2 labeled scans of the front rig's 80): measured headroom first
  (supervised, 400 steps, seed 0): 39.3 % / 53.0 % mIoU against 61.7 % with every label, while 10 % (8 scans)
  already gives 62.4 % (no room at all); label subset seeded by the run seed, so methods with the same seed
  share their labeled scans.
* budget: 400 optimiser steps of batch 2 (+ 2 unlabeled scans for the semi-supervised methods), tiny
  preset, one thread per run, equal for every method; seconds are reported.
* methods: supervised, mean-teacher, lasermix, projection, nerf, nerf+mean-teacher, nerf+lasermix,
  geometry, supervised at 100 % (reference), and the oracles nerf-oracle / projection-oracle (fed the
  ground-truth semantic images instead of fused pseudo-labels: upper bounds, never results).

Resumable run by run: a run already in ``DIR/ssl_synthetic.json`` is skipped, an interrupted run resumes from
its checkpoint. Writes ``DIR/ssl_synthetic.json`` (``{"protocol", "environment", "runs": [{"method",
"fraction", "seed", "rig", "miou", "pseudo_label_accuracy", "seconds", "point_route_accuracy",
"class_iou", "commit"}]}``; ``commit``: the code that trained the run, None for runs adopted from folders
that predate the record; ``environment.commit``: the last invocation's) and ``DIR/ssl_synthetic.md`` (mean
+- std per rig, fraction and method, and the per-class IoU) after every run.

    .venv/bin/python benchmarks/ssl_synthetic.py --out /tmp/ssl --quick          # 3 runs, 2 at a time
    .venv/bin/python benchmarks/ssl_synthetic.py --out /tmp/ssl --quick --rigs ring   # the same on the ring
    .venv/bin/python benchmarks/ssl_synthetic.py --out /tmp/ssl --seeds 0,1,2 --jobs 2
    .venv/bin/python benchmarks/ssl_synthetic.py --out /tmp/ssl2 --data-seed 7 --sim-set lidar.beams=32
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nerfseg  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE while libgomp is not loaded yet)

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "configs" / "synthetic"
NERFSEG = [sys.executable, "-m", "nerfseg"]


@dataclass(frozen=True)
class Rig:
    name: str
    layout: str  # simulate --format
    dataset: str
    sequences: int
    frames: int
    sim_set: tuple[str, ...]
    extra: tuple[str, ...]  # --set of every run on this rig


RIGS = {
    "front": Rig("front", "semantickitti", "semantickitti", 5, 20, ("frame_interval_s=2.0",), ()),
    "ring": Rig(
        "ring", "nuscenes", "nuscenes", 4, 20, ("nuscenes.keyframe_interval_s=2.0",),
        (
            "data.dataset=nuscenes", "data.version=v1.0-mini", "data.train_split=mini_train",
            "data.val_split=mini_val", "ssl.camera.cameras_per_scan=2", "ssl.lasermix.pitch_min=-30",
            "ssl.lasermix.pitch_max=10",
        ),
    ),
}

# method name in the table -> (preset file, extra --set)
METHODS = {
    "supervised": ("supervised.yaml", ()),
    "mean-teacher": ("mean_teacher.yaml", ()),
    "lasermix": ("lasermix.yaml", ()),
    "projection": ("projection.yaml", ()),
    "nerf": ("nerf.yaml", ()),
    "nerf+mean-teacher": ("nerf_mt.yaml", ()),
    "nerf+lasermix": ("nerf_lasermix.yaml", ()),
    "geometry": ("geometry.yaml", ()),
    "nerf-oracle": ("nerf.yaml", ("ssl.camera.oracle=true",)),
    "projection-oracle": ("projection.yaml", ("ssl.projection.oracle=true",)),
}
# Diagnostics outside the protocol, run only when named in --runs, to find what costs the geometry control
# and nerf their points at 2 labeled scans. The "-shared" ones render the point classifier's semantics
# (model.nerf.semantics_from_point_head=true, the default until 2026-12-02); with it, the geometry losses kept
# out of the backbone (model.nerf.detach_field_features), or no semantic term on the LiDAR rays
# (model.nerf.lambda_sem=0). "nerf-ramp": the pseudo-label terms ramped in over half the budget;
# "nerf-strict-masks": a mask labels its pixels only where its mean distribution peaks at >= 0.7 (not 0.4);
# "nerf-rays4k": four times the camera-ray budget (4096 rays per image and step); "nerf-slow-teacher": the EMA
# at 0.99 from the first step (no warmup; the warmup keeps the decay at (1+s)/(10+s) <= 0.978 throughout a
# 400-step run) with the pseudo-label terms ramped in over 100 steps so that the near-initial teacher of the
# first steps is muted; "nerf-weight3": the render loss weighted 3 (not 1); "nerf-points": the fused pixel
# labels also given to the points whose distance agrees with their cell's rendered surface (within 0.5 m),
# learnt by the point classifier (ssl.camera.points); "nerf-points-agree": only where the teacher's point
# classifier predicts the same class; "nerf-points-agree-ramp": the same with every pseudo-label term ramped
# in over 200 steps (ssl.rampup_steps), so that the route starts once the teacher has learnt the labeled scan;
# "nerf-points-sure-ramp": the same, and only where the teacher's point softmax peaks at >= 0.99;
# "nerf-points-oracle": the point route fed nerf-oracle's ground-truth
# pixel labels (an upper bound of what the route can carry into the point classifier); "nerf-points-balanced":
# nerf-points with each class's pseudo-labeled points weighing the same in total. "nerf-vol11": the
# render volume of the stride-1 voxels dilated by one
# (model.nerf.volume_stride=1, volume_dilation=1) with the LiDAR-ray free-space loss (lambda_free 1, margin
# 0.2 m), the one volume that met both camera-coverage targets (benchmarks/results/camera_coverage_vol11.md).
# "nerf-appear" / "nerf-points-appear": nerf / nerf-points with the fused pixel labels kept only where the
# appearance net, trained before the first step on the labeled scans' images alone, gives the same class
# (ssl.camera.appearance; benchmarks/results/appearance_labels.md); "nerf-points-appear-agree-ramp": the point
# route's labels also where the teacher's point classifier agrees, every pseudo-label term ramped in over 200
# steps (the three-way agreement was 97-99 % right on the finished nerf teachers);
# "nerf+mean-teacher-points-appear-agree-ramp": the same point route on top of nerf+mean-teacher. "nerf-veto":
# nerf with a fused pixel label dropped where a LiDAR point is the cell's rendered surface and the teacher's
# point classifier is >= 90 % sure of another class there (ssl.camera.veto; the front rig's camera methods
# erase traffic signs and poles).
# name -> (the protocol method it varies, extra --set): preset and pseudo-label key are that method's.
SHARED = "model.nerf.semantics_from_point_head=true"
DIAGNOSTICS = {
    "nerf-shared": ("nerf", (SHARED,)),
    "geometry-shared": ("geometry", (SHARED,)),
    "nerf-oracle-shared": ("nerf-oracle", (SHARED,)),
    "geometry-shared-detached": ("geometry", (SHARED, "model.nerf.detach_field_features=true")),
    "nerf-shared-detached": ("nerf", (SHARED, "model.nerf.detach_field_features=true")),
    "geometry-shared-nosem": ("geometry", (SHARED, "model.nerf.lambda_sem=0")),
    "nerf-shared-nosem": ("nerf", (SHARED, "model.nerf.lambda_sem=0")),
    "nerf-ramp": ("nerf", ("ssl.rampup_steps=200",)),
    "nerf-strict-masks": ("nerf", ("ssl.camera.fusion.tau_mask=0.7",)),
    "nerf-rays4k": ("nerf", ("ssl.camera.sampler.budget=4096",)),
    "nerf-slow-teacher": ("nerf", ("ssl.teacher.ema_warmup=false", "ssl.rampup_steps=100")),
    "nerf-weight3": ("nerf", ("ssl.camera.weight=3.0",)),
    "nerf-points": ("nerf", ("ssl.camera.points.weight=1.0",)),
    "nerf-points-agree": (
        "nerf", ("ssl.camera.points.weight=1.0", "ssl.camera.points.agree_with_teacher=true")
    ),
    "nerf-points-agree-ramp": (
        "nerf", ("ssl.camera.points.weight=1.0", "ssl.camera.points.agree_with_teacher=true",
                 "ssl.rampup_steps=200")
    ),
    "nerf-points-sure-ramp": (
        "nerf", ("ssl.camera.points.weight=1.0", "ssl.camera.points.agree_with_teacher=true",
                 "ssl.camera.points.min_teacher_confidence=0.99", "ssl.rampup_steps=200")
    ),
    "nerf-points-oracle": ("nerf-oracle", ("ssl.camera.points.weight=1.0",)),
    "nerf-points-balanced": (
        "nerf", ("ssl.camera.points.weight=1.0", "ssl.camera.points.class_balanced=true")
    ),
    "nerf-appear": ("nerf", ("ssl.camera.appearance.enabled=true",)),
    "nerf-points-appear": ("nerf", ("ssl.camera.points.weight=1.0", "ssl.camera.appearance.enabled=true")),
    "nerf-points-appear-agree-ramp": (
        "nerf", ("ssl.camera.points.weight=1.0", "ssl.camera.appearance.enabled=true",
                 "ssl.camera.points.agree_with_teacher=true", "ssl.rampup_steps=200")
    ),
    "nerf+mean-teacher-points-appear-agree-ramp": (
        "nerf+mean-teacher", ("ssl.camera.points.weight=1.0", "ssl.camera.appearance.enabled=true",
                              "ssl.camera.points.agree_with_teacher=true", "ssl.rampup_steps=200")
    ),
    "nerf-veto": ("nerf", ("ssl.camera.veto.enabled=true",)),
    "nerf-vol11": ("nerf", ("model.nerf.volume_stride=1", "model.nerf.volume_dilation=1",
                            "model.nerf.lambda_free=1.0", "model.nerf.lidar_free_margin=0.2")),
}
POINT_ROUTE_KEY = "train/camera_points_pseudo_accuracy"  # the point route's labels (ssl.camera.points)
PSEUDO_KEYS = {  # which logged accuracy is the method's pseudo-label accuracy
    "mean-teacher": "train/consistency_pseudo_accuracy",
    "lasermix": "train/consistency_pseudo_accuracy",
    "projection": "train/projection_pseudo_accuracy",
    "projection-oracle": "train/projection_pseudo_accuracy",
    "nerf": "train/render_pseudo_accuracy",
    "nerf+mean-teacher": "train/render_pseudo_accuracy",
    "nerf+lasermix": "train/render_pseudo_accuracy",
    "nerf-oracle": "train/render_pseudo_accuracy",
}


def base_method(method: str) -> str:
    """The protocol method a diagnostic varies (a protocol method is its own)."""
    return DIAGNOSTICS[method][0] if method in DIAGNOSTICS else method


def method_preset(method: str) -> tuple[str, tuple[str, ...]]:
    """(preset file, extra --set) of a protocol method or a diagnostic."""
    if method in DIAGNOSTICS:
        base, extra = DIAGNOSTICS[method]
        preset, base_extra = METHODS[base]
        return preset, (*base_extra, *extra)
    return METHODS[method]


def plan(quick: bool, seeds: list[int], fractions: list[float], rigs: list[str], methods: list[str] | None):
    """(rig, method, fraction, seed) of every run of the protocol."""
    if quick:  # the first rig named (front unless --rigs says otherwise)
        return [(rigs[0], m, 0.025, seeds[0]) for m in ("supervised", "projection", "nerf")]
    runs = []
    for rig in rigs:
        rig_fractions = fractions if rig == "front" else [max(fractions)]
        for seed in seeds:
            for fraction in rig_fractions:
                for method in methods or METHODS:
                    runs.append((rig, method, fraction, seed))
            if not methods or "supervised" in methods:
                runs.append((rig, "supervised", 1.0, seed))
    return runs


def environment() -> dict:
    import torch

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "src", "configs"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    return {
        "commit": commit.strip() + ("+uncommitted" if dirty else ""),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def run_command(args: list[str], log: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
               PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(log, "a") as f:
        done = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (exit {done.returncode}); see {log}")


def prepare_data(out: Path, rig: Rig, data_seed: int, sim_set: list[str]) -> Path:
    """Simulate the rig's dataset and fill its mask cache (once; reused by every run)."""
    root = out / "data" / rig.name
    done = root / ".ready"
    if done.exists():
        return root
    args = [*NERFSEG, "simulate", str(root), "--format", rig.layout, "--frames", str(rig.frames),
            "--sequences", str(rig.sequences), "--seed", str(data_seed), "--no-progress"]
    for s in (*rig.sim_set, *sim_set):
        args += ["--set", s]
    if root.exists():
        import shutil

        shutil.rmtree(root)
    run_command(args, out / "simulate.log")
    split = "train" if rig.dataset != "nuscenes" else "mini_train"
    masks = [*NERFSEG, "masks", str(root), "--dataset", rig.dataset, "--split", split, "--no-progress"]
    if rig.dataset == "nuscenes":
        masks += ["--version", "v1.0-mini"]
    run_command(masks, out / "masks.log")
    done.write_text("ok\n")
    return root


COMMIT_FILE = "benchmark_commit.txt"
"""In a run folder: the commit of the code that trained the run (the last invocation that trained or resumed
it)."""


def train_run(out: Path, root: Path, rig: Rig, method: str, fraction: float, seed: int, steps: int,
              commit: str = "") -> dict:
    preset, extra = method_preset(method)
    name = f"{rig.name}_{method}_{fraction:g}_s{seed}"
    run_dir = out / "runs" / name
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    sets = [
        f"data.root={root}", f"data.label_fraction={fraction}", f"data.label_seed={seed}",
        f"train.seed={seed}", f"train.max_steps={steps}", "train.num_threads=1", "train.progress=false",
        "data.num_workers=1", "train.val_every=0", *rig.extra, *extra,
    ]
    args = [*NERFSEG, "train", str(PRESETS / preset), "--out", str(run_dir)]
    if (run_dir / "checkpoints" / "last.pt").exists() and not (run_dir / "model.pt").exists():
        args = [*NERFSEG, "train", "--resume", str(run_dir)]
    elif (run_dir / "model.pt").exists():
        args = None
    started = time.perf_counter()
    if args is not None:
        for s in sets:
            args += ["--set", s]
        run_command(args, out / "runs" / f"{name}.log")
        (run_dir / COMMIT_FILE).write_text(commit + "\n")
    seconds = time.perf_counter() - started
    commit_file = run_dir / COMMIT_FILE
    run_commit = commit_file.read_text().strip() if commit_file.exists() else None  # None: adopted, unknown
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    val = [r for r in records if "val/miou" in r]
    train_records = [r for r in records if "train/loss" in r]
    key = PSEUDO_KEYS.get(base_method(method))
    accuracy = None
    if key:
        half = [r[key] for r in train_records[len(train_records) // 2:] if key in r]
        accuracy = float(statistics.fmean(half)) if half else None
    points = [r[POINT_ROUTE_KEY] for r in train_records[len(train_records) // 2:] if POINT_ROUTE_KEY in r]
    step_seconds = [r["train/sec_per_step"] for r in train_records if "train/sec_per_step" in r]
    return {
        "method": method, "fraction": fraction, "seed": seed, "rig": rig.name,
        "miou": float(val[-1]["val/miou"]), "pseudo_label_accuracy": accuracy,
        "seconds": round(seconds if args is not None else _logged_seconds(step_seconds, steps), 1),
        "sec_per_step": round(statistics.fmean(step_seconds), 3) if step_seconds else None,
        "point_route_accuracy": float(statistics.fmean(points)) if points else None,
        "class_iou": class_iou(records),
        "commit": run_commit,
    }


def class_iou(records: list[dict]) -> dict[str, float]:
    """Per-class val IoU of a run's last logged per-class record (classes absent from the validation scans,
    logged as NaN, left out); empty when the run logged none."""
    logged = [r for r in records if any(k.startswith("val_iou/") for k in r)]
    out: dict[str, float] = {}
    for key, value in (logged[-1] if logged else {}).items():
        if key.startswith("val_iou/") and isinstance(value, (int, float)) and value == value:
            out[key.split("/", 1)[1]] = float(value)
    return out


def _logged_seconds(step_seconds: list[float], steps: int) -> float:
    """Run time of a run finished earlier, from its logged seconds per step."""
    return statistics.fmean(step_seconds) * steps if step_seconds else 0.0


def write_results(out: Path, protocol: dict, env: dict, runs: list[dict]) -> None:
    from nerfseg.io_utils import atomic_write_text

    atomic_write_text(out / "ssl_synthetic.json",
                      json.dumps({"protocol": protocol, "environment": env, "runs": runs}, indent=1) + "\n")
    atomic_write_text(out / "ssl_synthetic.md", markdown(protocol, env, runs))


def markdown(protocol: dict, env: dict, runs: list[dict]) -> str:
    lines = [
        "# Synthetic semi-supervised benchmark",
        "",
        f"Commit {env['commit']}, {env['date']}, torch {env['torch']}, {env['logical_cpus']} logical CPUs. "
        f"Protocol: {json.dumps(protocol)}",
        "",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["rig"], r["fraction"], r["method"]), []).append(r)
    for rig in sorted({k[0] for k in groups}):
        lines += [
            f"## {rig} rig (val mIoU %, mean +- std over seeds)",
            "",
            "| fraction | method | seeds | mIoU | pseudo-label acc. | point-route acc. | s / run |",
            "|---|---|---|---|---|---|---|",
        ]
        for (r_rig, fraction, method), items in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][2])):
            if r_rig != rig:
                continue
            mious = [100 * i["miou"] for i in items]
            std = statistics.stdev(mious) if len(mious) > 1 else 0.0
            accs = [i["pseudo_label_accuracy"] for i in items if i["pseudo_label_accuracy"] is not None]
            acc = f"{100 * statistics.fmean(accs):.1f} %" if accs else "-"
            route = [i["point_route_accuracy"] for i in items if i.get("point_route_accuracy") is not None]
            route_acc = f"{100 * statistics.fmean(route):.1f} %" if route else "-"
            secs = statistics.fmean(i["seconds"] for i in items)
            mean = statistics.fmean(mious)
            lines.append(f"| {100 * fraction:g} % | {method} | {len(items)} | {mean:.2f} +- {std:.2f} "
                         f"| {acc} | {route_acc} "
                         f"| {secs:.0f} |")
        lines.append("")
        lines += class_table(rig, groups)
    return "\n".join(lines) + "\n"


def class_table(rig: str, groups: dict[tuple, list[dict]]) -> list[str]:
    """Per-class val IoU (mean over the seeds that logged it) of each method of one rig, per fraction."""
    lines = []
    for fraction in sorted({k[1] for k in groups if k[0] == rig}):
        rows = {k[2]: v for k, v in groups.items() if k[0] == rig and k[1] == fraction}
        names: list[str] = []
        for items in rows.values():
            for item in items:
                names += [n for n in item.get("class_iou", {}) if n not in names]
        if not names:
            continue
        lines += [
            f"Per-class val IoU % at {100 * fraction:g} % (mean over seeds):",
            "",
            "| method | seeds | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(names),
        ]
        for method in sorted(rows):
            logged = [i["class_iou"] for i in rows[method] if i.get("class_iou")]
            cells = []
            for name in names:
                values = [c[name] for c in logged if name in c]
                cells.append(f"{100 * statistics.fmean(values):.1f}" if values else "-")
            lines.append(f"| {method} | {len(logged)} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true",
                        help="supervised, projection, nerf: 2.5 %%, 1 seed, on the first of --rigs")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fractions", default="0.0125,0.025")
    parser.add_argument("--rigs", default="front,ring")
    parser.add_argument("--methods", default="", help="comma list (default: all)")
    parser.add_argument("--runs", default="", metavar="M:F:S[:RIG],...",
                        help="exactly these runs (method:fraction:seed, rig front by default)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--sim-set", action="append", default=[], metavar="KEY=VALUE",
                        help="simulator setting passed to `nerfseg simulate --set` (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    fractions = [float(f) for f in args.fractions.split(",")]
    rigs = [r for r in args.rigs.split(",") if r]
    methods = [m for m in args.methods.split(",") if m] or None
    todo = plan(args.quick, seeds, fractions, rigs, methods)
    if args.runs:
        todo = []
        for spec in args.runs.split(","):
            method, fraction, seed, *rig = spec.split(":")
            if method not in METHODS and method not in DIAGNOSTICS:
                known = ", ".join([*METHODS, *DIAGNOSTICS])
                parser.error(f"--runs: unknown method {method!r} (known: {known})")
            todo.append((rig[0] if rig else "front", method, float(fraction), int(seed)))
    protocol = {  # the protocol's definition, whichever subset this invocation runs
        "rigs": {name: RIGS[name].__dict__ for name in RIGS},
        "data_seed": args.data_seed, "sim_set": args.sim_set, "steps": args.steps, "batch_size": 2,
        "preset": "tiny (configs/synthetic/<method>.yaml)", "seeds": [0, 1, 2], "fractions": [0.0125, 0.025],
        "methods": list(METHODS), "reference": "supervised at fraction 1.0",
    }
    prepare = sorted({t[0] for t in todo})
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "ssl_synthetic.json"
    runs = json.loads(results_path.read_text())["runs"] if results_path.exists() else []
    done = {(r["rig"], r["method"], r["fraction"], r["seed"]) for r in runs}
    env = environment()
    roots = {name: prepare_data(args.out, RIGS[name], args.data_seed, args.sim_set) for name in prepare}
    pending = [t for t in todo if t not in done]
    print(f"{len(todo)} runs in the protocol, {len(pending)} to do", flush=True)

    def one(task):
        rig, method, fraction, seed = task
        result = train_run(args.out, roots[rig], RIGS[rig], method, fraction, seed, args.steps, env["commit"])
        print(f"{rig} {method} {fraction:g} seed {seed}: mIoU {100 * result['miou']:.2f} % "
              f"({result['seconds']:.0f} s)", flush=True)
        return result

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for result in pool.map(one, pending):
            runs.append(result)
            write_results(args.out, protocol, env, runs)
    write_results(args.out, protocol, env, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
