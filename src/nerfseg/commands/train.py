"""`nerfseg train`: supervised training from a YAML preset, resumable after a kill."""

from __future__ import annotations

import argparse

from nerfseg.commands.options import add_set_option

EPILOG = """\
Run folder (--out):
  config.yaml             the resolved config
  metrics.jsonl           one JSON line per log step (train/loss, train/lr, ...) and validation (val/miou)
  tensorboard/            TensorBoard events (tensorboard --logdir RUN_DIR)
  checkpoints/last.pt     written atomically every train.checkpoint_every steps and at the end
  model.pt                inference export (segmentor only) at the end, for `nerfseg predict`
  skipped.jsonl           unreadable scans trained past (data.on_bad_scan: skip), one JSON line each
  .lock                   held by the one process training in the folder (a second one is refused)

Interrupting: Ctrl-C stops at once (exit code 130); `--resume RUN_DIR` continues exactly from the last
checkpoint. Resuming a finished run (checkpoint at train.max_steps) reports it and changes nothing.
A bad scan mid-run: `--set data.on_bad_scan=skip` (also when resuming) names it once on stderr and in
skipped.jsonl and trains on with another scan in its place (default `error` stops naming the file).

Methods (the top-level `method:` key; presets configs/<dataset>/<method>[_<F>pct].yaml):
  supervised         labeled scans only
  mean-teacher       + EMA-teacher point pseudo-labels on unlabeled scans (another augmentation)
  lasermix           + labeled / unlabeled scans mixed by laser-inclination areas, + mean-teacher
  projection         + points projected into cached masks that vote with the teacher's classes
  nerf               + camera rays: teacher render fused with cached masks -> pixel pseudo-labels for the
                       student's rendered rays; + the LiDAR-ray geometry loss on every scan (ours)
  nerf+mean-teacher, nerf+lasermix   the two combined
  geometry           supervised + the LiDAR-ray geometry loss only (the control, no cameras)
Unlabeled scans carry no labels into any loss; the camera methods read masks from the cache of
`nerfseg masks --config CONFIG` (same masks: section). Labeled scans: data.labeled_split (a split file,
`nerfseg make-splits`, splits/ holds SemanticKITTI's) or the seeded data.label_fraction.

Useful keys for --set (any config key works; values are checked against the key's type):
  method, data.root, data.labeled_split, data.label_fraction, data.batch_size, data.num_workers,
  data.on_bad_scan (error|skip),
  train.max_steps, train.lr, train.checkpoint_every, train.val_every, train.seed, train.device,
  model.segmentor.preset, ssl.teacher.ema_decay, ssl.camera.stride, ssl.camera.sampler.budget

examples:
  nerfseg train configs/synthetic/supervised.yaml --out runs/sup
  nerfseg train configs/semantickitti/supervised_10pct.yaml --out runs/sk10 \\
      --set data.root=/data/semantickitti --set train.max_steps=20000
  nerfseg masks --config configs/synthetic/nerf.yaml --set data.root=data/sim
  nerfseg train configs/synthetic/nerf.yaml --out runs/nerf --set data.root=data/sim \\
      --set data.label_fraction=0.025
  nerfseg train configs/semantickitti/nerf_10pct.yaml --out runs/sk_nerf10 --set data.root=/data/sk
  nerfseg train --resume runs/sup          # continue a killed run exactly where its last checkpoint was
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the LiDAR segmentor with a method (supervised, mean-teacher, lasermix, nerf, ...)",
        description="Train from a YAML preset (see configs/). Runs resume exactly after a kill.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", help="YAML preset, e.g. configs/synthetic/supervised.yaml")
    parser.add_argument("--out", metavar="RUN_DIR", help="run folder to create (required unless --resume)")
    add_set_option(
        parser,
        "override one config key, e.g. --set train.lr=0.002 (repeatable)",
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue RUN_DIR from checkpoints/last.pt with its stored config (CONFIG / --set may only "
        "change harmless keys such as data.root or data.num_workers)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from nerfseg.config import load_config
    from nerfseg.engine.train import train
    from nerfseg.errors import ConfigError

    if args.resume:
        run_dir = Path(args.resume)
        if args.out and Path(args.out).resolve() != run_dir.resolve():
            raise ConfigError("--out and --resume name different run folders")
        stored = run_dir / "config.yaml"
        if not stored.is_file():
            raise ConfigError(f"{stored}: not found (is {run_dir} a nerfseg run folder?)")
        overrides = list(args.overrides)
        cfg = load_config(args.config or stored, overrides)
    else:
        if not args.config or not args.out:
            raise ConfigError("give a CONFIG and --out RUN_DIR (or --resume RUN_DIR)")
        run_dir = Path(args.out)
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise ConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        cfg = load_config(args.config, args.overrides)
    if args.no_progress:
        cfg.train.progress = False
    from nerfseg.engine.interrupt import InterruptWatchdog

    watchdog = InterruptWatchdog(run_dir).start()  # a Ctrl-C during one long torch call ends it too
    try:
        result = train(cfg, run_dir, resume=bool(args.resume))
    except KeyboardInterrupt as interrupt:
        _exit_interrupted(interrupt)
    finally:
        watchdog.stop()
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 alone reports
        return 0
    val = "n/a" if result.val_miou is None else f"{100 * result.val_miou:.2f}"
    loss = result.train.get("loss")
    loss_text = "n/a" if loss is None else f"{loss:.4f}"
    if result.already_finished:
        print(
            f"{run_dir} is already finished: its checkpoint is at step {result.step} of train.max_steps "
            f"{cfg.train.max_steps}; final train loss {loss_text}; val mIoU {val} %. Nothing changed; "
            f"inference model: {run_dir / 'model.pt'}"
        )
        return 0
    print(
        f"trained {result.step} steps in {result.seconds:.1f} s; final train loss {loss_text}; "
        f"val mIoU {val} %"
    )
    print(f"checkpoint: {run_dir / 'checkpoints' / 'last.pt'}; inference model: {run_dir / 'model.pt'}")
    return 0


def _exit_interrupted(interrupt: KeyboardInterrupt) -> None:
    """End the process after a Ctrl-C, at once: the run's files are closed and its loader workers gone
    (:func:`nerfseg.engine.train.train` saw to that), so the interpreter's own teardown, which takes seconds
    with torch loaded, is skipped; a second Ctrl-C meanwhile ends it quietly too. Exit code 130."""
    import sys

    from nerfseg.engine.interrupt import (
        TrainingInterrupted,
        kill_worker_processes,
        quiet_exit,
        quiet_second_interrupts,
    )

    quiet_second_interrupts()
    if not isinstance(interrupt, TrainingInterrupted):  # stopped before the loop started
        print("nerfseg train: interrupted", file=sys.stderr)
    kill_worker_processes()
    quiet_exit()
