"""`nerfseg make-splits`: write labeled-subset split files (data.labeled_split) for several fractions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nerfseg.data.datasets import DATASET_CHOICES

EPILOG = """\
Output: one file per fraction, DIR/<dataset>_<F>pct_seed<S>.txt (e.g. semantickitti_10pct_seed0.txt),
listing the labeled training scans one id a line, sorted, after a '#' header. Ids: SS/FFFFFF for
semantickitti / scribblekitti, LiDAR sample_data tokens for nuscenes, taken from the official train
split (nuscenes v1.0-mini: mini_train). A fraction F keeps max(1, round(F/100 * N)) of the N train
scans; with one seed every smaller fraction is a subset of every larger one.
Train with: --set data.labeled_split=FILE

For the KITTI layouts without --data (or when --data does not exist) the scans are listed from the
published sequence lengths (19,130 train scans), which is how splits/semantickitti/ was made.

examples:
  nerfseg make-splits --dataset semantickitti --fractions 1,10,20,50 --seed 0 --out splits/semantickitti
  nerfseg make-splits --dataset semantickitti --data data/sim --fractions 10 --seed 0 --out runs/splits
  nerfseg make-splits --dataset nuscenes --data /data/nuscenes --version v1.0-trainval \\
      --fractions 1,10 --seed 0 --out splits/nuscenes
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "make-splits",
        help="write labeled-subset split files (1 %%, 10 %%, ... of the training scans)",
        description="Sample the labeled training scans of a semi-supervised run, for several fractions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", required=True, choices=DATASET_CHOICES, help="dataset kind")
    parser.add_argument(
        "--data",
        metavar="ROOT",
        help="dataset root (required for nuscenes; KITTI layouts: default the published sequence lengths)",
    )
    parser.add_argument(
        "--version", help="nuScenes version, e.g. v1.0-mini (default: the one v1.0-* folder under --data)"
    )
    parser.add_argument(
        "--fractions",
        default="1,10,20,50",
        help="comma-separated percentages of the train scans (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default %(default)s)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.set_defaults(func=run)


def parse_percentages(text: str) -> list[float]:
    """``"1,10,20,50"`` -> [1.0, 10.0, 20.0, 50.0]; ConfigError for a value outside (0, 100]."""
    from nerfseg.errors import ConfigError

    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(f"--fractions: {part.strip()!r} is not a number") from None
        if not 0.0 < value <= 100.0:
            raise ConfigError(f"--fractions: {value:g} is not a percentage in (0, 100]")
        values.append(value)
    if len(set(values)) != len(values):
        raise ConfigError(f"--fractions: repeated value in {text!r}")
    return sorted(values)


def train_ids(dataset: str, data: str | None, version: str | None) -> tuple[list[str], str]:
    """(ids of the official train split, where they came from)."""
    from nerfseg.data.datasets import DatasetKind, open_dataset
    from nerfseg.data.splits import published_semantickitti_ids
    from nerfseg.errors import ConfigError

    kind = DatasetKind(dataset)
    if kind is DatasetKind.NUSCENES:
        if not data:
            raise ConfigError("--data is required for nuscenes (the tokens come from its tables)")
        reader = open_dataset(kind, data, "train", version=version)  # mini_train on v1.0-mini
        return list(reader.sample_ids), f"{data} ({reader.version}, {reader.split})"
    if not data or not Path(data).exists():
        if data:
            note = f"nerfseg make-splits: {data} not found; using the published sequence lengths"
            print(note, file=sys.stderr)
        return published_semantickitti_ids(), "published SemanticKITTI sequence lengths (train 00-07, 09, 10)"
    reader = open_dataset(kind, data, "train")
    return list(reader.sample_ids), f"{data} (train)"


def run(args: argparse.Namespace) -> int:
    from nerfseg.data.splits import labeled_split_ids, split_file_name, write_split_file
    from nerfseg.errors import DataError

    percentages = parse_percentages(args.fractions)
    ids, source = train_ids(args.dataset, args.data, args.version)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DataError(out, "is a file; --out must be a folder")
    for percent in percentages:
        chosen = labeled_split_ids(ids, percent / 100.0, args.seed)
        path = out / split_file_name(args.dataset, percent, args.seed)
        header = (
            f"nerfseg make-splits: {args.dataset}, {percent:g} % of {len(ids)} train scans = {len(chosen)}, "
            f"seed {args.seed}\nids from {source}"
        )
        try:
            write_split_file(path, chosen, header=header)
        except OSError as err:
            raise DataError(path, f"cannot write ({err.strerror or err})") from None
        print(f"wrote {path} ({len(chosen)} of {len(ids)} scans)")
    return 0
