"""How right are the point route's camera pseudo-labels, and which filter makes them right enough? (issue 10)

The ``nerf`` methods' point route (:mod:`nerfseg.ssl.camera_points`) gives the fused pixel pseudo-labels to
the unlabeled scan's points whose distance agrees with the teacher's rendered surface. Fed ground-truth
pixel labels it gains ~20 mIoU on the ring rig at 1.25 %; fed the fused labels (70-74 % right) it loses
~10 (benchmarks/results/ssl_synthetic_notes.md, seventh session). This script measures, with a trained
run's EMA teacher and NeRF head, on every unlabeled training scan (no augmentation) and every camera:

- the route's labels as training makes them (``ssl.camera`` of the run's config), their coverage (share of
  all unlabeled points) and accuracy against the points' ground truth, which training never sees;
- the render's own argmax on the same route, with no masks (what the masks add);
- the same points under stricter filters: the fused label's confidence (the mask's mean rendered
  probability), agreement with the teacher's point classifier, the teacher's point confidence;
- the teacher's own point pseudo-labels (confidence >= t over all points, as mean-teacher uses them);
- the ground-truth pixel labels through the same route (the ``nerf-points-oracle`` diagnostic);
- per class: the share of the route's labels each class takes and how many of them are right.

    .venv/bin/python benchmarks/point_route_labels.py --run RUN_DIR [--run RUN_DIR ...] \
        [--every 1] [--out benchmarks/results/point_route_labels]

Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import nerfseg  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE while libgomp is not loaded yet)

# isort: split
import torch
from report_io import write_report

from nerfseg.data.collate import collate_samples
from nerfseg.data.datasets import DatasetKind
from nerfseg.data.ground_truth import read_semantic_train
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.engine.build import build_head, open_split
from nerfseg.engine.checkpoint import build_segmentor, load_checkpoint
from nerfseg.engine.precision import cpu_isa
from nerfseg.engine.streams import strip_labels
from nerfseg.engine.train import labeled_indices
from nerfseg.geometry.rays import PixelGrid, read_at_pixels
from nerfseg.masks.config import open_run_mask_cache
from nerfseg.models.appearance import grid_probs
from nerfseg.ssl.camera_points import camera_point_cells
from nerfseg.ssl.camera_step import camera_pseudo_labels
from nerfseg.ssl.fusion import fuse_pseudo_labels

FUSED_CONFIDENCES = (0.5, 0.6, 0.7, 0.8, 0.9)
TEACHER_CONFIDENCES = (0.9, 0.95, 0.99)
AGREE_ROW = "route, teacher's point class agrees"


def load_teacher(run_dir: Path):
    """(teacher segmentor, teacher head, Config, class names) of a run's last checkpoint, in eval mode."""
    path = run_dir / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(path)
    model, cfg = build_segmentor(checkpoint, path)
    if checkpoint.get("teacher") is None or checkpoint.get("teacher_head") is None:
        raise SystemExit(f"{path}: no EMA teacher with a NeRF head (train a nerf method)")
    model.load_state_dict(checkpoint["teacher"])
    head = build_head(cfg, model, int(checkpoint["num_classes"]))
    head.load_state_dict(checkpoint["teacher_head"])
    return model.eval(), head.eval(), cfg, list(checkpoint["class_names"])


@torch.no_grad()
def scan_records(model, head, cfg, sample, cache, label_map, appearance=None) -> dict[str, np.ndarray]:
    """Per point of one unlabeled scan: the route's fused label and its confidence (first camera that labels
    it), the ground-truth pixel label through the same route, the teacher's point argmax / confidence and
    the point's ground truth. Labels are train ids, IGNORE_INDEX where none.

    With an ``appearance`` net (:class:`nerfseg.models.appearance.AppearanceNet`) also its label and
    confidence on the same points (``app``, ``app_conf``), and per class its right / scored cells against the
    ground-truth image (``cell_right``, ``cell_total``)."""
    camera_cfg = replace(cfg.ssl.camera, oracle=False)  # fused labels, also for an oracle run's teacher
    bare = strip_labels(sample)
    batch = collate_samples([bare])
    out = model(batch)
    probs = torch.softmax(out.point_logits.float(), dim=1)
    teacher_conf, teacher_label = probs.max(dim=1)
    volume = head.build_volume(out)
    n = batch.points.shape[0]
    fused = torch.full((n,), IGNORE_INDEX, dtype=torch.int64)
    fused_conf = torch.zeros(n)
    oracle = torch.full((n,), IGNORE_INDEX, dtype=torch.int64)
    unmasked = torch.full((n,), IGNORE_INDEX, dtype=torch.int64)
    num_classes = int(probs.shape[1])
    app = torch.full((n,), IGNORE_INDEX, dtype=torch.int64)
    app_conf = torch.zeros(n)
    cell_right = np.zeros(num_classes, dtype=np.int64)
    cell_total = np.zeros(num_classes, dtype=np.int64)
    for c, camera in enumerate(bare.cameras):
        grid = PixelGrid(*camera.image_size, camera_cfg.stride)
        pixels = grid.pixels
        image = camera.load_image()
        mask_ids = cache.read(image)
        if mask_ids is None:
            raise SystemExit(f"{camera.image_path}: no cached masks (run `nerfseg masks --config` first)")
        truth_full = read_semantic_train(camera, label_map)
        if truth_full is None:
            raise SystemExit(f"{camera.image_path}: no ground-truth semantic image (simulated data has one)")
        truth = torch.as_tensor(read_at_pixels(truth_full, grid.pixels)).view(grid.shape).long()
        pseudo = camera_pseudo_labels(head, volume, camera, grid, pixels, 0, c, mask_ids, None, camera_cfg)
        if appearance is not None:
            cell_conf, cell_label = grid_probs(appearance, torch.as_tensor(image), grid).max(dim=-1)
            scored = truth != IGNORE_INDEX
            cell_total += np.bincount(truth[scored].numpy(), minlength=num_classes)[:num_classes]
            hit = scored & (cell_label == truth)
            cell_right += np.bincount(truth[hit].numpy(), minlength=num_classes)[:num_classes]
        # the render alone, from the same render: no masks, every opaque pixel keeps its own argmax
        no_masks = torch.full(grid.shape, -1, dtype=torch.int64)
        render_only, _ = fuse_pseudo_labels(
            pseudo.probs, pseudo.opacity, no_masks, camera_cfg.fusion.tau_mask, 0.0, camera_cfg.tau_opacity
        )
        cell = camera_point_cells(
            batch.points[:, :3], camera, grid, pseudo.depth, pseudo.opacity,
            camera_cfg.points.depth_tolerance, camera_cfg.tau_opacity,
        )
        routed = cell >= 0
        cell = cell.clamp_min(0)
        # each label kind: the cell's label where the point is its surface; the first camera's label wins
        for target, labels in ((fused, pseudo.labels), (unmasked, render_only), (oracle, truth)):
            label = labels.reshape(-1)[cell]
            take = routed & (label != IGNORE_INDEX) & (target == IGNORE_INDEX)
            target[take] = label[take]
            if target is fused:
                fused_conf[take] = pseudo.confidence.reshape(-1)[cell][take]
                if appearance is not None:
                    app[take] = cell_label.reshape(-1)[cell][take]
                    app_conf[take] = cell_conf.reshape(-1)[cell][take]
    records = {
        "fused": fused.numpy(), "fused_conf": fused_conf.numpy(), "oracle": oracle.numpy(),
        "unmasked": unmasked.numpy(),
        "teacher": teacher_label.numpy(), "teacher_conf": teacher_conf.numpy(),
        "truth": np.asarray(sample.labels, dtype=np.int64),
    }
    if appearance is not None:
        records.update(app=app.numpy(), app_conf=app_conf.numpy(), cell_right=cell_right,
                       cell_total=cell_total)
    return records


def row(name: str, keep: np.ndarray, labels: np.ndarray, truth: np.ndarray, num_classes: int) -> dict:
    """Coverage (share of all points), accuracy and per-class counts of ``labels[keep]`` against ``truth``."""
    scored = keep & (truth != IGNORE_INDEX)
    right = scored & (labels == truth)
    per_class = {
        "given": np.bincount(labels[scored], minlength=num_classes)[:num_classes].tolist(),
        "right": np.bincount(labels[right], minlength=num_classes)[:num_classes].tolist(),
    }
    precisions = [r / g for r, g in zip(per_class["right"], per_class["given"], strict=True) if g > 0]
    wrong = scored & (labels != truth)
    pairs = np.bincount(labels[wrong] * num_classes + truth[wrong], minlength=num_classes * num_classes)
    top = np.argsort(pairs)[::-1][:5]
    return {
        "filter": name,
        "top_confusions": [  # (label given, true class, points)
            [int(i // num_classes), int(i % num_classes), int(pairs[i])] for i in top if pairs[i]
        ],
        "coverage": float(keep.mean()),
        "accuracy": float(right.sum() / max(scored.sum(), 1)),
        "mean_class_precision": float(np.mean(precisions)) if precisions else 0.0,
        "classes_given": int(sum(g > 0 for g in per_class["given"])),
        "per_class": per_class,
    }


def filters(rec: dict[str, np.ndarray], num_classes: int) -> list[dict]:
    fused, conf, truth = rec["fused"], rec["fused_conf"], rec["truth"]
    teacher, tconf = rec["teacher"], rec["teacher_conf"]
    routed = fused != IGNORE_INDEX
    rows = [row("route as trained (fused label, tau_mask of the run)", routed, fused, truth, num_classes)]
    for t in FUSED_CONFIDENCES:
        rows.append(row(f"route, fused confidence >= {t}", routed & (conf >= t), fused, truth, num_classes))
    unmasked = rec["unmasked"]
    rows.append(row("route, the render's own argmax (no masks)", unmasked != IGNORE_INDEX, unmasked, truth,
                    num_classes))
    agree = routed & (teacher == fused)
    rows.append(row(AGREE_ROW, agree, fused, truth, num_classes))
    for t in TEACHER_CONFIDENCES:
        rows.append(row(f"route, agrees and teacher point confidence >= {t}", agree & (tconf >= t), fused,
                        truth, num_classes))
    rows.append(row("route's points, teacher's point class instead", routed, teacher, truth, num_classes))
    for t in TEACHER_CONFIDENCES:
        rows.append(row(f"all points, teacher point confidence >= {t} (mean-teacher)", tconf >= t, teacher,
                        truth, num_classes))
    oracle = rec["oracle"]
    rows.append(row("route fed ground-truth pixel labels (oracle)", oracle != IGNORE_INDEX, oracle, truth,
                    num_classes))
    return rows


def measure(run_dir: Path, every: int) -> dict:
    model, head, cfg, class_names = load_teacher(run_dir)
    source = open_split(cfg, cfg.data.train_split, load_images=False)
    labeled = set(labeled_indices(cfg, source).tolist())
    positions = [i for i in range(len(source)) if i not in labeled][::every]
    cache = open_run_mask_cache(cfg)
    label_map = DatasetKind(cfg.data.dataset).label_map
    records: list[dict[str, np.ndarray]] = []
    start = time.perf_counter()
    for position in positions:
        records.append(scan_records(model, head, cfg, source[position], cache, label_map))
    seconds = time.perf_counter() - start
    merged = {k: np.concatenate([r[k] for r in records]) for k in records[0]}
    return {
        "run": str(run_dir),
        "method": cfg.method.value,
        "label_fraction": cfg.data.label_fraction,
        "label_seed": cfg.data.label_seed,
        "scans": len(positions),
        "points": int(merged["truth"].shape[0]),
        "class_names": class_names,
        "seconds": seconds,
        "rows": filters(merged, len(class_names)),
    }


def markdown(report: dict) -> str:
    lines = [
        "# Point-route pseudo-labels against the ground truth (benchmarks/point_route_labels.py)",
        "",
        f"{report['date']}, commit {report['commit']}, {report['machine']}.",
        "",
        "Coverage: share of all unlabeled points that get a label; accuracy: share of those labels that are",
        "right; class precision: mean over the classes given of the share right.",
    ]
    for run in report["runs"]:
        lines += [
            "",
            f"## {run['run']} ({run['method']}, {run['label_fraction']:g} labels, seed {run['label_seed']}; "
            f"{run['scans']} scans, {run['points']} points)",
            "",
            "| filter | coverage | accuracy | class precision | classes |",
            "|---|---|---|---|---|",
        ]
        for r in run["rows"]:
            lines.append(f"| {r['filter']} | {100 * r['coverage']:.2f} % | {100 * r['accuracy']:.1f} % | "
                         f"{100 * r['mean_class_precision']:.1f} % | {r['classes_given']} |")
        names = run["class_names"]
        for r in (run["rows"][0], *(r for r in run["rows"] if r["filter"] == AGREE_ROW)):
            wrong = ", ".join(f"{names[g]} for {names[t]} ({n})" for g, t, n in r["top_confusions"])
            lines += ["", f"Most frequent wrong labels, {r['filter']}: {wrong}."]
        first = run["rows"][0]["per_class"]
        lines += ["", "Per class, route as trained (labels given, share right):", "",
                  "| class | given | right |", "|---|---|---|"]
        for name, g, r in zip(run["class_names"], first["given"], first["right"], strict=True):
            if g:
                lines.append(f"| {name} | {g} | {100 * r / g:.1f} % |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    isa = cpu_isa()
    flags = "+".join(isa.bf16_flags) or "no bf16"
    return f"{isa.model} ({isa.capability}, {flags}), {platform.machine()}, torch {torch.__version__}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, type=Path,
                        help="run folder of a nerf-method run (its checkpoints/last.pt); repeatable")
    parser.add_argument("--every", type=int, default=1, help="take every N-th unlabeled scan")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/point_route_labels"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit.strip(),
        "machine": machine(),
        "command": " ".join(sys.argv),
        "runs": [measure(run, args.every) for run in args.run],
    }
    write_report(args.out, report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
