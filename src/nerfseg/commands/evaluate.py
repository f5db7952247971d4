"""`nerfseg evaluate`: score benchmark-format predictions with the official rules."""

from __future__ import annotations

import argparse

from nerfseg.data.datasets import DATASET_CHOICES

EPILOG = """\
Prediction layouts (the benchmarks' submission formats):
  semantickitti / scribblekitti: PRED/sequences/SS/predictions/FFFFFF.label  (uint32 raw ids, one per point)
  nuscenes:                      PRED/lidarseg/<split>/<lidar token>_lidarseg.bin  (uint8 classes 1..16)

Scoring rules: SemanticKITTI as semantic-kitti-api evaluate_semantics.py (mIoU = mean over all 19
classes, ignore excluded); nuScenes as nuscenes-devkit lidarseg (nanmean over the 16 classes).
ScribbleKITTI is scored on the dense labels of sequence 08.

examples:
  nerfseg evaluate --dataset semantickitti --data /data/semantickitti --predictions runs/sup/pred
  nerfseg evaluate --dataset nuscenes --data /data/nuscenes --version v1.0-mini \\
      --predictions runs/nus/pred --split mini_val --json runs/nus/mini_val_scores.json
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score benchmark-format predictions (per-class IoU, mIoU, accuracy)",
        description="Score prediction files against a dataset's labels as the official evaluators do.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dataset",
        required=True,
        choices=DATASET_CHOICES,
        help="dataset kind",
    )
    parser.add_argument("--data", required=True, metavar="ROOT", help="dataset root folder")
    parser.add_argument("--predictions", required=True, metavar="PRED", help="prediction root folder")
    parser.add_argument(
        "--split",
        default="val",
        help="split to evaluate (default val); nuScenes also mini_train / mini_val",
    )
    parser.add_argument(
        "--version", help="nuScenes version, e.g. v1.0-mini (default: the one v1.0-* folder under ROOT)"
    )
    parser.add_argument("--json", metavar="OUT", help="also write the scores to this JSON file")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on a SemanticKITTI prediction with raw ids outside the label map (default: scored as "
        "unlabeled, as the official script does, with one warning naming the files; nuScenes class indices "
        "outside 1..16 are always an error)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    import warnings

    from nerfseg.engine.evaluate import UnmappedPredictionWarning, evaluate_predictions
    from nerfseg.io_utils import atomic_write_text, ensure_writable_file

    if args.json:
        ensure_writable_file(args.json, "--json")  # before the work, not after it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnmappedPredictionWarning)
        scores, count = evaluate_predictions(
            args.dataset, args.data, args.predictions, split=args.split, version=args.version,
            progress=not args.no_progress, strict=args.strict,
        )  # fmt: skip
    for w in caught:
        if issubclass(w.category, UnmappedPredictionWarning):
            print(f"nerfseg evaluate: warning: {w.message}", file=sys.stderr)
        else:  # not ours: show it as Python would have
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    print(f"{args.dataset} {args.split}: {count} scans, {scores.rule} rule")
    print(scores.format_table())
    if args.json:
        payload = {"dataset": args.dataset, "split": args.split, "num_scans": count, **scores.to_dict()}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
