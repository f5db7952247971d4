"""`nerfseg check-data`: validate a dataset and list every problem with its file."""

from __future__ import annotations

import argparse

from nerfseg.data.datasets import DATASET_CHOICES

EPILOG = """\
Checks every scan: .bin size is a whole number of points, coordinates are finite, each label file has
one label per point and only known raw ids, calibration is present and well formed, poses / times have
one entry per scan, images decode. Exit status 1 when any problem is found.

examples:
  nerfseg check-data /data/semantickitti --dataset semantickitti
  nerfseg check-data /data/semantickitti --dataset scribblekitti     # scribbles/ and dense labels/
  nerfseg check-data /data/nuscenes --dataset nuscenes --version v1.0-mini
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-data",
        help="validate a dataset and list every problem with its file",
        description="Validate a dataset folder; print one line per problem, naming the file.",
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
    parser.add_argument("--version", default="v1.0-trainval", help="nuScenes version (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    progress = not args.no_progress
    if args.dataset == "nuscenes":
        from nerfseg.data.nuscenes import check_nuscenes

        problems = check_nuscenes(args.root, args.version, progress=progress)
    else:
        from nerfseg.data.semantickitti import check_semantickitti

        label_dir = ("scribbles", "labels") if args.dataset == "scribblekitti" else "labels"
        problems = check_semantickitti(args.root, label_dir=label_dir, progress=progress)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found in {args.root}")
        return 1
    print(f"{args.root}: no problems found ({args.dataset})")
    return 0
