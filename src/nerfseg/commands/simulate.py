"""`nerfseg simulate`: write the built-in synthetic driving-scene dataset (no download needed)."""

from __future__ import annotations

import argparse

from nerfseg.commands.options import add_set_option

EPILOG = """\
Procedural streets (road, lane markings, parking, kerbs and sidewalks, terrain, buildings, fences,
vegetation, trees, poles, signs, parked / moving cars, trucks, pedestrians, cyclists) seen by a rotating
LiDAR moving with the ego car and by ray-cast cameras. Labels are SemanticKITTI raw ids.

SemanticKITTI layout (default): OUT/sequences/SS/{velodyne,labels,scribbles,image_2,semantic_2,depth_2}/,
calib.txt, poses.txt, times.txt and times_image_2.txt (camera capture times). nuScenes layout
(--format nuscenes): OUT/v1.0-mini/*.json, samples/LIDAR_TOP/*.pcd.bin, samples/CAM_*/*.jpg,
lidarseg/v1.0-mini/*_lidarseg.bin, and (our extension) samples_semantic/CAM_*/*.png (raw lidarseg class
per pixel) and samples_depth/CAM_*/*.png (z-depth, mm).

Parallax: by default the camera is mounted like KITTI's (0.27 m ahead of the LiDAR) and captures
camera.time_offset_s (0.05 s) after the LiDAR sweep time; --no-parallax puts it at the LiDAR origin at the
sweep time. Measure the effect with `nerfseg parallax OUT`.

examples:
  nerfseg simulate data/sim --frames 40                      # sequences 00 (train) and 08 (val)
  nerfseg simulate data/sim --frames 100 --sequences 00,01,08 --seed 3
  nerfseg simulate data/sim_np --frames 20 --no-parallax
  nerfseg simulate data/sim --frames 100 --workers 2 --preview  # + previews/00_000000_{bev,camera}.png
  nerfseg simulate data/nus --format nuscenes --frames 10    # scenes scene-0061 (train), scene-0103 (val)
  nerfseg simulate data/sim --config my_sim.yaml --set lidar.beams=32
  nerfseg simulate data/sim --frames 10 --overwrite             # replace the dataset simulated there

OUT must be empty or missing; --overwrite replaces a dataset simulated there before. The dataset is written
into a hidden folder inside OUT and renamed into place once complete (an interrupted run leaves OUT as it
was).
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write the built-in synthetic LiDAR + camera dataset",
        description="Simulate driving scenes and write them in the SemanticKITTI or nuScenes layout.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "out", metavar="OUT", help="output folder (created; must be empty unless --overwrite is given)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the simulated dataset already in OUT (its sequences/, v1.0-*/, samples*/, lidarseg/, "
        "previews/ and sim_config.yaml; other files there are kept). The new dataset is written beside it "
        "and swapped in only once complete",
    )
    parser.add_argument("--frames", type=int, default=None, help="frames (scans) per sequence (default 40)")
    parser.add_argument(
        "--sequences",
        default="00,08",
        help="comma list of SemanticKITTI sequence ids, or a count S (S-1 training sequences and the "
        "validation sequence 08); for nuScenes the number of scenes (default %(default)s)",
    )
    parser.add_argument(
        "--format",
        choices=["semantickitti", "nuscenes"],
        default="semantickitti",
        help="output layout (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed (default 0; same seed, same data)"
    )
    parser.add_argument("--config", metavar="YAML", help="simulator config file (keys of SimConfig)")
    add_set_option(
        parser,
        "override one config value, e.g. lidar.beams=32 (repeatable)", dest="set",
    )
    parser.add_argument(
        "--no-parallax",
        action="store_true",
        help="camera at the LiDAR origin, capturing at the sweep time (no mount or time offset)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes rendering SemanticKITTI frames in parallel (same output; default %(default)s)",
    )
    parser.add_argument(
        "--preview",
        action="store_true",
        help="also write OUT/previews/SS_000000_{bev,camera}.png (top view of the first scan in class "
        "colours; camera image above its ground-truth classes); SemanticKITTI layout only",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from nerfseg.errors import ConfigError
    from nerfseg.sim.config import SimConfig, load_sim_config, validate_sim_config
    from nerfseg.sim.simulate import OutputFormat, parse_sequences, simulate, staged_output, write_previews
    from nerfseg.typed_config import apply_override

    if args.frames is not None and args.frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {args.frames}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    config = load_sim_config(args.config) if args.config else SimConfig()  # validated, naming the file
    for item in args.set:
        apply_override(config, item)
    if args.set:
        validate_sim_config(config, f"{args.config} with --set" if args.config else "--set")
    if args.frames is not None:
        config.frames = args.frames
    if args.seed is not None:
        config.seed = args.seed
    if args.no_parallax:
        config.no_parallax = True
    fmt = OutputFormat(args.format)
    sequences = parse_sequences(args.sequences)
    start = time.perf_counter()
    with staged_output(args.out, args.overwrite) as staging:
        names = simulate(
            staging,
            config,
            fmt,
            sequences if fmt is OutputFormat.SEMANTICKITTI else len(sequences),
            show_progress=not args.no_progress,
            workers=args.workers,
        )
        previews = []
        if args.preview and fmt is OutputFormat.SEMANTICKITTI:
            previews = [p.relative_to(staging) for seq in names for p in write_previews(staging, seq)]
    for path in previews:
        print(f"preview: {Path(args.out) / path}")
    print(
        f"wrote {len(names)} {'sequence' if fmt is OutputFormat.SEMANTICKITTI else 'scene'}(s) "
        f"({', '.join(names)}) x {config.frames} frames to {args.out} in {time.perf_counter() - start:.1f} s"
    )
    return 0
