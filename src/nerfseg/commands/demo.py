"""`nerfseg demo`: the main job end to end on a small simulated dataset, in minutes on a CPU: simulate, cache
superpixel masks, train ``supervised``, ``projection`` and ``nerf`` at a low label fraction, evaluate all
three and write the comparison report (:mod:`nerfseg.commands.compare`)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nerfseg.commands.options import add_set_option

METHODS = ("supervised", "projection", "nerf")
"""The methods the demo trains, each from ``configs/demo/<method>.yaml``."""
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "demo"
"""The demo presets of this source checkout."""
STATE_FILE = "demo.json"

EPILOG = """\
Stages (each prints a line, then its own progress):
  1 simulate   DIR/data: a SemanticKITTI-layout dataset (sequence 00 = train, 08 = val, --frames each)
  2 masks      superpixel masks of every training image into the dataset's mask cache
  3-5 train    DIR/runs/{supervised,projection,nerf} from configs/demo/<method>.yaml (label fraction and
               steps there, or --steps / --set)
  6 report     DIR/report.md through `nerfseg compare`: score table, figures (DIR/figures), one 3D page per
               method (DIR/pages); DIR/demo.json holds the settings and each stage's wall / CPU seconds

Re-running into the same DIR reuses what is finished (the dataset, finished trainings), resumes an
interrupted training from its last checkpoint and rebuilds the report. A DIR that is not empty and holds no
demo, or a demo with other settings, is refused (choose another --out or delete it).

examples:
  nerfseg demo --out demo_out                  # what `make demo` runs
  nerfseg demo --out /tmp/quick --steps 10 --frames 6
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="simulate data, train supervised / projection / nerf, write a comparison report",
        description="The main job end to end on the built-in synthetic data (no download): simulate, masks, "
        "three trainings at a low label fraction, evaluation and DIR/report.md with figures.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default demo_out)")
    parser.add_argument("--frames", type=int, default=16, help="scans per sequence (default 16)")
    parser.add_argument("--steps", type=int, default=0, help="training steps per method (default: presets')")
    add_set_option(
        parser,
        "training config override for every method (repeatable), e.g. data.label_fraction=0.25",
    )
    parser.add_argument("--configs", metavar="DIR", help="folder of the presets (default: configs/demo)")
    parser.add_argument("--workers", type=int, default=2, help="simulator processes (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.set_defaults(func=run)


@dataclass
class DemoSettings:
    """What the demo's outputs depend on; a re-run into the same folder must have the same."""

    frames: int = 16
    steps: int = 0
    overrides: list[str] = field(default_factory=list)
    sim_set: list[str] = field(default_factory=list)


SIM_SET = ["frame_interval_s=0.5", "camera.image_scale=0.5"]
"""Simulator settings of the demo data: scans 0.5 s apart (4 m at 8 m/s, so the scans differ) and a half-size
front camera (621 x 187 pixels), which halves the cost of masks and camera rays."""


@dataclass
class Stage:
    """One timed stage: wall and CPU seconds (this process and its finished children)."""

    name: str
    wall_s: float
    cpu_s: float
    note: str = ""


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Timer:
    """Context manager appending a :class:`Stage` to ``stages``."""

    def __init__(self, stages: list[Stage], name: str):
        self.stages, self.name, self.note = stages, name, ""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            wall, cpu = time.perf_counter() - self.wall, _cpu_seconds() - self.cpu
            self.stages.append(Stage(self.name, round(wall, 1), round(cpu, 1), self.note))


def check_out_dir(out: Path, settings: DemoSettings) -> bool:
    """True when ``out`` holds an earlier demo with the same settings (reuse), False when it is missing or
    empty (start). Raises ConfigError for a non-empty folder without a demo, or a demo with other settings."""
    from nerfseg.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return False
    state_path = out / STATE_FILE
    if not state_path.is_file():
        raise ConfigError(
            f"--out {out}: folder is not empty and holds no demo ({STATE_FILE}); choose another "
            "--out or empty it"
        )
    try:
        stored = json.loads(state_path.read_text(encoding="utf-8"))["settings"]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{state_path}: unreadable demo state ({err}); delete {out} to start over") from err
    if stored != asdict(settings):
        changed = sorted(k for k in asdict(settings) if stored.get(k) != asdict(settings)[k])
        raise ConfigError(
            f"--out {out}: holds a demo with other settings ({', '.join(changed)}); choose "
            "another --out or delete it"
        )
    return True


def _write_state(out: Path, settings: DemoSettings, stages: list[Stage], extra: dict) -> None:
    from nerfseg.io_utils import atomic_write_text

    payload = {"settings": asdict(settings), "stages": [asdict(s) for s in stages], **extra}
    atomic_write_text(out / STATE_FILE, json.dumps(payload, indent=2) + "\n")


def _say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def simulate_data(root: Path, settings: DemoSettings, workers: int, progress: bool) -> str:
    """Simulate the demo dataset into ``root`` (through a temporary folder renamed at the end, so a killed
    run leaves no half dataset); returns what was done."""
    from nerfseg.cli import build_parser

    if (root / ".demo-complete").is_file():
        return "reused"
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    argv = [
        "simulate",
        str(partial),
        "--frames",
        str(settings.frames),
        "--sequences",
        "00,08",
        "--seed",
        "0",
        "--workers",
        str(workers),
    ]
    for item in settings.sim_set:
        argv += ["--set", item]
    if not progress:
        argv.append("--no-progress")
    args = build_parser().parse_args(argv)
    args.func(args)
    (partial / ".demo-complete").write_text("simulated by nerfseg demo\n", encoding="utf-8")
    if root.exists():
        shutil.rmtree(root)
    partial.rename(root)
    return "simulated"


def training_config(method: str, root: Path, settings: DemoSettings, config_dir: Path):
    """The Config of ``method``'s demo run: ``config_dir/<method>.yaml``, data.root = the demo data, then
    --steps and --set."""
    from nerfseg.config import load_config

    overrides = [f"data.root={root}"]
    if settings.steps:
        overrides.append(f"train.max_steps={settings.steps}")
    return load_config(config_dir / f"{method}.yaml", [*overrides, *settings.overrides])


def fill_masks(cfg_path: Path, root: Path, settings: DemoSettings, progress: bool) -> None:
    """`nerfseg masks --config` for the training split of the demo data (a content-keyed cache: a re-run
    only checks the entries)."""
    from nerfseg.cli import build_parser

    argv = ["masks", "--config", str(cfg_path), "--set", f"data.root={root}"]
    for item in settings.overrides:
        if item.startswith("masks."):
            argv += ["--set", item]
    args = build_parser().parse_args(argv)
    args.func(args)


def train_method(cfg, run_dir: Path) -> str:
    """Train ``cfg`` into ``run_dir``: reuse a finished run, resume an interrupted one, else start."""
    from nerfseg.engine.checkpoint import load_checkpoint
    from nerfseg.engine.train import train

    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        step = int(load_checkpoint(last)["step"])
        if step >= cfg.train.max_steps and (run_dir / "model.pt").is_file():
            print(f"finished earlier ({step} steps): reused {run_dir}", flush=True)
            return "reused"
        print(f"resuming {run_dir} from step {step}", flush=True)
        train(cfg, run_dir, resume=True)
        return f"resumed from step {step}"
    result = train(cfg, run_dir)
    return f"trained {result.step} steps"


def _machine_line() -> str:
    load = os.getloadavg()
    loads = " / ".join(f"{v:.2f}" for v in load)
    return f"{os.cpu_count()} logical CPUs, load average (1 / 5 / 15 min) {loads}"


def run_demo(
    out: str | Path,
    settings: DemoSettings,
    config_dir: str | Path | None = None,
    workers: int = 2,
    progress: bool = True,
):
    """Run every stage into ``out`` (see EPILOG); returns the compare result
    (:class:`nerfseg.commands.compare.CompareResult`)."""
    from nerfseg.commands.compare import compare_runs
    from nerfseg.errors import ConfigError

    out = Path(out)
    config_dir = Path(config_dir) if config_dir else CONFIG_DIR
    missing = [m for m in METHODS if not (config_dir / f"{m}.yaml").is_file()]
    if missing:
        raise ConfigError(
            f"{config_dir}: demo presets {', '.join(f'{m}.yaml' for m in missing)} not found "
            "(run from a source checkout or pass --configs)"
        )
    if settings.frames < 2:
        raise ConfigError(
            f"--frames must be >= 2 (one labeled scan and one unlabeled), got {settings.frames}"
        )
    reused = check_out_dir(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    root = out / "data"
    cfgs = {m: training_config(m, root, settings, config_dir) for m in METHODS}
    stages: list[Stage] = []
    load_start = _machine_line()
    started = time.perf_counter()
    total = 3 + len(METHODS)
    print(
        f"nerfseg demo -> {out} ({'re-run: finished stages are reused' if reused else 'new'}); {load_start}"
    )
    _write_state(out, settings, stages, {"machine_at_start": load_start})

    _say(
        f"1/{total} simulate a SemanticKITTI-layout dataset: sequences 00 (train) and 08 (val), "
        f"{settings.frames} scans each -> {root}"
    )
    with Timer(stages, "simulate") as t:
        t.note = simulate_data(root, settings, workers, progress)
    _write_state(out, settings, stages, {"machine_at_start": load_start})

    _say(f"2/{total} superpixel masks of every training image (cached in {root}/.nerfseg_cache)")
    with Timer(stages, "masks"):
        fill_masks(config_dir / "nerf.yaml", root, settings, progress)
    _write_state(out, settings, stages, {"machine_at_start": load_start})

    runs = []
    for k, method in enumerate(METHODS, start=3):
        cfg = cfgs[method]
        if not progress:
            from dataclasses import replace

            cfg = replace(cfg, train=replace(cfg.train, progress=False))
        run_dir = out / "runs" / method
        _say(
            f"{k}/{total} train {method}: {cfg.train.max_steps} steps, {100 * cfg.data.label_fraction:g} % "
            f"of the training scans labeled -> {run_dir}"
        )
        with Timer(stages, f"train {method}") as t:
            t.note = train_method(cfg, run_dir)
        runs.append(run_dir)
        _write_state(out, settings, stages, {"machine_at_start": load_start})

    _say(f"{total}/{total} evaluate the three on the val split and write the report -> {out / 'report.md'}")
    with Timer(stages, "evaluate + report") as t:
        preamble = demo_preamble(out, cfgs, settings, stages, load_start, time.perf_counter() - started)
        result = compare_runs(
            runs, out, split="val", progress=progress, title="nerfseg demo report", preamble=preamble
        )
    wall = time.perf_counter() - started
    load_end = _machine_line()
    _write_state(
        out,
        settings,
        stages,
        {"machine_at_start": load_start, "machine_at_end": load_end, "wall_s": round(wall, 1)},
    )
    # the report is written inside its own stage: its time and the total are filled in afterwards
    report = out / "report.md"
    last = stages[-1]
    text = report.read_text(encoding="utf-8")
    text = text.replace(PENDING_ROW, f"| {last.name} | {last.wall_s:.0f} | {last.cpu_s:.0f} | |")
    text = text.replace(PENDING_TOTAL, f"In all: {wall / 60:.1f} min wall. Machine at the end: {load_end}.")
    from nerfseg.io_utils import atomic_write_text

    atomic_write_text(report, text)
    print(
        f"\nDone in {wall / 60:.1f} min. Report: {report}  (figures in {out / 'figures'}, 3D pages in "
        f"{out / 'pages'}; stage times in {out / STATE_FILE})"
    )
    return result


PENDING_ROW = "| evaluate + report | (pending) | | |"
PENDING_TOTAL = "In all: (pending)"


def demo_preamble(
    out: Path, cfgs: dict, settings: DemoSettings, stages: list[Stage], load: str, elapsed: float
) -> list[str]:
    """Markdown lines: what this demo ran and what it cost (the numbers of this run only)."""
    from nerfseg.engine.build import open_split
    from nerfseg.engine.train import labeled_indices

    cfg = cfgs[METHODS[0]]
    train_source = open_split(cfg, cfg.data.train_split)
    val_source = open_split(cfg, cfg.data.val_split)
    labeled = len(labeled_indices(cfg, train_source))
    sample = val_source[0]
    camera = sample.cameras[0] if sample.cameras else None
    cam_text = f", one {camera.image_size[0]} x {camera.image_size[1]} front camera" if camera else ""
    lines = [
        "What this run did, on this machine. Every number below comes from this run: "
        f"{', '.join(str(cfgs[m].train.max_steps) for m in METHODS)} steps ({', '.join(METHODS)}) on a "
        "small simulated dataset. It shows the pipeline working end to end; it does not measure how the "
        "methods compare at a full training budget.",
        "",
        "## What ran",
        "",
        f"- Data: `{out / 'data'}`, simulated SemanticKITTI layout: sequence 00 ({len(train_source)} "
        f"training scans) and 08 ({len(val_source)} val scans), about {sample.num_points} points a "
        f"scan{cam_text}.",
        f"- Labels: {labeled} of the {len(train_source)} training scans labeled "
        f"(`data.label_fraction={cfg.data.label_fraction:g}`); the other scans reach the semi-supervised "
        "methods only through their cameras (projection, nerf).",
    ]
    for method in METHODS:
        c = cfgs[method]
        lines.append(
            f"- `{method}`: {c.train.max_steps} steps of batch {c.data.batch_size}, preset "
            f"`configs/demo/{method}.yaml` (segmentor `{c.model.segmentor.preset}`, voxels "
            f"{c.model.segmentor.voxel_size:g} m) -> `runs/{method}/`"
        )
    if settings.overrides:
        lines.append(f"- Overrides: {' '.join(f'`--set {o}`' for o in settings.overrides)}")
    lines += ["", "## Time", "", "| stage | wall (s) | CPU (s) | note |", "|---|---:|---:|---|"]
    lines += [f"| {s.name} | {s.wall_s:.0f} | {s.cpu_s:.0f} | {s.note} |" for s in stages]
    lines += [
        PENDING_ROW,
        "",
        PENDING_TOTAL,
        "",
        f"Machine at the start: {load}. Wall time depends on what else runs on the machine; CPU time "
        "(this process and its finished loader / simulator processes) much less so.",
        "",
    ]
    return lines


def run(args: argparse.Namespace) -> int:
    settings = DemoSettings(args.frames, args.steps, list(args.overrides), list(SIM_SET))
    result = run_demo(args.out, settings, args.configs, workers=args.workers, progress=not args.no_progress)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
