"""`nerfseg compare`: one report (Markdown + PNG figures + 3D pages) for a set of finished training runs, each
evaluated on a split by the project's own predict / evaluate path."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

EPILOG = """\
Each RUN is a finished `nerfseg train --out RUN` folder: RUN/model.pt (the inference export),
RUN/metrics.jsonl and, for the camera figure, RUN/checkpoints/last.pt with a NeRF head. The dataset (kind,
root, nuScenes version) is read from each run's stored config; --data points every run at another copy.

Output (--out DIR):
  DIR/report.md                 the mIoU / per-class IoU table (one row per run) and the figures below
  DIR/report.json               the same numbers, machine-readable
  DIR/predictions/NAME/         each run's predictions of the split (benchmark format, what `nerfseg evaluate`
                                reads), NAME = the run folder's name
  DIR/figures/bev.png           bird's-eye view of one frame: ground truth, each run's prediction and errors
  DIR/figures/camera_NAME.png   camera image, rendered semantics, fused pseudo-labels, ground truth (runs
                                whose checkpoint has a NeRF head)
  DIR/figures/confusion_NAME.png   row-normalised confusion matrix of each run on the split
  DIR/figures/curves.png        training loss and validation mIoU against the step, from metrics.jsonl
  DIR/pages/NAME.html           interactive 3D view of the same frame per run (one plotly.min.js beside them)

examples:
  nerfseg compare runs/sup runs/nerf --out reports/sup_vs_nerf
  nerfseg compare runs/sk_sup10 runs/sk_nerf10 --data /data/semantickitti --out reports/sk10 --frame 08/000100
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="evaluate finished runs side by side and write a report with figures",
        description="Evaluate each finished run on a split (predict + evaluate by the official rule) and "
        "write DIR/report.md with the score table, bird's-eye, camera, confusion and training-curve figures.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="finished run folders (nerfseg train --out)")
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder (created)")
    parser.add_argument("--data", metavar="ROOT", help="dataset root (default: each run's data.root)")
    parser.add_argument("--split", default="val", help="split to evaluate and show (default val)")
    parser.add_argument(
        "--frame",
        metavar="ID",
        help="frame of the bird's-eye, camera and 3D figures (default: the middle one)",
    )
    parser.add_argument(
        "--stride", type=int, default=4, help="camera figure: render one pixel per N x N block (default 4)"
    )
    parser.add_argument(
        "--extent", type=float, default=40.0, help="bird's-eye half-width in metres (default 40)"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device")
    parser.add_argument("--no-pages", action="store_true", help="skip the interactive 3D pages")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.set_defaults(func=run)


@dataclass
class RunInfo:
    """A finished run as the report reads it."""

    name: str
    run_dir: Path
    cfg: Any  # nerfseg.config.Config, data.root already replaced by --data
    steps: int
    checkpoint: Path | None  # checkpoints/last.pt when it holds a NeRF head
    records: list[dict] = field(default_factory=list)

    @property
    def model_path(self) -> Path:
        return self.run_dir / "model.pt"


@dataclass
class CompareResult:
    """What the report holds: per run the scores (nerfseg.engine.metrics.Scores), the files written."""

    report: Path
    scores: dict[str, Any]
    figures: list[Path]
    pages: list[Path]
    notes: list[str]


def load_run(run_dir: str | Path, data_root: str | Path | None = None) -> RunInfo:
    """Read a finished run folder. Raises DataError naming the folder / file when it is not a finished run."""
    from nerfseg.config import config_from_dict
    from nerfseg.engine.checkpoint import load_checkpoint
    from nerfseg.engine.logging import read_metrics
    from nerfseg.errors import DataError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(run_dir, "run folder not found")
    model_path = run_dir / "model.pt"
    if not model_path.is_file():
        hint = (
            " (training not finished: resume it with `nerfseg train --resume`)"
            if (run_dir / "checkpoints" / "last.pt").is_file()
            else ""
        )
        raise DataError(model_path, f"not found: not a finished run{hint}")
    state = load_checkpoint(model_path)
    cfg = config_from_dict(state["config"], source=str(model_path))
    if data_root is not None:
        cfg = replace(cfg, data=replace(cfg.data, root=str(data_root)))
    last = run_dir / "checkpoints" / "last.pt"
    checkpoint = None
    if last.is_file():
        checkpoint = last if "nerf_head" in load_checkpoint(last) else None
    return RunInfo(
        run_dir.name,
        run_dir,
        cfg,
        int(state.get("step", 0)),
        checkpoint,
        read_metrics(run_dir / "metrics.jsonl"),
    )


def _unique_names(runs: list[RunInfo]) -> None:
    """Runs with the same folder name get their parent folder prefixed (then an index)."""
    seen: dict[str, int] = {}
    for run in runs:
        if sum(r.name == run.name for r in runs) > 1:
            run.name = f"{run.run_dir.parent.name}_{run.run_dir.name}"
    for run in runs:
        count = seen.get(run.name, 0)
        seen[run.name] = count + 1
        if count:
            run.name = f"{run.name}_{count + 1}"


def _labels_text(cfg) -> str:
    """What a run was trained on, e.g. ``"2 of 16 train scans (12.5 %)"``."""
    from nerfseg.engine.build import open_split
    from nerfseg.engine.train import labeled_indices
    from nerfseg.errors import UserFacingError

    what = (
        f"split file {Path(cfg.data.labeled_split).name}"
        if cfg.data.labeled_split
        else f"{100 * cfg.data.label_fraction:g} %"
    )
    try:
        source = open_split(cfg, cfg.data.train_split)
        count = len(labeled_indices(cfg, source))
    except UserFacingError:  # the training split is not at hand: say what the config asked for
        return f"{what} of {cfg.data.train_split}"
    return f"{count} of {len(source)} {cfg.data.train_split} scans ({what})"


def _validated_on(runs: list[RunInfo]) -> str:
    """Title suffix saying which val scans the runs' own validation used (data.val_max_scans)."""
    counts = sorted({r.cfg.data.val_max_scans for r in runs})
    if counts == [0]:
        return " (all val scans)"
    return f" (on {' / '.join(str(c) if c else 'all' for c in counts)} val scans)"


def read_prediction(cfg, pred_root: Path, split: str, sample) -> Any:
    """(N,) int64 train ids of ``sample`` from a prediction folder written by `nerfseg predict`."""
    from nerfseg.data.datasets import DatasetKind

    if DatasetKind(cfg.data.dataset) is DatasetKind.NUSCENES:
        from nerfseg.data.nuscenes_submission import read_nuscenes_prediction

        return read_nuscenes_prediction(pred_root, split, sample.sample_id, sample.num_points)
    from nerfseg.data.submission import read_semantickitti_prediction

    return read_semantickitti_prediction(pred_root, sample.sample_id, sample.num_points)


def pick_sample(cfg, split: str, frame: str | None):
    """The sample ``frame`` of ``split`` (default: the middle one of the split), read with its labels."""
    from nerfseg.engine.build import open_split
    from nerfseg.errors import DataError

    reader = open_split(cfg, split)
    ids = list(reader.sample_ids)
    if not ids:
        raise DataError(cfg.data.root, f"split {split!r} holds no scans")
    if frame is None:
        return reader[len(ids) // 2]
    if frame not in ids:
        raise DataError(cfg.data.root, f"--frame {frame!r} is not in split {split!r} (e.g. {ids[0]!r})")
    return reader[ids.index(frame)]


def compare_runs(
    run_dirs: list[str | Path],
    out_dir: str | Path,
    data_root: str | Path | None = None,
    split: str = "val",
    frame: str | None = None,
    stride: int = 4,
    extent_m: float = 40.0,
    device: str = "auto",
    pages: bool = True,
    progress: bool = True,
    title: str = "Run comparison",
    preamble: list[str] | None = None,
    log=print,
) -> CompareResult:
    """Predict and evaluate every run on ``split``, draw the figures, write ``out_dir/report.md`` (EPILOG).

    Args:
        run_dirs: finished run folders; they must share one dataset kind.
        data_root: dataset root for every run (None: each run's stored ``data.root``).
        frame: the frame of the bird's-eye / camera / 3D figures (None: the split's middle one).
        stride: pixel step of the camera figure's rendering; extent_m: bird's-eye half-width, metres.
        preamble: Markdown lines put under the title (the demo's account of what it ran).
        log: where stage lines go.
    Raises:
        DataError / ConfigError (one line naming the run or file) for unfinished runs, mixed datasets, ...
    """
    from nerfseg.data.datasets import DatasetKind
    from nerfseg.engine.evaluate import evaluate_predictions
    from nerfseg.engine.predict import predict
    from nerfseg.errors import ConfigError
    from nerfseg.viz import figures
    from nerfseg.viz.report import ScoreRow, image_link, markdown_list, score_table

    if stride < 1:
        raise ConfigError(f"--stride must be >= 1, got {stride}")
    if not run_dirs:
        raise ConfigError("compare needs at least one run folder")
    out_dir = Path(out_dir)
    runs = [load_run(r, data_root) for r in run_dirs]
    _unique_names(runs)
    kinds = {r.cfg.data.dataset for r in runs}
    if len(kinds) > 1:
        listed = ", ".join(f"{r.run_dir} ({r.cfg.data.dataset})" for r in runs)
        raise ConfigError(f"runs of different datasets cannot share one table: {listed}")
    base = runs[0].cfg
    kind = DatasetKind(base.data.dataset)
    label_map = kind.label_map
    notes: list[str] = []
    written: list[Path] = []

    scores = {}
    timings = {}
    for run in runs:
        started = time.perf_counter()
        log(f"[compare] {run.name}: predict {split} with {run.model_path}")
        pred_dir = out_dir / "predictions" / run.name
        predict(
            run.model_path,
            run.cfg.data.root,
            pred_dir,
            split=split,
            version=run.cfg.data.version,
            device=device,
            progress=progress,
        )
        log(f"[compare] {run.name}: evaluate {pred_dir}")
        scores[run.name], count = evaluate_predictions(
            kind, run.cfg.data.root, pred_dir, split=split, version=run.cfg.data.version, progress=progress
        )
        timings[run.name] = time.perf_counter() - started
        log(
            f"[compare] {run.name}: mIoU {100 * scores[run.name].miou:.2f} % on {count} scans "
            f"({timings[run.name]:.0f} s)"
        )
    num_scans = count

    sample = pick_sample(base, split, frame)
    truth = sample.labels
    figure_dir = out_dir / "figures"
    log(f"[compare] figures of frame {sample.sample_id} -> {figure_dir}")
    predictions = {
        r.name: read_prediction(r.cfg, out_dir / "predictions" / r.name, split, sample) for r in runs
    }
    if truth is None:
        notes.append(f"frame {sample.sample_id} has no ground truth: no bird's-eye figure")
    else:
        written.append(
            figures.save_figure(
                figures.bev_figure(
                    sample.points,
                    truth,
                    predictions,
                    label_map,
                    f"{kind.value} {split} frame {sample.sample_id}: bird's-eye view",
                    extent_m=extent_m,
                ),
                figure_dir / "bev.png",
            )
        )
    camera_figures: dict[str, Path] = {}
    for run in runs:
        if run.checkpoint is None:
            notes.append(
                f"{run.name}: no camera figure (its checkpoint has no NeRF head; method "
                f"{run.cfg.method.value})"
            )
            continue
        log(
            f"[compare] {run.name}: render frame {sample.sample_id} through the NeRF head of {run.checkpoint}"
        )
        path, note = camera_view_figure(run, sample, stride, device, figure_dir / f"camera_{run.name}.png")
        if note:
            notes.append(f"{run.name}: {note}")
        if path is not None:
            camera_figures[run.name] = path
            written.append(path)
    confusion_figures = {}
    for run in runs:
        s = scores[run.name]
        confusion_figures[run.name] = figures.save_figure(
            figures.confusion_figure(
                s.confusion,
                s.class_names,
                f"{run.name}: confusion on {split} ({num_scans} scans, mIoU {100 * s.miou:.1f} %), "
                "rows sum to 100 %",
            ),
            figure_dir / f"confusion_{run.name}.png",
        )
        written.append(confusion_figures[run.name])
    curves = figures.save_figure(
        figures.curves_figure(
            {r.name: r.records for r in runs}, "training curves (metrics.jsonl)", _validated_on(runs)
        ),
        figure_dir / "curves.png",
    )
    written.append(curves)
    page_paths: dict[str, Path] = {}
    if pages:
        page_paths = write_pages(runs, sample, predictions, label_map, out_dir / "pages", split)

    rows = [
        ScoreRow(
            r.name,
            r.cfg.method.value,
            _labels_text(r.cfg),
            r.steps,
            scores[r.name].miou,
            scores[r.name].accuracy,
            list(scores[r.name].per_class_iou),
        )
        for r in runs
    ]
    roots = sorted({str(r.cfg.data.root) for r in runs})
    lines = [f"# {title}", ""]
    lines += preamble or []
    lines += [
        "## Scores",
        "",
        f"Evaluated on split `{split}` of `{', '.join(roots)}` ({kind.value}, {num_scans} scans) with "
        f"`nerfseg predict` + `nerfseg evaluate` ({scores[runs[0].name].rule} rule); IoU in percent, "
        "best per column in bold. Predictions: `predictions/NAME/`.",
        "",
        score_table(rows, label_map.class_names),
        "",
        "## Bird's-eye view",
        "",
    ]
    if (figure_dir / "bev.png").is_file() and truth is not None:
        lines += [
            f"Frame `{sample.sample_id}`: ground truth, each run's prediction (official {kind.value} "
            "colours) and its errors (black = wrong class).",
            "",
            image_link("figures/bev.png", "bird's-eye view"),
            "",
        ]
    if page_paths:
        lines += [
            "Interactive 3D view of the same frame (orbit, zoom, switch truth / prediction / error): "
            + ", ".join(f"[{n}](pages/{p.name})" for n, p in page_paths.items()),
            "",
        ]
    lines += ["## Camera view through the NeRF head", ""]
    if camera_figures:
        for name, path in camera_figures.items():
            lines += [f"**{name}**", "", image_link(f"figures/{path.name}", f"camera view {name}"), ""]
    else:
        lines += ["No run has a NeRF head (methods geometry / nerf*), so there is no rendering to show.", ""]
    lines += ["## Confusion matrices", ""]
    for name, path in confusion_figures.items():
        lines += [image_link(f"figures/{path.name}", f"confusion {name}"), ""]
    lines += ["## Training curves", "", image_link("figures/curves.png", "training curves"), ""]
    if notes:
        lines += ["## Notes", "", markdown_list(notes), ""]
    from nerfseg.io_utils import atomic_write_text

    report = atomic_write_text(out_dir / "report.md", "\n".join(lines))
    payload = {
        "split": split,
        "dataset": kind.value,
        "num_scans": num_scans,
        "frame": sample.sample_id,
        "runs": {
            r.name: {
                "run_dir": str(r.run_dir),
                "method": r.cfg.method.value,
                "steps": r.steps,
                "labels": _labels_text(r.cfg),
                "seconds_predict_evaluate": round(timings[r.name], 1),
                **scores[r.name].to_dict(),
            }
            for r in runs
        },
    }
    atomic_write_text(out_dir / "report.json", json.dumps(payload, indent=2) + "\n")
    log(f"[compare] wrote {report}")
    return CompareResult(report, scores, written, list(page_paths.values()), notes)


def write_pages(runs, sample, predictions, label_map, page_dir: Path, split: str) -> dict[str, Path]:
    """One interactive 3D page per run for ``sample`` in ``page_dir``, sharing one plotly library copy."""
    from nerfseg.viz.scan_page import LIBRARY_NAME, write_plotly_library, write_scan_page

    write_plotly_library(page_dir)
    out = {}
    for run in runs:
        out[run.name] = write_scan_page(
            page_dir / f"{run.name}.html",
            sample.points[:, :3],
            label_map,
            sample.labels,
            predictions[run.name],
            f"{run.name} ({run.cfg.method.value}): {split} frame {sample.sample_id}",
            library_src=LIBRARY_NAME,
        )
    return out


def camera_view_figure(run: RunInfo, sample, stride: int, device: str, path: Path) -> tuple[Path | None, str]:
    """Write the camera figure of ``run`` for ``sample``'s first camera: the image, the student's rendered
    semantics, the pseudo-labels fused from the (EMA teacher's, else the student's) rendering and the image's
    masks as in training, and the ground truth (the simulator's semantic image, else the scan's labelled
    points projected). Returns (path or None, a note on what is missing)."""
    import torch

    from nerfseg.data.collate import collate_samples
    from nerfseg.data.datasets import DatasetKind
    from nerfseg.engine.build import build_head, resolve_device
    from nerfseg.engine.checkpoint import build_segmentor, load_checkpoint
    from nerfseg.geometry.rays import PixelGrid
    from nerfseg.ssl.camera_step import camera_pseudo_labels
    from nerfseg.viz import figures
    from nerfseg.viz.render_figure import render_camera_view

    if not sample.cameras:
        return None, f"frame {sample.sample_id} has no camera"
    label_map = DatasetKind(run.cfg.data.dataset).label_map
    index = next((i for i, c in enumerate(sample.cameras) if c.name == "CAM_FRONT"), 0)
    camera = sample.cameras[index]
    image = camera.load_image()
    state = load_checkpoint(run.checkpoint)
    dev = resolve_device(device)
    num_classes = int(state["num_classes"])

    def networks(model_key: str, head_key: str):
        model, cfg = build_segmentor({**state, "model": state[model_key]}, run.checkpoint)
        head = build_head(cfg, model, num_classes)
        head.load_state_dict(state[head_key])
        return model.to(dev).eval(), head.to(dev).eval()

    student = networks("model", "nerf_head")
    teacher = networks("teacher", "teacher_head") if "teacher_head" in state else student
    who = "EMA teacher" if teacher is not student else "student"
    grid = PixelGrid(*camera.image_size, stride)
    batch = collate_samples([sample]).to(dev)
    camera_cfg = replace(run.cfg.ssl.camera, oracle=False)
    mask_ids, note = _mask_ids(run.cfg, image)
    with torch.no_grad():
        model, head = student
        view = render_camera_view(head, head.build_volume(model(batch)), camera, stride, 0, index)
        pseudo = None
        if mask_ids is not None:
            t_model, t_head = teacher
            volume = t_head.build_volume(t_model(batch))
            fused = camera_pseudo_labels(
                t_head, volume, camera, grid, grid.pixels.to(dev), 0, index, mask_ids, None, camera_cfg
            )
            pseudo = fused.labels.cpu().numpy()
    truth, truth_title = _camera_truth(sample, camera, grid, label_map)
    coverage = "" if pseudo is None else f", {(pseudo != 255).mean():.0%} of pixels labeled"
    panels = [
        (
            f"rendered semantics (student; opacity >= 0.5, mean opacity {view.opacity.mean():.2f})",
            view.labels,
        ),
        (f"fused pseudo-labels ({who} + {run.cfg.masks.source} masks{coverage})", pseudo),
        (truth_title, truth),
    ]
    title = (
        f"{run.name} ({run.cfg.method.value}): {camera.name} of frame {sample.sample_id}, "
        f"rendered every {stride}th pixel"
    )
    return figures.save_figure(figures.camera_figure(image, panels, label_map, title), path), note


def _mask_ids(cfg, image):
    """Mask ids (H, W) of ``image``: the run's mask cache entry, else computed in memory (nothing written);
    (None, note) when its mask source cannot run here."""
    from nerfseg.errors import UserFacingError
    from nerfseg.masks.config import build_mask_source, open_run_mask_cache

    try:
        cached = open_run_mask_cache(cfg).read(image)
        if cached is not None:
            return cached, ""
        return build_mask_source(cfg.masks).masks(image), ""
    except (UserFacingError, ImportError, RuntimeError) as err:
        return None, f"no pseudo-label panel ({cfg.masks.source} masks unavailable: {err})"


def _camera_truth(sample, camera, grid, label_map):
    """(labels on the grid (H', W') or None, panel title): the semantic image when the dataset has one, else
    the scan's labelled points projected into the camera (nearest point per grid cell)."""
    import numpy as np

    from nerfseg.data.ground_truth import read_uint16_png
    from nerfseg.data.sample import IGNORE_INDEX
    from nerfseg.geometry.rays import read_at_pixels
    from nerfseg.geometry.transforms import project_points

    if camera.semantic_path is not None and Path(camera.semantic_path).is_file():
        full = np.asarray(label_map.to_train(read_uint16_png(camera.semantic_path)))
        return grid.to_image(read_at_pixels(full, grid.pixels)), "ground-truth semantics (image)"
    if sample.labels is None:
        return None, "ground truth (not available)"
    uv, depth, visible = project_points(
        sample.points[:, :3], camera.lidar_to_cam, camera.K, camera.image_size
    )
    h, w = grid.shape
    cols = np.clip((uv[visible, 0] // grid.stride).astype(np.int64), 0, w - 1)
    rows = np.clip((uv[visible, 1] // grid.stride).astype(np.int64), 0, h - 1)
    order = np.argsort(
        -depth[visible], kind="stable"
    )  # far first: the nearest point of a cell is written last
    out = np.full((h, w), IGNORE_INDEX, np.int64)
    out[rows[order], cols[order]] = sample.labels[visible][order]
    return out, "ground truth (labelled LiDAR points projected)"


def run(args: argparse.Namespace) -> int:
    result = compare_runs(
        args.runs,
        args.out,
        data_root=args.data,
        split=args.split,
        frame=args.frame,
        stride=args.stride,
        extent_m=args.extent,
        device=args.device,
        pages=not args.no_pages,
        progress=not args.no_progress,
    )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {result.report} ({len(result.figures)} figures, {len(result.pages)} 3D pages)")
    return 0
