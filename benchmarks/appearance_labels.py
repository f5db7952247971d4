"""Is a 2D appearance model a label source independent enough of the one-scan teacher? (issue 10)

The point route's fused labels inherit the 3D teacher's confident class confusions (road for car and truck
on the ring rig at 1.25 %; benchmarks/results/point_route_labels.md), and no filter built from that teacher
removes them. This script trains the appearance net (:mod:`nerfseg.models.appearance`) on the labeled scans'
images alone, supervised by their LiDAR labels projected into the cameras, exactly as a run with
``ssl.camera.appearance.enabled`` does (:mod:`nerfseg.ssl.appearance`, default settings), then, on the
unlabeled training scans (no augmentation), measures against the ground truth that training never sees:

- the net's cell accuracy against ``semantic_2``-style ground-truth images (cells with a LiDAR-visible class);
- on the point route of a trained nerf run's EMA teacher: the fused labels, the appearance net's labels on the
  same points, and their agreement (with and without the teacher's point classifier).

    .venv/bin/python benchmarks/appearance_labels.py --run RUN_DIR [--run ...] [--steps 300] [--every 3] \
        [--out benchmarks/results/appearance_labels]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import nerfseg  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE while libgomp is not loaded yet)

# isort: split
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from point_route_labels import load_teacher, machine, row, scan_records  # noqa: E402
from report_io import write_report  # noqa: E402

from nerfseg.data.datasets import DatasetKind  # noqa: E402
from nerfseg.data.sample import IGNORE_INDEX  # noqa: E402
from nerfseg.engine.build import open_split  # noqa: E402
from nerfseg.engine.train import APPEARANCE_SEED, labeled_indices  # noqa: E402
from nerfseg.masks.config import open_run_mask_cache  # noqa: E402
from nerfseg.ssl.appearance import labeled_views, new_appearance_net, train_appearance_net  # noqa: E402
from nerfseg.ssl.config import AppearanceConfig  # noqa: E402

CONFIDENCES = (0.5, 0.7, 0.9)


def filters(rec: dict, num_classes: int) -> list[dict]:
    fused, app, conf, teacher, truth = rec["fused"], rec["app"], rec["app_conf"], rec["teacher"], rec["truth"]
    routed = fused != IGNORE_INDEX
    rows = [row("route, fused label (as trained)", routed, fused, truth, num_classes),
            row("route, appearance net's label", routed, app, truth, num_classes)]
    for t in CONFIDENCES:
        rows.append(row(f"route, appearance label, confidence >= {t}", routed & (conf >= t), app, truth,
                        num_classes))
    rows.append(row("route, fused == appearance", routed & (fused == app), fused, truth, num_classes))
    rows.append(row("route, fused == appearance == teacher point class",
                    routed & (fused == app) & (teacher == fused), fused, truth, num_classes))
    rows.append(row("route, fused == teacher point class (previous best filter)", routed & (teacher == fused),
                    fused, truth, num_classes))
    return rows


def measure(run_dir: Path, every: int, steps: int) -> dict:
    model, head, cfg, class_names = load_teacher(run_dir)
    num_classes = len(class_names)
    source = open_split(cfg, cfg.data.train_split, load_images=False)
    labeled = labeled_indices(cfg, source).tolist()
    start = time.perf_counter()
    appearance_cfg = AppearanceConfig(steps=steps)
    seed = cfg.train.seed + APPEARANCE_SEED
    views = labeled_views(source, labeled, appearance_cfg.max_views, seed)
    net = new_appearance_net(num_classes, appearance_cfg, seed)
    losses = train_appearance_net(net, views, appearance_cfg, seed)
    train_seconds = time.perf_counter() - start
    cache = open_run_mask_cache(cfg)
    label_map = DatasetKind(cfg.data.dataset).label_map
    positions = [i for i in range(len(source)) if i not in set(labeled)][::every]
    records = [scan_records(model, head, cfg, source[p], cache, label_map, appearance=net) for p in positions]
    keys = ("fused", "app", "app_conf", "teacher", "truth")
    merged = {k: np.concatenate([r[k] for r in records]) for k in keys}
    right = sum(r["cell_right"] for r in records)
    total = sum(r["cell_total"] for r in records)
    return {
        "run": str(run_dir), "label_seed": cfg.data.label_seed, "label_fraction": cfg.data.label_fraction,
        "labeled_views": len(views), "steps": steps, "train_seconds": train_seconds,
        "final_loss": float(np.mean(losses[-20:])), "scans": len(positions),
        "points": int(merged["truth"].shape[0]), "class_names": class_names,
        "cell_accuracy": float(right.sum() / max(total.sum(), 1)),
        "cell_class_accuracy": {name: float(r / t)
                                for name, r, t in zip(class_names, right, total, strict=True) if t},
        "rows": filters(merged, num_classes),
    }


def markdown(report: dict) -> str:
    lines = ["# Appearance-net labels against the ground truth (benchmarks/appearance_labels.py)", "",
             f"{report['date']}, commit {report['commit']}, {report['machine']}.", "",
             f"Command: `{report['command']}`"]
    for run in report["runs"]:
        lines += ["", f"## {run['run']} (seed {run['label_seed']}, {run['label_fraction']:g} labels; net "
                  f"trained on {run['labeled_views']} labeled views, {run['steps']} steps, "
                  f"{run['train_seconds']:.0f} s, final loss {run['final_loss']:.3f}; "
                  f"{run['scans']} unlabeled scans, {run['points']} points)",
                  "", f"Cell accuracy on the unlabeled scans' images: {100 * run['cell_accuracy']:.1f} % "
                  "(per class: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in
                                            run["cell_class_accuracy"].items()) + ").",
                  "", "| labels | coverage | accuracy | class precision | classes |", "|---|---|---|---|---|"]
        for r in run["rows"]:
            lines.append(f"| {r['filter']} | {100 * r['coverage']:.2f} % | {100 * r['accuracy']:.1f} % | "
                         f"{100 * r['mean_class_precision']:.1f} % | {r['classes_given']} |")
        names = run["class_names"]
        for r in run["rows"][:2]:
            wrong = ", ".join(f"{names[g]} for {names[t]} ({n})" for g, t, n in r["top_confusions"])
            lines += ["", f"Most frequent wrong labels, {r['filter']}: {wrong}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, type=Path)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/appearance_labels"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit.strip(),
              "machine": machine(), "command": " ".join(sys.argv),
              "runs": [measure(run, args.every, args.steps) for run in args.run]}
    write_report(args.out, report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
