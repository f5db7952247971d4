"""The one `nerfseg` command. Each sub-command lives in `nerfseg.commands.<name>` and exposes
`register(subparsers)`; heavy imports (torch, ...) happen inside the command's run function so that
`nerfseg --help` stays instant."""

from __future__ import annotations

import argparse
import os
import sys

from nerfseg import __version__
from nerfseg.commands import (
    check_data,
    compare,
    demo,
    evaluate,
    export,
    make_splits,
    masks,
    parallax,
    predict,
    render,
    simulate,
    train,
    view,
)
from nerfseg.errors import UserFacingError

# Explicit list of command modules (no string registry); each adds itself with register(subparsers).
COMMANDS: tuple = (
    check_data, evaluate, masks, simulate, parallax, make_splits, train, export, predict, render, compare,
    demo, view,
)  # fmt: skip

DESCRIPTION = """\
nerfseg: semi-supervised LiDAR semantic segmentation that learns from unlabeled scans through the
cameras recorded with them (an auxiliary NeRF head renders pixel semantics along camera rays and is
supervised by mask-fused pseudo-labels). Inference uses LiDAR alone.

Typical session on the built-in synthetic data (no download needed):
  nerfseg demo --out demo_out                    # all of it in one command: data, 3 methods, report.md
  nerfseg simulate data/sim --frames 40          # make a small SemanticKITTI-layout dataset
  nerfseg check-data data/sim --dataset semantickitti
  nerfseg train configs/synthetic/supervised.yaml --out runs/sup
  nerfseg export runs/sup/checkpoints/last.pt --out runs/sup/export.pt   # segmentor only, like model.pt
  nerfseg predict runs/sup/checkpoints/last.pt --data data/sim --out runs/sup/pred
  nerfseg evaluate --dataset semantickitti --data data/sim --predictions runs/sup/pred

Run `nerfseg <command> --help` for each command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nerfseg", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"nerfseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        if argv is None:  # the process's entry point: skip Python's teardown (seconds with torch loaded);
            # every write of ours is atomic, so nothing is left half-written
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    except UserFacingError as err:  # one clear line, no traceback, for bad input
        print(f"nerfseg {args.command}: error: {err}", file=sys.stderr)
        return 1
