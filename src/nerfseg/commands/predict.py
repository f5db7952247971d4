"""`nerfseg predict`: write benchmark submission files for a dataset split with a trained model."""

from __future__ import annotations

import argparse
import sys

from nerfseg.data.datasets import DATASET_CHOICES
from nerfseg.engine.precision import PRECISIONS

EPILOG = """\
Output (--out PRED), the benchmarks' submission formats read by `nerfseg evaluate`:
  semantickitti / scribblekitti: PRED/sequences/SS/predictions/FFFFFF.label  (uint32 raw ids)
  nuscenes:                      PRED/lidarseg/<split>/<token>_lidarseg.bin (uint8 1..16)
                                 + PRED/<split>/submission.json

examples:
  nerfseg predict runs/sup/model.pt --data data/sim --out runs/sup/pred
  nerfseg evaluate --dataset semantickitti --data data/sim --predictions runs/sup/pred
  nerfseg predict runs/nus/checkpoints/last.pt --data /data/nuscenes --dataset nuscenes \\
      --version v1.0-test --split test --out runs/nus/test_pred
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict a dataset split with a trained model and write submission files",
        description="Run a trained segmentor (LiDAR only; the NeRF head is not used) over a split.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", help="RUN_DIR/model.pt or RUN_DIR/checkpoints/last.pt")
    parser.add_argument("--data", required=True, metavar="ROOT", help="dataset root folder")
    parser.add_argument(
        "--dataset",
        choices=DATASET_CHOICES,
        help="dataset kind (default: the one the model was trained on)",
    )
    parser.add_argument("--split", default="val", help="split to predict: val (default), test or train")
    parser.add_argument("--version", help="nuScenes version (default: the training config's)")
    parser.add_argument("--out", required=True, metavar="PRED", help="prediction root folder")
    parser.add_argument("--batch-size", type=int, default=1, help="scans per forward pass (default 1)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (default: torch's; 1 is fastest on busy cores)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto (default): bf16 autocast on CUDA, float32 on the CPU; bf16: bf16 autocast on a device "
        "with native bf16 (CPUs with AVX512-BF16, AMX or ARM BF16: the full preset runs about 1.7x faster; "
        "the narrow tiny preset does not gain; see the README's results for its agreement with float32), "
        "and float32, with a note, on one without (emulated bf16 is about 30x slower)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nerfseg.engine.precision import resolve_precision
    from nerfseg.engine.predict import predict
    from nerfseg.engine.train import resolve_device

    choice = resolve_precision(args.precision, resolve_device(args.device))
    if choice.note:  # bf16 without native bf16: float32 instead, said once
        print(f"nerfseg predict: --precision {args.precision}: {choice.note}", file=sys.stderr)

    result = predict(
        args.checkpoint,
        args.data,
        args.out,
        dataset=args.dataset,
        split=args.split,
        version=args.version,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
        num_threads=args.threads,
        precision=choice.precision,
    )
    print(
        f"predicted {result.num_scans} scans ({result.num_points} points) in {result.seconds:.1f} s; "
        f"wrote {result.out_dir}"
    )
    return 0
