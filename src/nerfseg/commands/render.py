"""`nerfseg render`: render camera views of one scan through a trained NeRF head (semantics, depth, opacity)
beside the camera image and the ground truth where the dataset has it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from nerfseg.data.datasets import DATASET_CHOICES

EPILOG = """\
Output (--out DIR), per camera of the frame (STEM = frame id with '/' -> '_', then the camera name):
  DIR/STEM.png                 figure: camera image | opacity, rendered | ground-truth semantics,
                               rendered | ground-truth depth (ground truth where the dataset has it:
                               the simulator's semantic_2/ and depth_2/)
  DIR/STEM_{image,semantics,depth,opacity,gt_semantics,gt_depth}.png   the single panels
Depth is z-depth along the camera axis in metres, coloured red (1 m) to blue (--max-depth); black = the
rendered opacity is below 0.5 (the ray hit nothing). Semantics use the dataset's class colours.

The checkpoint must hold a NeRF head (trained with method geometry or a nerf method). Rendering runs the
segmentor on the scan, then casts one ray through the centre pixel of every --stride x --stride block
(nerfseg.geometry.rays.PixelGrid; the image and the ground truth are read at the same pixels) from the
camera's position at its capture time, in chunks of --chunk rays. The printed median |depth error| compares
distances along the ray (depth_2/'s z-depth converted). Samples in empty space (no voxel around) are
skipped cheaply, so with small voxels raise --samples until (far - near) / samples <= the voxel size, or
add an importance pass with --importance N.

examples:
  nerfseg render runs/nerf/checkpoints/last.pt --data data/sim --frame 08/000010 --out runs/nerf/render
  nerfseg render runs/nerf/checkpoints/last.pt --data data/sim --frame 08/000010 --out render --stride 1
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render camera views of a scan through the trained NeRF head",
        description="Render semantics, depth and opacity of a scan's camera views with the NeRF head of a "
        "training checkpoint, next to the camera image and the ground truth.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint", help="training checkpoint with a NeRF head (RUN_DIR/checkpoints/last.pt)"
    )
    parser.add_argument("--data", required=True, metavar="ROOT", help="dataset root folder")
    parser.add_argument(
        "--frame", required=True, metavar="ID", help="sample id, e.g. 08/000010 (SemanticKITTI)"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for the PNGs")
    parser.add_argument(
        "--dataset",
        choices=DATASET_CHOICES,
        help="dataset kind (default: the one the model was trained on)",
    )
    parser.add_argument("--split", help="split holding the frame (default: search val, train, test)")
    parser.add_argument("--camera", help="render only this camera (default: all cameras of the frame)")
    parser.add_argument("--stride", type=int, default=2, help="render one pixel per N x N block (default 2)")
    parser.add_argument(
        "--chunk", type=int, default=0, help="rays per chunk (default: the config's chunk_rays)"
    )
    parser.add_argument(
        "--samples", type=int, default=0, help="stratified samples per ray (default: the config's)"
    )
    parser.add_argument(
        "--importance",
        type=int,
        default=-1,
        help="importance samples per ray (default: the config's; 0 = none)",
    )
    parser.add_argument("--max-depth", type=float, default=50.0, help="metres at the blue end (default 50)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device")
    parser.set_defaults(func=run)


@dataclass
class RenderedCamera:
    """What was written for one camera, with its scores against the ground truth (None without it)."""

    camera: str
    paths: list[Path]
    mean_opacity: float
    depth_abs_error_median: float | None
    pixel_accuracy: float | None


def _find_sample(cfg, kind: str, root: str, frame: str, split: str | None):
    """The Sample with id ``frame`` from the first split (given or val/train/test) that holds it."""
    from dataclasses import replace

    from nerfseg.engine.train import open_split
    from nerfseg.errors import DataError

    cfg = replace(cfg, data=replace(cfg.data, dataset=kind, root=str(root)))
    searched = []
    for name in [split] if split else ["val", "train", "test"]:
        try:
            reader = open_split(cfg, name)
        except DataError:
            if split:
                raise
            continue
        searched.append(name)
        ids = list(reader.sample_ids)
        if frame in ids:
            return reader[ids.index(frame)]
    raise DataError(root, f"frame '{frame}' not found in the {kind} splits {searched or ['(none readable)']}")


def _no_head_problem(checkpoint: dict) -> str:
    """Why a checkpoint without ``nerf_head`` cannot render, and what to pass instead."""
    from nerfseg.engine.checkpoint import MODEL_KIND
    from nerfseg.ssl.config import Method
    from nerfseg.ssl.recipe import recipe_for

    method = checkpoint["config"].get("method", "supervised")
    try:
        trains_head = recipe_for(Method(method)).uses_head
    except ValueError:
        trains_head = False
    untrained = (
        f"its run's method {method!r} trains no NeRF head; render needs a run trained with method geometry "
        "or a nerf method"
    )
    if checkpoint.get("kind") == MODEL_KIND:
        export = "it is the LiDAR-only inference export (model.pt / `nerfseg export`: segmentor weights only)"
        fix = "pass the run's training checkpoint RUN/checkpoints/last.pt" if trains_head else untrained
        return f"holds no NeRF head: {export}; {fix}"
    return f"holds no NeRF head: {untrained}"


def render_frame(
    checkpoint_path: str | Path,
    data_root: str | Path,
    frame: str,
    out_dir: str | Path,
    dataset: str | None = None,
    split: str | None = None,
    camera_name: str | None = None,
    stride: int = 2,
    chunk: int = 0,
    max_depth: float = 50.0,
    device: str = "auto",
    samples: int = 0,
    importance: int = -1,
) -> list[RenderedCamera]:
    """Render the cameras of one frame with a checkpoint's NeRF head and write the PNGs (see EPILOG)."""
    import torch

    from nerfseg.data.collate import collate_samples
    from nerfseg.data.datasets import DatasetKind
    from nerfseg.engine.build import build_head, resolve_device
    from nerfseg.engine.checkpoint import build_segmentor, load_checkpoint
    from nerfseg.errors import ConfigError, DataError
    from nerfseg.io_utils import ensure_writable_dir
    from nerfseg.viz.render_figure import render_camera_view, view_figure, write_view_figure

    if stride < 1:
        raise ConfigError(f"--stride must be >= 1, got {stride}")
    if max_depth <= 0:
        raise ConfigError(f"--max-depth must be > 0 metres, got {max_depth}")
    checkpoint = load_checkpoint(checkpoint_path)
    if "nerf_head" not in checkpoint:
        raise DataError(checkpoint_path, _no_head_problem(checkpoint))
    ensure_writable_dir(out_dir, "--out")  # before the work, not after it
    torch_device = resolve_device(device)
    model, cfg = build_segmentor(checkpoint, checkpoint_path)
    num_classes = int(checkpoint["num_classes"])
    head = build_head(cfg, model, num_classes)
    try:
        head.load_state_dict(checkpoint["nerf_head"])
    except RuntimeError as err:
        raise DataError(
            checkpoint_path, f"NeRF head weights do not fit its config: {str(err).splitlines()[0]}"
        ) from err
    if chunk > 0:
        head.cfg.chunk_rays = chunk
    if samples > 0:
        head.cfg.samples_per_ray = samples
    if importance >= 0:
        head.cfg.importance_samples = importance
    model.to(torch_device).eval()
    head.to(torch_device).eval()
    kind = dataset or cfg.data.dataset
    sample = _find_sample(cfg, kind, str(data_root), frame, split)
    cameras = [c for c in sample.cameras if camera_name is None or c.name == camera_name]
    if not cameras:
        names = [c.name for c in sample.cameras]
        raise DataError(data_root, f"frame '{frame}' has no camera {camera_name or ''} (cameras: {names})")
    label_map = DatasetKind(kind).label_map
    with torch.no_grad():
        out = model(collate_samples([sample]).to(torch_device))
        grid = head.build_volume(out)
        results = []
        for camera in cameras:
            index = next(i for i, c in enumerate(sample.cameras) if c is camera)
            view = render_camera_view(head, grid, camera, stride, batch_index=0, camera_index=index)
            figure = view_figure(view, camera, label_map.colors, label_map.to_train, max_depth)
            stem = f"{frame.replace('/', '_')}_{camera.name}"
            paths = write_view_figure(out_dir, stem, figure)
            results.append(
                RenderedCamera(
                    camera.name,
                    paths,
                    float(view.opacity.mean()),
                    figure.depth_abs_error_median,
                    figure.pixel_accuracy,
                )
            )
    return results


def run(args: argparse.Namespace) -> int:
    results = render_frame(
        args.checkpoint,
        args.data,
        args.frame,
        args.out,
        dataset=args.dataset,
        split=args.split,
        camera_name=args.camera,
        stride=args.stride,
        chunk=args.chunk,
        max_depth=args.max_depth,
        device=args.device,
        samples=args.samples,
        importance=args.importance,
    )
    for r in results:
        scores = [f"mean opacity {r.mean_opacity:.2f}"]
        if r.depth_abs_error_median is not None:
            scores.append(f"median |depth error| {r.depth_abs_error_median:.2f} m")
        if r.pixel_accuracy is not None:
            scores.append(f"pixel accuracy {100 * r.pixel_accuracy:.1f}%")
        print(f"{r.camera}: {', '.join(scores)}; wrote {r.paths[0]}")
    return 0
