"""`nerfseg masks`: precompute (and cache) class-agnostic masks for every camera image of a split."""

from __future__ import annotations

import argparse

from nerfseg.data.datasets import DATASET_CHOICES

EPILOG = """\
Masks are cached under ROOT/.nerfseg_cache/masks/<source>-<settings hash>/<image hash>.npz (or --cache DIR),
keyed by the image content and every mask setting, written atomically. A killed run is resumed by running
the same command again (valid entries are skipped); corrupt entries are reported and recomputed. Training
reads this cache.

--preview N writes a PNG for each of the first N images (default folder: the cache folder's preview/):
image, masks (random colours) and, when the dataset has per-pixel ground truth (the built-in simulator's
semantic_2/), the argmax of a noisy stand-in teacher distribution made from it (noise model:
nerfseg.masks.noisy_teacher) and its fused pseudo-labels (--tau-mask, --tau-pix). Without ground truth
the preview shows image and masks only.

examples:
  nerfseg masks data/sim --dataset semantickitti                       # superpixels, train split
  nerfseg masks data/sim --dataset semantickitti --split val --preview 4
  nerfseg masks /data/semantickitti --dataset semantickitti \\
      --source sam --checkpoint weights/sam_vit_h_4b8939.pth --model-type vit_h --device cuda
  nerfseg masks /data/nuscenes --dataset nuscenes --version v1.0-mini --split mini_train --cache /scratch/m
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "masks",
        help="precompute and cache SAM / superpixel masks for every camera image of a split",
        description="Compute class-agnostic masks for every camera image of a dataset split and cache them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("root", metavar="ROOT", help="dataset root folder")
    parser.add_argument(
        "--dataset",
        default="semantickitti",
        choices=DATASET_CHOICES,
        help="dataset layout (default %(default)s)",
    )
    parser.add_argument(
        "--split",
        default="train",
        help="split whose camera images get masks: train, val, test (nuScenes v1.0-mini: mini_train, "
        "mini_val) (default %(default)s)",
    )
    parser.add_argument("--version", default="v1.0-trainval", help="nuScenes version (default %(default)s)")
    parser.add_argument(
        "--source",
        default="superpixel",
        choices=["superpixel", "sam"],
        help="mask source (default %(default)s: needs no weights)",
    )
    parser.add_argument("--cache", metavar="DIR", help="cache root (default ROOT/.nerfseg_cache/masks)")
    parser.add_argument(
        "--preview", type=int, default=0, metavar="N", help="write a preview PNG of the first N images"
    )
    parser.add_argument(
        "--preview-dir", metavar="DIR", help="where previews go (default <cache folder>/preview)"
    )
    parser.add_argument(
        "--limit", type=int, default=0, metavar="N", help="only the first N samples (0 = all)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    sp = parser.add_argument_group("superpixel source (scikit-image)")
    sp.add_argument(
        "--method", default="felzenszwalb", choices=["felzenszwalb", "slic"], help="(default %(default)s)"
    )
    sp.add_argument("--scale", type=float, default=100.0, help="Felzenszwalb scale (default %(default)s)")
    sp.add_argument("--sigma", type=float, default=0.8, help="pre-smoothing, pixels (default %(default)s)")
    sp.add_argument(
        "--min-size", type=int, default=50, help="Felzenszwalb minimum segment, pixels (default %(default)s)"
    )
    sp.add_argument("--n-segments", type=int, default=400, help="SLIC segments (default %(default)s)")
    sp.add_argument("--compactness", type=float, default=10.0, help="SLIC compactness (default %(default)s)")

    sam = parser.add_argument_group(
        "SAM source (segment_anything; weights from a path you give, nothing downloaded)"
    )
    sam.add_argument(
        "--checkpoint", default="", metavar="PATH", help="SAM checkpoint, e.g. sam_vit_h_4b8939.pth"
    )
    sam.add_argument(
        "--model-type",
        default="vit_h",
        choices=["vit_h", "vit_l", "vit_b"],
        help="must match the checkpoint (default %(default)s)",
    )
    sam.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default %(default)s)")
    sam.add_argument("--points-per-side", type=int, default=32, help="(default %(default)s)")
    sam.add_argument("--points-per-batch", type=int, default=64, help="(default %(default)s)")
    sam.add_argument("--pred-iou-thresh", type=float, default=0.88, help="(default %(default)s)")
    sam.add_argument("--stability-score-thresh", type=float, default=0.95, help="(default %(default)s)")

    fu = parser.add_argument_group("preview fusion")
    fu.add_argument(
        "--tau-mask", type=float, default=0.4, help="min. mean class prob. of a mask (default %(default)s)"
    )
    fu.add_argument(
        "--tau-pix", type=float, default=0.9, help="min. class prob. of a lone pixel (default %(default)s)"
    )
    parser.set_defaults(func=run)


def masks_config(args: argparse.Namespace):
    """The MasksConfig the arguments describe (the same config training reads)."""
    from nerfseg.masks.config import MasksConfig
    from nerfseg.masks.sam import SamConfig
    from nerfseg.masks.superpixel import SuperpixelConfig

    return MasksConfig(
        source=args.source,
        superpixel=SuperpixelConfig(
            method=args.method,
            scale=args.scale,
            sigma=args.sigma,
            min_size=args.min_size,
            n_segments=args.n_segments,
            compactness=args.compactness,
        ),
        sam=SamConfig(
            checkpoint=args.checkpoint,
            model_type=args.model_type,
            device=args.device,
            points_per_side=args.points_per_side,
            points_per_batch=args.points_per_batch,
            pred_iou_thresh=args.pred_iou_thresh,
            stability_score_thresh=args.stability_score_thresh,
        ),
        cache_dir=args.cache or "",
    )


def _ensure_reporting(cache, image, write):
    """``cache.ensure(image)``, printing corrupt-entry warnings as one line each through ``write``."""
    import warnings

    from nerfseg.masks.cache import CorruptEntryWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CorruptEntryWarning)
        result = cache.ensure(image)
    for w in caught:
        if issubclass(w.category, CorruptEntryWarning):
            write(f"warning: {w.message}")
        else:  # not ours: show it as Python would have
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return result


def run(args: argparse.Namespace) -> int:
    from collections import Counter
    from pathlib import Path

    from tqdm import tqdm

    from nerfseg.data.datasets import open_dataset
    from nerfseg.errors import DataError
    from nerfseg.masks.config import open_mask_cache
    from nerfseg.masks.preview import write_preview

    options = {"version": args.version} if args.dataset == "nuscenes" else {}
    dataset = open_dataset(args.dataset, args.root, args.split, load_images=False, **options)
    cache = open_mask_cache(masks_config(args), args.root)
    source = cache.source
    cache.remove_stale_temporaries()
    preview_dir = Path(args.preview_dir) if args.preview_dir else cache.folder / "preview"
    count = len(dataset) if args.limit <= 0 else min(args.limit, len(dataset))
    status: Counter = Counter()
    previews = 0
    failures: list[str] = []
    bar = tqdm(range(count), desc=f"masks ({source.name})", unit="scan", disable=args.no_progress)
    for index in bar:
        try:
            sample = dataset[index]
            for camera in sample.cameras:
                image = camera.load_image()
                mask_ids, state = _ensure_reporting(cache, image, tqdm.write)
                status[state] += 1
                if previews < args.preview:
                    name = f"{sample.sample_id.replace('/', '_')}_{camera.name}.png"
                    write_preview(
                        preview_dir / name,
                        image,
                        mask_ids,
                        camera,
                        args.dataset,
                        args.tau_mask,
                        args.tau_pix,
                        seed=index,
                    )
                    previews += 1
                camera.image = None  # keep memory flat over long splits
        except DataError as err:  # one bad file does not stop the run; reported again at the end
            failures.append(str(err))
            tqdm.write(f"error: {err}")
        bar.set_postfix(cached=status["cached"], computed=status["computed"] + status["recomputed"])
    total = sum(status.values())
    print(
        f"{total} image(s): {status['cached']} already cached, {status['computed']} computed, "
        f"{status['recomputed']} recomputed (corrupt entries); cache: {cache.folder}"
    )
    if previews:
        print(f"{previews} preview(s) in {preview_dir}")
    if failures:
        print(f"{len(failures)} sample(s) failed (fix them and run again; finished images stay cached):")
        for failure in failures:
            print(f"  {failure}")
        return 1
    return 0
