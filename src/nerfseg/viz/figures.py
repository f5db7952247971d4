"""The report's figures, drawn with matplotlib's Agg canvas (no pyplot, no display, no global state):
bird's-eye predictions against the ground truth, a camera view beside its rendered semantics and
pseudo-labels, the row-normalised confusion matrix and the training curves.

Every class colour comes from the dataset's official colour map
(:attr:`nerfseg.data.labelmaps.LabelMap.colors`: SemanticKITTI's ``semantic-kitti.yaml`` colours, nuScenes'
devkit colours); IGNORE_INDEX is drawn in :data:`IGNORE_COLOR` and every figure that shows classes carries
a legend with their names. Bird's-eye axes are metres in the LiDAR frame (x forward up the page, y to the
left).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from nerfseg.data.labelmaps import LabelMap
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.io_utils import atomic_write

IGNORE_COLOR = (150, 150, 150)
"""RGB of points / pixels without a label (IGNORE_INDEX) in class images."""
CORRECT_COLOR = (205, 205, 205)
WRONG_COLOR = (0, 0, 0)
"""Error views: right / wrong class (black and grey, apart from every class colour)."""
POINT_SIZE = 1.5
"""Bird's-eye marker area in points^2."""
DPI = 110


def class_palette(label_map: LabelMap) -> np.ndarray:
    """(C + 1, 3) uint8: the dataset's official class colours, then :data:`IGNORE_COLOR` at index C."""
    return np.concatenate([np.asarray(label_map.colors, np.uint8), np.array([IGNORE_COLOR], np.uint8)])


def class_rgb(labels: np.ndarray, label_map: LabelMap) -> np.ndarray:
    """(...,) train ids (IGNORE_INDEX or out of range -> :data:`IGNORE_COLOR`) -> (..., 3) uint8 RGB."""
    labels = np.asarray(labels).astype(np.int64)
    c = label_map.num_classes
    index = np.where((labels >= 0) & (labels < c), labels, c)
    return class_palette(label_map)[index]


def legend_handles(
    label_map: LabelMap, class_ids: Sequence[int] | None = None, ignore_label: str | None = "unlabeled"
) -> list:
    """Legend patches (official colour, class name) for ``class_ids`` (default all classes), in id order, then
    a :data:`IGNORE_COLOR` patch named ``ignore_label`` (None: none)."""
    ids = range(label_map.num_classes) if class_ids is None else sorted({int(i) for i in class_ids})
    handles = [
        Patch(color=np.asarray(label_map.colors[i]) / 255, label=label_map.class_names[i]) for i in ids
    ]
    if ignore_label:
        handles.append(Patch(color=np.asarray(IGNORE_COLOR) / 255, label=ignore_label))
    return handles


def present_classes(label_map: LabelMap, *label_arrays: np.ndarray | None) -> list[int]:
    """Sorted train ids in [0, C) occurring in any of the arrays (None entries skipped)."""
    found: set[int] = set()
    for labels in label_arrays:
        if labels is not None:
            values = np.unique(np.asarray(labels))
            found.update(int(v) for v in values if 0 <= v < label_map.num_classes)
    return sorted(found)


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as PNG to ``path`` (atomically; parent folders created)."""
    FigureCanvasAgg(figure)

    def write(f):
        figure.savefig(f, format="png", dpi=DPI, facecolor="white")

    return atomic_write(path, write)


def _bev_axes(ax, points: np.ndarray, rgb: np.ndarray, title: str, extent_m: float, y_label: bool) -> None:
    """Scatter ``points`` (N, >=3) seen from above, coloured ``rgb`` (N, 3) uint8, highest drawn last."""
    xyz = np.asarray(points, np.float64)[:, :3]
    inside = (np.abs(xyz[:, 0]) <= extent_m) & (np.abs(xyz[:, 1]) <= extent_m)
    order = np.argsort(xyz[inside, 2], kind="stable")
    xyz, rgb = xyz[inside][order], np.asarray(rgb)[inside][order]
    # x forward up the page, y (left) to the left: the horizontal axis runs from +extent to -extent
    ax.scatter(xyz[:, 1], xyz[:, 0], c=rgb / 255.0, s=POINT_SIZE, marker="s", linewidths=0, rasterized=True)
    ax.set_xlim(extent_m, -extent_m)
    ax.set_ylim(-extent_m, extent_m)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("y (m, + = left)", fontsize=9)
    if y_label:
        ax.set_ylabel("x (m, + = forward)", fontsize=9)
    ax.plot([0], [0], marker="^", color="black", markersize=7, linestyle="none")  # the sensor
    ax.tick_params(labelsize=8)


def bev_figure(
    points: np.ndarray,
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    label_map: LabelMap,
    title: str,
    extent_m: float = 40.0,
) -> Figure:
    """Bird's-eye view of one scan: ground truth and each run's prediction (top row, official class colours)
    and each run's errors (bottom row: black = wrong class, light grey = right; unlabeled points left out),
    with a class legend and metre axes (LiDAR frame; the black triangle is the sensor).

    Args:
        points: (N, >=3) float, the scan in the LiDAR frame, metres.
        truth: (N,) int train ids, IGNORE_INDEX for unlabeled points.
        predictions: run name -> (N,) int predicted train ids.
        label_map: the dataset's label map (names, colours).
        title: the figure title (say which frame and split).
        extent_m: half the side of the square shown, metres.
    """
    truth = np.asarray(truth)
    names = list(predictions)
    cols = 1 + len(names)
    size = 4.0
    figure = Figure(figsize=(size * cols, 2 * size + 1.0))
    axes = figure.subplots(2, cols, squeeze=False)
    _bev_axes(axes[0, 0], points, class_rgb(truth, label_map), "ground truth", extent_m, True)
    labeled = truth != IGNORE_INDEX
    for k, name in enumerate(names, start=1):
        pred = np.asarray(predictions[name])
        if pred.shape != truth.shape:
            raise ValueError(f"prediction of {name} has shape {pred.shape}, ground truth {truth.shape}")
        _bev_axes(axes[0, k], points, class_rgb(pred, label_map), f"prediction: {name}", extent_m, False)
        wrong = labeled & (pred != truth)
        rgb = np.where(wrong[:, None], np.array(WRONG_COLOR, np.uint8), np.array(CORRECT_COLOR, np.uint8))
        share = float(wrong.sum() / max(int(labeled.sum()), 1))
        error_title = f"errors: {name}\n{share:.1%} of the labeled points wrong"
        _bev_axes(axes[1, k], points[labeled], rgb[labeled], error_title, extent_m, k == 1)
    legend_ax = axes[1, 0]
    legend_ax.axis("off")
    classes = present_classes(label_map, truth, *predictions.values())
    handles = legend_handles(label_map, classes, "unlabeled" if (~labeled).any() else None)
    handles += [
        Patch(color=np.asarray(WRONG_COLOR) / 255, label="errors: wrong class"),
        Patch(color=np.asarray(CORRECT_COLOR) / 255, label="errors: right class"),
    ]
    legend_ax.legend(
        handles=handles,
        loc="center",
        fontsize=8,
        ncol=2 if len(handles) > 12 else 1,
        title=f"{label_map.name} classes (official colours)",
        title_fontsize=9,
        frameon=False,
    )
    figure.suptitle(title, fontsize=12)
    figure.tight_layout()
    return figure


def camera_figure(
    image: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray | None]],
    label_map: LabelMap,
    title: str,
) -> Figure:
    """The camera image beside class images of the same view (rendered semantics, pseudo-labels, ground
    truth), two panels a row, one class legend below.

    Args:
        image: (H, W, 3) uint8 camera image (full resolution or the reduced grid).
        panels: (title, (H', W') int train ids with IGNORE_INDEX, or None = not available) per panel; each is
            stretched over the image's pixel extent, so a reduced grid lines up with the image.
        label_map: the dataset's label map; title: the figure title.
    """
    height, width = image.shape[:2]
    entries: list[tuple[str, np.ndarray | None]] = [("camera image", image)]
    entries += [(name, None if labels is None else class_rgb(labels, label_map)) for name, labels in panels]
    cols = 2
    rows = (len(entries) + cols - 1) // cols
    panel_w = 6.0
    panel_h = panel_w * height / width + 0.7
    figure = Figure(figsize=(panel_w * cols, panel_h * rows + 1.4))
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, rgb) in zip(axes.ravel(), entries, strict=False):
        ax.axis("on")
        ax.set_title(name, fontsize=10)
        if rgb is None:
            ax.imshow(np.full((height, width, 3), 255, np.uint8), extent=(0, width, height, 0))
            ax.text(width / 2, height / 2, "not available", ha="center", va="center", fontsize=10)
        else:
            ax.imshow(rgb, extent=(0, width, height, 0), interpolation="nearest")
        ax.set_xlabel("u (pixels)", fontsize=8)
        ax.set_ylabel("v (pixels)", fontsize=8)
        ax.tick_params(labelsize=7)
    classes = present_classes(label_map, *(labels for _, labels in panels))
    handles = legend_handles(label_map, classes, "no label (unlabeled, or the ray is not opaque)")
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=12)
    figure.tight_layout(rect=(0, 0.08 if len(handles) <= 7 else 0.13, 1, 1))
    return figure


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """(C, C) counts [gt, pred] -> each row divided by its sum (NaN rows: classes without ground truth)."""
    matrix = np.asarray(matrix, np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(totals > 0, matrix / np.where(totals > 0, totals, 1), np.nan)


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """Row-normalised confusion matrix: row = ground-truth class, column = predicted class, colour = share of
    the row's points (percent written where >= 1 %); rows of classes absent from the ground truth are grey
    and marked '(absent)'.

    Args:
        matrix: (C, C) counts [gt, pred], or the (C + 1, C + 1) matrix of
            :class:`nerfseg.engine.metrics.ConfusionMatrix` (its ignore row / column is dropped).
        class_names: the C names; title: the figure title.
    """
    c = len(class_names)
    matrix = np.asarray(matrix)[:c, :c]
    shares = row_normalised(matrix)
    side = max(5.0, 0.42 * c + 2.5)
    figure = Figure(figsize=(side + 1.2, side))
    ax = figure.subplots()
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad=(0.85, 0.85, 0.85))
    shown = ax.imshow(np.ma.masked_invalid(shares * 100), cmap=cmap, vmin=0, vmax=100)
    figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the ground-truth class (%)")
    rows_present = matrix.sum(axis=1) > 0
    labels = [n if ok else f"{n} (absent)" for n, ok in zip(class_names, rows_present, strict=True)]
    ax.set_xticks(range(c), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(c), labels, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    rows, cols = np.nonzero(np.nan_to_num(shares) >= 0.01)
    for r, k in zip(rows, cols, strict=True):
        value = shares[r, k] * 100
        ax.text(
            k,
            r,
            f"{value:.0f}",
            ha="center",
            va="center",
            fontsize=6,
            color="white" if value > 55 else "black",
        )
    ax.set_title(title, fontsize=11)
    figure.tight_layout()
    return figure


def curve_points(records: Sequence[Mapping], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``key`` in metrics.jsonl records (records without a number for it skipped)."""
    pairs = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and "step" in r]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*pairs, strict=True)
    return np.asarray(steps, np.float64), np.asarray(values, np.float64)


def curves_figure(
    histories: Mapping[str, Sequence[Mapping]], title: str = "training curves", miou_scans: str = ""
) -> Figure:
    """Three panels against the step, one line per run (its metrics.jsonl records): the supervised loss
    ``train/supervised`` (CE + Lovasz on the labeled scans, the one term every method has), the total loss
    ``train/loss`` (each method adds its own terms, so totals differ in kind) and the validation mIoU
    ``val/miou`` in percent; ``miou_scans`` says what the training validated on (put in the panel title)."""
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(15, 4.4))
    axes = figure.subplots(1, 3)
    panels = [
        ("train/supervised", 1.0, "supervised loss (CE + Lovasz, labeled scans)", "loss", None),
        ("train/loss", 1.0, "total training loss (each method's own terms)", "loss", None),
        ("val/miou", 100.0, f"validation mIoU during training{miou_scans}", "mIoU (%)", "o"),
    ]
    last_step = max((r.get("step", 0) for records in histories.values() for r in records), default=0)
    for ax, (key, scale, panel_title, unit, marker) in zip(axes, panels, strict=True):
        for name, records in histories.items():
            steps, values = curve_points(records, key)
            if steps.size:
                ax.plot(steps, values * scale, marker=marker, label=name, linewidth=1.4)
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(unit)
        ax.set_xlim(0, max(last_step, 1) * 1.04)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, f"{key} not logged", ha="center", va="center", transform=ax.transAxes)
    axes[2].set_ylim(bottom=0)
    figure.suptitle(title, fontsize=12)
    figure.tight_layout()
    return figure
