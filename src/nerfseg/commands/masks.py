"""`nerfseg masks`: precompute (and cache) class-agnostic masks for every camera image of a split."""

from __future__ import annotations

import argparse

from nerfseg.commands.options import add_set_option
from nerfseg.data.datasets import DATASET_CHOICES

EPILOG = """\
Settings: the mask source and its parameters come from the run config's masks: section (the same section
`nerfseg train` reads), given with --config CONFIG and changed with --set masks.KEY=VALUE; without --config
the defaults of nerfseg.masks.config.MasksConfig apply (built-in Felzenszwalb superpixels). --config also
supplies the dataset (data.dataset, data.root, data.version, data.train_split); ROOT, --dataset, --version and
--split override them. Keys: masks.source (superpixel | sam), masks.superpixel.{method, scale, sigma,
min_size, n_segments, compactness}, masks.sam.{checkpoint, model_type, device, points_per_side, ...},
masks.cache_dir.

Masks are cached under ROOT/.nerfseg_cache/masks/<source>-<settings hash>/<image hash>.npz (or under
masks.cache_dir), keyed by the image content and every mask setting, written atomically. Training opens the
same folder from the same config (nerfseg.masks.config.open_run_mask_cache), so give both the same CONFIG
and --set masks.* overrides. A killed run is resumed by running the same command again (valid entries are
skipped); corrupt entries are reported and recomputed.

--preview N writes a PNG for each of the first N images (default folder: the cache folder's preview/):
image, masks (random colours) and, when the dataset has per-pixel ground truth (the built-in simulator's
semantic_2/ or samples_semantic/), the argmax of a noisy stand-in teacher distribution made from it (noise
model: nerfseg.masks.noisy_teacher) and its fused pseudo-labels (--tau-mask, --tau-pix; default: the
config's ssl.camera.fusion). Without ground truth the preview shows image and masks only.

examples:
  nerfseg masks data/sim                                               # superpixels, train split
  nerfseg masks data/sim --split val --preview 4
  nerfseg masks --config configs/synthetic/supervised.yaml             # data.root / dataset of the config
  nerfseg masks --config configs/semantickitti/supervised.yaml --set data.root=/data/semantickitti \\
      --set masks.source=sam --set masks.sam.checkpoint=weights/sam_vit_h_4b8939.pth \\
      --set masks.sam.model_type=vit_h --set masks.sam.device=cuda
  nerfseg masks /data/nuscenes --dataset nuscenes --version v1.0-mini --split mini_train \\
      --set masks.cache_dir=/scratch/m --set masks.superpixel.method=slic
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "masks",
        help="precompute and cache SAM / superpixel masks for every camera image of a split",
        description="Compute class-agnostic masks for every camera image of a dataset split and cache them, "
        "with the mask settings of a run config (--config, --set masks.KEY=VALUE).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "root", metavar="ROOT", nargs="?", help="dataset root folder (default: data.root of --config)"
    )
    parser.add_argument(
        "--config",
        metavar="CONFIG",
        help="run config (YAML preset) whose masks: and data: sections are used (default: built-in defaults)",
    )
    add_set_option(
        parser,
        "override one config key, e.g. --set masks.source=sam (repeatable; as for `nerfseg train`)",
    )
    parser.add_argument(
        "--dataset",
        choices=DATASET_CHOICES,
        help="dataset layout (default: data.dataset of the config, semantickitti)",
    )
    parser.add_argument(
        "--split",
        help="split whose camera images get masks: train, val, test (nuScenes v1.0-mini: mini_train, "
        "mini_val) (default: data.train_split of the config, train)",
    )
    parser.add_argument(
        "--version", help="nuScenes version (default: the config's data.version; auto: the one v1.0-* folder)"
    )
    parser.add_argument(
        "--preview", type=int, default=0, metavar="N", help="write a preview PNG of the first N images"
    )
    parser.add_argument(
        "--preview-dir", metavar="DIR", help="where previews go (default <cache folder>/preview)"
    )
    parser.add_argument(
        "--limit", type=int, default=0, metavar="N", help="only the first N samples (0 = all)"
    )
    parser.add_argument(
        "--shard", default="0/1", metavar="I/N",
        help="compute only shard I of N (samples whose index is I mod N), e.g. one per process or machine; "
        "all shards write into the same cache (default 0/1: everything)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    fu = parser.add_argument_group("preview fusion (default: the config's ssl.camera.fusion)")
    fu.add_argument("--tau-mask", type=float, help="min. mean class prob. of a mask")
    fu.add_argument("--tau-pix", type=float, help="min. class prob. of a lone pixel")
    parser.set_defaults(func=run)


def run_config(args: argparse.Namespace):
    """The run :class:`~nerfseg.config.Config` the arguments describe: ``--config`` (or the defaults) with
    ``--set`` overrides, then ROOT / ``--dataset`` / ``--version`` / ``--split`` over its data section.
    ``open_run_mask_cache`` of the result is the cache training opens from the same config."""
    from nerfseg.config import DATASET_CHOICES as CONFIG_DATASETS
    from nerfseg.config import load_config
    from nerfseg.errors import ConfigError

    if args.root is None and args.config is None:
        raise ConfigError("give the dataset ROOT or a --config whose data.root names it")
    cfg = load_config(args.config, args.overrides)
    data = cfg.data
    data.root = args.root if args.root is not None else data.root
    data.dataset = args.dataset or data.dataset
    data.version = args.version or data.version
    data.train_split = args.split or data.train_split
    if data.dataset not in CONFIG_DATASETS:  # pragma: no cover - the config validated it
        raise ConfigError(f"data.dataset must be one of {', '.join(CONFIG_DATASETS)}")
    return cfg


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

    from nerfseg.commands.masks_preview import write_preview
    from nerfseg.data.datasets import open_dataset
    from nerfseg.errors import DataError
    from nerfseg.io_utils import ensure_writable_dir
    from nerfseg.masks.config import open_run_mask_cache
    from nerfseg.masks.shard import parse_shard

    shard = parse_shard(args.shard)
    cfg = run_config(args)
    data = cfg.data
    fusion = cfg.ssl.camera.fusion
    tau_mask = fusion.tau_mask if args.tau_mask is None else args.tau_mask
    tau_pix = fusion.tau_pix if args.tau_pix is None else args.tau_pix
    options = {"version": data.version} if data.dataset == "nuscenes" else {}
    dataset = open_dataset(data.dataset, data.root, data.train_split, load_images=False, **options)
    cache = open_run_mask_cache(cfg)
    source = cache.source
    ensure_writable_dir(cache.folder, "masks.cache_dir" if cfg.masks.cache_dir else "mask cache folder")
    cache.remove_stale_temporaries()
    preview_dir = Path(args.preview_dir) if args.preview_dir else cache.folder / "preview"
    if args.preview > 0:
        ensure_writable_dir(preview_dir, "--preview-dir" if args.preview_dir else "mask preview folder")
    source.prepare()  # a bad SAM checkpoint: one error here, before any image
    count = len(dataset) if args.limit <= 0 else min(args.limit, len(dataset))
    status: Counter = Counter()
    previews = 0
    failures: list[str] = []
    desc = f"masks ({source.name})" if shard.count == 1 else f"masks ({source.name}, shard {shard})"
    indices = shard.indices(count)
    bar = tqdm(indices, desc=desc, unit="scan", disable=args.no_progress)
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
                        data.dataset,
                        tau_mask,
                        tau_pix,
                        seed=index,
                    )
                    previews += 1
                camera.image = None  # keep memory flat over long splits
        except DataError as err:  # one bad file does not stop the run; reported again at the end
            failures.append(str(err))
            tqdm.write(f"error: {err}")
        bar.set_postfix(cached=status["cached"], computed=status["computed"] + status["recomputed"])
    total = sum(status.values())
    scope = "" if shard.count == 1 else f"shard {shard} ({len(indices)} of {count} samples): "
    print(
        f"{scope}{total} image(s): {status['cached']} already cached, {status['computed']} computed, "
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
