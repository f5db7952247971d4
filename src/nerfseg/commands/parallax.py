"""`nerfseg parallax`: how often projecting LiDAR points into the camera gives them the wrong class."""

from __future__ import annotations

import argparse

EPILOG = """\
Over the camera-visible LiDAR points of a SemanticKITTI-layout dataset with ground-truth images
(semantic_2/, written by `nerfseg simulate`), counts the points whose projected pixel's class differs from
the point's own class: the label noise that projection-based 2D->3D transfer suffers from parallax (camera
and LiDAR at different places and capture times). Uses the dataset reader's ego-motion compensated
LiDAR->camera transform.

examples:
  nerfseg simulate data/sim --frames 20 && nerfseg parallax data/sim
  nerfseg simulate data/sim_np --frames 20 --no-parallax && nerfseg parallax data/sim_np
  nerfseg parallax data/sim --json parallax.json --per-class
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "parallax",
        help="measure LiDAR->camera projection label errors caused by parallax",
        description="Fraction of camera-visible LiDAR points whose projected pixel shows another class.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("root", metavar="ROOT", help="SemanticKITTI-layout dataset with semantic_2/ images")
    parser.add_argument("--max-frames", type=int, default=None, help="only the first N scans")
    parser.add_argument("--per-class", action="store_true", help="also print the fraction per raw class")
    parser.add_argument("--json", metavar="FILE", help="write the numbers as JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def _nothing_measured(count) -> str:
    """Why a parallax count has no camera-visible point (a ParallaxCount with ``visible == 0``)."""
    scans = f"{count.scans} scan(s)"
    if count.images == 0:
        return (
            f"no camera image in the {scans} read (parallax needs calib.txt and image_2/ with "
            "semantic_2/ beside the scans): nothing to measure"
        )
    return (
        f"no labeled LiDAR point of the {scans} projects into their {count.images} camera image(s) "
        "(check calib.txt's P2 and Tr, and that labels/ are not all unlabeled): nothing to measure"
    )


def run(args: argparse.Namespace) -> int:
    import json

    from nerfseg.errors import ConfigError, DataError
    from nerfseg.io_utils import atomic_write_text, ensure_writable_file
    from nerfseg.sim.classes import CLASS_BY_RAW_ID
    from nerfseg.sim.parallax import measure_semantickitti

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.json:
        ensure_writable_file(args.json, "--json")  # before the work, not after it
    count = measure_semantickitti(args.root, args.max_frames, progress=not args.no_progress)
    if count.visible == 0:
        raise DataError(args.root, _nothing_measured(count))
    print(
        f"{args.root}: {count.mismatched} of {count.visible} camera-visible LiDAR points project onto a "
        f"pixel of another class: parallax error {100 * count.fraction:.2f}%"
    )
    if args.per_class:
        for raw, (visible, bad) in sorted(count.per_class.items()):
            name = CLASS_BY_RAW_ID[raw].name if raw in CLASS_BY_RAW_ID else str(raw)
            print(f"  {raw:4d} {name:<18s} {visible:9d} points  {100 * bad / max(visible, 1):6.2f}% wrong")
    if args.json:
        atomic_write_text(
            args.json,
            json.dumps(
                {
                    "root": str(args.root),
                    "visible_points": count.visible,
                    "mismatched_points": count.mismatched,
                    "parallax_fraction": count.fraction,
                    "per_class": {
                        str(k): {"visible": v, "mismatched": m} for k, (v, m) in count.per_class.items()
                    },
                },
                indent=2,
            ),
        )
    return 0
