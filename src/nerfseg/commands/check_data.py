"""`nerfseg check-data`: validate a dataset and list every problem with its file."""

from __future__ import annotations

import argparse

from nerfseg.data.datasets import DATASET_CHOICES

EPILOG = """\
Checks every scan with the readers' own rules: .bin size is a whole number of points, coordinates are
finite, each label file has one label per point and only known raw ids, calibration is well formed,
poses / times have one entry per scan and times.txt increases strictly, images decode and have the
camera's size (semantic_2/ and depth_2/ that of their image). Exit status 1 when any error is found.

A SemanticKITTI sequence without calib.txt or image_2/ (a LiDAR-only copy) is a warning, not an error:
LiDAR-only training, predict and evaluate need neither; the camera methods refuse such scans.
--require-cameras makes it an error.

nuScenes: without --version the one v1.0-* folder under ROOT is used (several: give --version).

examples:
  nerfseg check-data /data/semantickitti --dataset semantickitti
  nerfseg check-data /data/semantickitti --dataset semantickitti --require-cameras   # for nerf / projection
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
    parser.add_argument(
        "--version", help="nuScenes version, e.g. v1.0-mini (default: the one v1.0-* folder under ROOT)"
    )
    parser.add_argument(
        "--require-cameras",
        action="store_true",
        help="a sequence without calib.txt or image_2/ is an error (the camera methods need both), not a "
        "warning",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def camera_methods() -> list[str]:
    """Names of the training methods that read camera images (from their recipes)."""
    from nerfseg.ssl.config import Method
    from nerfseg.ssl.recipe import recipe_for

    return [method.value for method in Method if recipe_for(method).uses_masks]


def run(args: argparse.Namespace) -> int:
    from nerfseg.data.checks import errors

    progress = not args.no_progress
    if args.dataset == "nuscenes":
        from nerfseg.data.nuscenes import check_nuscenes

        problems = check_nuscenes(args.root, args.version, progress=progress)
    else:
        from nerfseg.data.semantickitti import check_semantickitti

        label_dir = ("scribbles", "labels") if args.dataset == "scribblekitti" else "labels"
        problems = check_semantickitti(
            args.root, label_dir=label_dir, progress=progress, require_cameras=args.require_cameras
        )
    for problem in problems:
        print(problem)
    failed = errors(problems)
    warnings = len(problems) - len(failed)
    if warnings:
        print(
            f"{warnings} warning(s): camera supervision (methods {', '.join(camera_methods())}) needs "
            "calib.txt and image_2/; LiDAR-only training, predict and evaluate work without them "
            "(--require-cameras makes this an error)"
        )
    if failed:
        print(f"{len(failed)} problem(s) found in {args.root}")
        return 1
    print(f"{args.root}: no problems found ({args.dataset})")
    return 0
