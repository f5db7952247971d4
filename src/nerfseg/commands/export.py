"""`nerfseg export`: write the inference model (segmentor only) of a training checkpoint."""

from __future__ import annotations

import argparse

from nerfseg.engine.checkpoint import DEFAULT_EXPORT_WEIGHTS, EXPORT_WEIGHTS

EPILOG = """\
The export holds the segmentor's weights, the config and the class names: no NeRF head, no optimiser,
no EMA teacher besides the one chosen. It is the same file a run writes as RUN_DIR/model.pt, and what
`nerfseg predict` reads (LiDAR only: the dataset needs no images or calibration).

--weights: student = the trained network; teacher = its EMA teacher (mean-teacher methods);
auto = the teacher when the checkpoint has one, else the student; the default is the student (measured:
benchmarks/results/ssl_synthetic.md).

examples:
  nerfseg export runs/mt/checkpoints/last.pt --out runs/mt/model_teacher.pt
  nerfseg export runs/mt/checkpoints/step_0010000.pt --out runs/mt/model_10k.pt --weights student
  nerfseg predict runs/mt/model_teacher.pt --data data/sim --out runs/mt/pred
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a training checkpoint's segmentor (no NeRF head) as an inference model",
        description="Export the student's or the EMA teacher's segmentor of a training checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", help="training checkpoint, e.g. RUN_DIR/checkpoints/last.pt")
    parser.add_argument("--out", required=True, metavar="MODEL", help="output file, e.g. model.pt")
    parser.add_argument(
        "--weights",
        default=DEFAULT_EXPORT_WEIGHTS,
        choices=EXPORT_WEIGHTS,
        help="which segmentor to export (default %(default)s: teacher when present, else student)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nerfseg.engine.checkpoint import inference_payload, load_checkpoint, write_inference_export

    payload = inference_payload(load_checkpoint(args.checkpoint), args.weights, args.checkpoint)
    path = write_inference_export(args.out, payload, source=args.checkpoint)
    print(f"wrote {path} ({payload['weights']} weights, step {payload['step']})")
    return 0
