"""`nerfseg simulate`: write the built-in synthetic driving-scene dataset (no download needed)."""

from __future__ import annotations

import argparse

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
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write the built-in synthetic LiDAR + camera dataset",
        description="Simulate driving scenes and write them in the SemanticKITTI or nuScenes layout.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", metavar="OUT", help="output folder (created)")
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
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one config value, e.g. lidar.beams=32 (repeatable)",
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

    from nerfseg.sim.config import SimConfig, load_sim_config, validate_sim_config
    from nerfseg.sim.simulate import OutputFormat, parse_sequences, simulate, write_previews
    from nerfseg.typed_config import apply_override

    config = load_sim_config(args.config) if args.config else SimConfig()
    for item in args.set:
        apply_override(config, item)
    if args.frames is not None:
        config.frames = args.frames
    if args.seed is not None:
        config.seed = args.seed
    if args.no_parallax:
        config.no_parallax = True
    validate_sim_config(config, args.config or "--set")
    fmt = OutputFormat(args.format)
    sequences = parse_sequences(args.sequences)
    start = time.perf_counter()
    names = simulate(
        args.out,
        config,
        fmt,
        sequences if fmt is OutputFormat.SEMANTICKITTI else len(sequences),
        show_progress=not args.no_progress,
        workers=args.workers,
    )
    if args.preview and fmt is OutputFormat.SEMANTICKITTI:
        for seq in names:
            for path in write_previews(args.out, seq):
                print(f"preview: {path}")
    print(
        f"wrote {len(names)} {'sequence' if fmt is OutputFormat.SEMANTICKITTI else 'scene'}(s) "
        f"({', '.join(names)}) x {config.frames} frames to {args.out} in {time.perf_counter() - start:.1f} s"
    )
    return 0
