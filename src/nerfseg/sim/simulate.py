"""Top level of the simulator: choose sequence ids / scene names, run every sequence with a progress bar,
and record the config used next to the data (``OUT/sim_config.yaml``)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from nerfseg.errors import ConfigError
from nerfseg.io_utils import atomic_write_text
from nerfseg.sim.config import SimConfig, sim_config_to_dict, validate_sim_config

VAL_SEQUENCE = "08"
"""SemanticKITTI's official validation sequence."""


class OutputFormat(Enum):
    SEMANTICKITTI = "semantickitti"
    NUSCENES = "nuscenes"


def parse_sequences(spec: str) -> list[str]:
    """Sequence ids from ``spec``: a comma list of ids ("00,08") or a count S, which gives S-1 training
    sequences 00, 01, ... (08 skipped) and the validation sequence 08 (S = 1 gives only 00)."""
    spec = spec.strip()
    if (
        spec.isdigit()
        and "," not in spec
        and len(spec) <= 2
        and not (len(spec) == 2 and spec.startswith("0"))
    ):
        count = int(spec)
        if count < 1:
            raise ConfigError(f"--sequences: need at least one sequence, got {spec!r}")
        if count == 1:
            return ["00"]
        train = [f"{i:02d}" for i in range(100) if f"{i:02d}" != VAL_SEQUENCE][: count - 1]
        return sorted(train + [VAL_SEQUENCE])
    ids = [part.strip() for part in spec.split(",") if part.strip()]
    if not ids or any(not (p.isdigit() and len(p) <= 2) for p in ids):
        raise ConfigError(f"--sequences: expected a count or a comma list of ids like 00,08, got {spec!r}")
    ids = [f"{int(p):02d}" for p in ids]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"--sequences: repeated sequence id in {spec!r}")
    return ids


def simulate(
    out: str | Path,
    config: SimConfig,
    fmt: OutputFormat,
    sequences: list[str] | int,
    show_progress: bool = True,
    workers: int = 1,
) -> list[str]:
    """Write a simulated dataset under ``out``. ``sequences``: SemanticKITTI sequence ids; for nuScenes
    only their number matters (scene names come from the official split lists). Returns the sequence ids
    or scene names written. ``workers`` > 1 renders SemanticKITTI frames in that many processes (same
    output as one worker)."""
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    count = sequences if isinstance(sequences, int) else len(sequences)
    validate_sim_config(config)
    if fmt is OutputFormat.SEMANTICKITTI:
        names = sequences if not isinstance(sequences, int) else parse_sequences(str(sequences))
    else:
        from nerfseg.sim.nuscenes_writer import NuScenesWriter, nuscenes_scene_names

        names = nuscenes_scene_names(config.nuscenes.version, count)
    bar = tqdm(
        total=len(names) * config.frames,
        desc=f"simulate {fmt.value}",
        unit="frame",
        disable=not show_progress,
    )
    try:
        if fmt is OutputFormat.SEMANTICKITTI:
            from nerfseg.sim.kitti import write_kitti_sequence

            for seq in names:
                write_kitti_sequence(out, seq, config, progress=bar.update, workers=workers)
        else:
            writer = NuScenesWriter(out, config)
            for index, name in enumerate(names):
                writer.write_scene(index, name, progress=bar.update)
            writer.finish()
    finally:
        bar.close()
    import yaml

    atomic_write_text(out / "sim_config.yaml", yaml.safe_dump(sim_config_to_dict(config), sort_keys=False))
    return list(names)


def write_previews(out: str | Path, sequence: str, frame: int = 0) -> list[Path]:
    """Look-at figures of one SemanticKITTI-layout frame: ``OUT/previews/SS_FFFFFF_bev.png`` (top view of
    the scan in SemanticKITTI class colours, 80 m x 80 m) and ``OUT/previews/SS_FFFFFF_camera.png`` (the
    camera image above its ground-truth semantic image)."""
    import numpy as np
    from PIL import Image

    from nerfseg.io_utils import atomic_write_bytes
    from nerfseg.sim.images import png_bytes
    from nerfseg.viz.bev import raw_id_colors, write_bev_png

    folder = Path(out) / "sequences" / sequence
    name = f"{frame:06d}"
    points = np.fromfile(folder / "velodyne" / f"{name}.bin", np.float32).reshape(-1, 4)
    labels = np.fromfile(folder / "labels" / f"{name}.label", np.uint32)
    previews = Path(out) / "previews"
    bev = write_bev_png(previews / f"{sequence}_{name}_bev.png", points, raw_id_colors(labels), 40.0, 0.1)
    rgb = np.asarray(Image.open(folder / "image_2" / f"{name}.png").convert("RGB"))
    semantic = np.asarray(Image.open(folder / "semantic_2" / f"{name}.png")).astype(np.int64)
    colours = raw_id_colors(semantic.ravel()).reshape(semantic.shape + (3,))
    colours[semantic == 0] = 0
    camera = atomic_write_bytes(
        previews / f"{sequence}_{name}_camera.png", png_bytes(np.concatenate([rgb, colours]))
    )
    return [bev, camera]
