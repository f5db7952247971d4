"""`nerfseg view`: one scan as an interactive 3D page (offline HTML), coloured by ground truth, prediction or
error."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfseg.data.datasets import DATASET_CHOICES

EPILOG = """\
The page (--out FILE.html) shows the scan's points in the lidar frame (metres) in 3D: drag to orbit,
scroll to zoom, right-drag to pan. Buttons switch the colouring:
  ground truth   the scan's labels in the dataset's official class colours (legend on the right)
  prediction     PRED's labels, same colours (with --predictions)
  error          correct (green) / wrong (red) / no ground truth (grey), with the accuracy (both given)
A scan with neither labels nor predictions is coloured by height. Points without a label are grey.

--frame: SemanticKITTI / ScribbleKITTI  SS/FFFFFF (ROOT/sequences/SS/velodyne/FFFFFF.bin);
         nuScenes                       the LIDAR_TOP key-frame sample_data token.
--predictions PRED: the layout `nerfseg predict` writes (the benchmarks' submission formats):
  semantickitti / scribblekitti: PRED/sequences/SS/predictions/FFFFFF.label  (uint32 raw ids)
  nuscenes:                      PRED/lidarseg/<split>/<token>_lidarseg.bin  (uint8 classes 1..16)
ScribbleKITTI shows the scribbles/ labels where the sequence has them (else labels/).

An orbit move of a 120k-point scan costs the page's own script about 40 ms; the drawing is the GPU's work. A
browser with no GPU draws WebGL in software, at 25-45 microseconds a point per move: there the page draws one
point in k, at most --software-max-points (15000), and says so under its title; add ?points=all to the page's
address to see all.

The page is self-contained (plotly's library inlined, about 4.8 MB, no network needed). With
--library beside it refers to one shared copy, plotly.min.js, written beside the page instead: use that
for many pages in one folder.

examples:
  nerfseg view --data data/sim --frame 08/000010 --out scan.html
  nerfseg view --data data/sim --frame 08/000010 --predictions runs/sup/pred --out runs/sup/08_000010.html
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "view",
        help="write an interactive 3D page (offline HTML) of a scan: ground truth, prediction, error",
        description="Write one offline HTML page showing a scan as an interactive 3D point cloud, coloured "
        "by ground truth, prediction or error, switchable, with a class legend.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, metavar="ROOT", help="dataset root folder")
    parser.add_argument(
        "--frame", required=True, metavar="ID", help="SS/FFFFFF (KITTI layouts) or a nuScenes LIDAR_TOP token"
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="the page to write, e.g. scan.html")
    parser.add_argument(
        "--dataset",
        choices=DATASET_CHOICES,
        help="dataset kind (default: semantickitti when ROOT has sequences/, nuscenes when it has v1.0-*/)",
    )
    parser.add_argument(
        "--predictions", metavar="PRED", help="prediction folder (as `nerfseg predict` writes)"
    )
    parser.add_argument("--version", help="nuScenes version (default: the one v1.0-* folder under ROOT)")
    parser.add_argument(
        "--split", help="nuScenes: the PRED/lidarseg/<split> folder (default: the one holding the frame)"
    )
    parser.add_argument(
        "--library",
        choices=("inline", "beside"),
        default="inline",
        help="inline plotly's library (default) or write one shared plotly.min.js beside the page",
    )
    parser.add_argument(
        "--software-max-points",
        type=int,
        default=None,
        metavar="N",
        help="in a browser drawing WebGL in software (no GPU), draw one point in k, at most N "
        "(default 15000; 0 = every point); ?points=all after the page's address draws them all",
    )
    parser.set_defaults(func=run)


@dataclass
class ViewScan:
    """One scan ready to draw.

    Attributes:
        points: (N, 3) float32 metres, lidar frame.
        truth / prediction: (N,) int64 train ids or IGNORE_INDEX; None where not available.
        label_map: the dataset's label map.
        title: the page title.
        notes: lines worth telling the user (unknown raw ids mapped to ignored, no labels, ...).
    """

    points: np.ndarray
    truth: np.ndarray | None
    prediction: np.ndarray | None
    label_map: object
    title: str
    notes: list[str]


def detect_dataset(root: Path) -> str:
    """``"semantickitti"`` when ROOT has ``sequences/``, ``"nuscenes"`` when it has a ``v1.0-*`` folder."""
    from nerfseg.errors import DataError

    if (root / "sequences").is_dir():
        return "semantickitti"
    if root.is_dir() and any(p.is_dir() and p.name.startswith("v1.0-") for p in root.iterdir()):
        return "nuscenes"
    what = "folder not found" if not root.is_dir() else "holds neither sequences/ nor v1.0-*/"
    raise DataError(root, f"{what} (expected a SemanticKITTI or nuScenes root; or pass --dataset)")


def _raw_to_train(raw: np.ndarray, path: Path, label_map, notes: list[str]) -> np.ndarray:
    """Raw semantic ids -> train ids; unknown ids become IGNORE_INDEX with a note naming the file."""
    unknown = label_map.unknown_raw_ids(raw)
    if unknown.size:
        shown = ", ".join(str(v) for v in unknown.tolist()[:10])
        count = int(np.isin(raw, unknown).sum())
        notes.append(f"{path}: {count} point(s) with raw ids the label map does not define ({shown}): grey")
    return label_map.to_train(raw)


def _load_semantickitti(root: Path, frame: str, kind: str, predictions: Path | None) -> ViewScan:
    from nerfseg.data import io
    from nerfseg.data.labelmaps import SEMANTICKITTI
    from nerfseg.data.semantickitti import NUM_FIELDS
    from nerfseg.data.submission import semantickitti_prediction_path
    from nerfseg.errors import ConfigError, DataError

    parts = frame.split("/")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--frame must be SS/FFFFFF for {kind} (e.g. 08/000010), got {frame!r}")
    sequence, name = parts
    folder = root / "sequences" / sequence
    scan_path = folder / "velodyne" / f"{name}.bin"
    if not scan_path.is_file():
        present = sorted(p.name for p in (root / "sequences").glob("*") if (p / "velodyne").is_dir())
        hint = f"; sequences with scans: {', '.join(present)}" if present else ""
        raise DataError(scan_path, f"scan not found (--frame {frame}){hint}")
    points = io.read_points_bin(scan_path, NUM_FIELDS)
    n = points.shape[0]
    notes: list[str] = []
    label_dirs = ("scribbles", "labels") if kind == "scribblekitti" else ("labels",)
    truth = None
    for label_dir in label_dirs:
        label_path = folder / label_dir / f"{name}.label"
        if label_path.is_file():
            raw = (io.read_label_file(label_path, n) & 0xFFFF).astype(np.int64)
            truth = _raw_to_train(raw, label_path, SEMANTICKITTI, notes)
            break
    if truth is None:
        notes.append(f"{folder}: no {' or '.join(label_dirs)} file for {name}: the page has no ground truth")
    prediction = None
    if predictions is not None:
        path = semantickitti_prediction_path(predictions, frame)
        if not path.is_file():
            raise DataError(path, f"prediction file not found (--predictions {predictions}, scan {frame})")
        raw = (io.read_label_file(path, n) & 0xFFFF).astype(np.int64)
        prediction = _raw_to_train(raw, path, SEMANTICKITTI, notes)
    return ViewScan(points[:, :3], truth, prediction, SEMANTICKITTI, f"{kind} {frame}", notes)


def _nuscenes_prediction_file(predictions: Path, token: str, split: str | None) -> Path:
    from nerfseg.data.nuscenes_submission import prediction_path
    from nerfseg.errors import DataError

    if split is not None:
        return prediction_path(predictions, split, token)
    found = sorted((predictions / "lidarseg").glob(f"*/{token}_lidarseg.bin"))
    if not found:
        raise DataError(
            predictions / "lidarseg", f"no prediction file {token}_lidarseg.bin in any <split> folder"
        )
    if len(found) > 1:
        splits = ", ".join(p.parent.name for p in found)
        raise DataError(
            predictions / "lidarseg", f"several splits hold {token} ({splits}): choose with --split"
        )
    return found[0]


def _load_nuscenes(
    root: Path, token: str, version: str | None, predictions: Path | None, split: str | None
) -> ViewScan:
    from nerfseg.data.labelmaps import NUSCENES
    from nerfseg.data.nuscenes import NuScenesDataset, read_nuscenes_points
    from nerfseg.data.nuscenes_version import resolve_version
    from nerfseg.errors import DataError

    version = resolve_version(root, version)
    dataset = NuScenesDataset(root, version, split=None)
    ids = dataset.sample_ids
    if token not in ids:
        raise DataError(
            root / version, f"no LIDAR_TOP key frame with sample_data token {token!r} ({len(ids)} key frames)"
        )
    index = ids.index(token)
    points = read_nuscenes_points(dataset.lidar_path(index))
    n = points.shape[0]
    notes: list[str] = []
    truth = dataset.read_labels(index, num_points=n)
    if truth is None:
        notes.append(f"{root / version}: no lidarseg labels: the page has no ground truth")
    prediction = None
    if predictions is not None:
        path = _nuscenes_prediction_file(predictions, token, split)
        data = np.frombuffer(_read_bytes(path), dtype=np.uint8)
        if data.size != n:
            raise DataError(path, f"has {data.size} predictions but the point cloud has {n} points")
        valid = (data >= 1) & (data <= NUSCENES.num_classes)
        if not valid.all():
            shown = ", ".join(str(v) for v in np.unique(data[~valid]).tolist()[:10])
            notes.append(f"{path}: {int((~valid).sum())} value(s) outside the classes 1..16 ({shown}): grey")
        prediction = np.where(valid, data.astype(np.int64) - 1, 255)
    return ViewScan(points[:, :3], truth, prediction, NUSCENES, f"nuscenes {version} {token}", notes)


def _read_bytes(path: Path) -> bytes:
    from nerfseg.data.io import read_file_bytes

    return read_file_bytes(path, "prediction file")


def load_view_scan(
    data_root: str | Path,
    frame: str,
    dataset: str | None = None,
    predictions: str | Path | None = None,
    version: str | None = None,
    split: str | None = None,
) -> ViewScan:
    """Read one scan, its ground truth (where the dataset has it) and PRED's prediction for it.

    Raises:
        DataError / ConfigError naming the file or option: missing scan or prediction, wrong lengths, ...
    """
    from nerfseg.errors import DataError

    root = Path(data_root)
    kind = dataset or detect_dataset(root)
    pred_root = None if predictions is None else Path(predictions)
    if pred_root is not None and not pred_root.is_dir():
        raise DataError(pred_root, "prediction folder not found (--predictions)")
    if kind == "nuscenes":
        return _load_nuscenes(root, frame, version, pred_root, split)
    return _load_semantickitti(root, frame, kind, pred_root)


def run(args: argparse.Namespace) -> int:
    from nerfseg.errors import ConfigError, DataError
    from nerfseg.viz.scan_page import (
        LIBRARY_NAME,
        SOFTWARE_MAX_POINTS,
        write_plotly_library,
        write_scan_page,
    )

    out = Path(args.out)
    software_max_points = args.software_max_points
    if software_max_points is None:
        software_max_points = SOFTWARE_MAX_POINTS
    if software_max_points < 0:
        raise ConfigError(f"--software-max-points must be >= 0 (0 = every point), got {software_max_points}")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give the page's file name, e.g. {out / 'scan.html'}")
    scan = load_view_scan(args.data, args.frame, args.dataset, args.predictions, args.version, args.split)
    for note in scan.notes:
        print(f"nerfseg view: {note}", file=sys.stderr)
    title = f"{scan.title}: {scan.points.shape[0]:,} points"
    if args.predictions:
        title += f", predictions {args.predictions}"
    try:
        library_src = None
        if args.library == "beside":
            write_plotly_library(out.parent)
            library_src = LIBRARY_NAME
        write_scan_page(
            out, scan.points, scan.label_map, scan.truth, scan.prediction, title, library_src,
            software_max_points,
        )  # fmt: skip
    except OSError as err:
        raise DataError(out, f"cannot write the page ({err.strerror or err})") from None
    shown = [
        name
        for name, given in (("ground truth", scan.truth), ("prediction", scan.prediction))
        if given is not None
    ]
    if len(shown) == 2:
        shown.append("error")
    size_mb = out.stat().st_size / 1e6
    print(f"wrote {out} ({size_mb:.1f} MB; {', '.join(shown) or 'height'}); open it in a browser")
    return 0
