"""Top level of the simulator: choose sequence ids / scene names, run every sequence with a progress bar,
and record the config used next to the data (``OUT/sim_config.yaml``); and :func:`staged_output`, which
`nerfseg simulate` writes through so that OUT never shows a half-written or half-replaced dataset."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

from nerfseg.errors import ConfigError, DataError
from nerfseg.io_utils import atomic_write_text
from nerfseg.sim.config import SimConfig, sim_config_to_dict, validate_sim_config

VAL_SEQUENCE = "08"
"""SemanticKITTI's official validation sequence."""


class OutputFormat(Enum):
    SEMANTICKITTI = "semantickitti"
    NUSCENES = "nuscenes"


SIMULATED_ENTRIES = frozenset(
    {"sequences", "sim_config.yaml", "previews", "samples", "lidarseg", "samples_semantic", "samples_depth",
     "v1.0-mini", "v1.0-trainval"}
)  # fmt: skip
"""Top-level names of OUT that the simulator writes (either layout); `--overwrite` replaces only these."""

_STAGING_PREFIX = ".simulate-partial-"
_REPLACED_PREFIX = ".simulate-replaced-"


def _is_dataset_key(name: str) -> bool:
    """The entry that makes OUT a dataset to the readers: ``sequences/`` or a ``v1.0-*`` table folder."""
    return name == "sequences" or name.startswith("v1.0-")


def _remove_dead_staging(out: Path) -> None:
    """Remove staging folders under ``out`` left by a simulate process that no longer runs (a replaced
    dataset that a failed publish left aside is never removed here)."""
    for entry in out.glob(f"{_STAGING_PREFIX}*"):
        pid = entry.name[len(_STAGING_PREFIX) :].split("-", 1)[0]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


def check_output_folder(out: str | Path, overwrite: bool) -> list[str]:
    """Check that the simulator may write into ``out``; return the names of ``out`` it will replace.

    ``out`` may be missing or empty. A non-empty folder needs ``overwrite``, which replaces the entries of
    :data:`SIMULATED_ENTRIES` only (anything else in ``out``, e.g. a mask cache, is kept). Leftovers of a
    killed simulate run do not count.

    Raises:
        DataError naming ``out``: it is a file, or a non-empty folder and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(out, "OUT must be a folder, but this is a file")
    if not out.is_dir():
        return []
    _remove_dead_staging(out)
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith(_STAGING_PREFIX))
    if names and not overwrite:
        shown = ", ".join(names[:4]) + (f", ... ({len(names)} entries)" if len(names) > 4 else "")
        raise DataError(
            out,
            f"OUT is not empty (holds {shown}); simulating into it would mix two datasets. Pick another "
            "folder, or pass --overwrite to replace the simulated dataset in it",
        )
    return [name for name in names if name in SIMULATED_ENTRIES]


@contextmanager
def staged_output(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Write a dataset for ``out`` into a hidden staging folder, then publish it; yields the staging folder.

    On success the old dataset's entries (:data:`SIMULATED_ENTRIES`, when ``overwrite``) are first renamed
    aside, its ``sequences/`` or ``v1.0-*`` table folder first, and the new entries renamed in, their
    ``sequences/`` or table folder last. Each step is one rename, so at no moment does ``out`` look like a
    dataset that is half written or half replaced; the staging folder lies in ``out`` (one file system) and
    its name starts with a dot (no reader lists it). On any error or Ctrl-C the staging folder is removed and
    ``out`` is as it was.

    Raises:
        DataError naming ``out`` as :func:`check_output_folder` does, or when it cannot be written.
    """
    from nerfseg.io_utils import ensure_writable_dir

    out = Path(out)
    replaced = check_output_folder(out, overwrite)
    created = not out.exists()
    ensure_writable_dir(out, "OUT")
    staging = Path(tempfile.mkdtemp(dir=out, prefix=f"{_STAGING_PREFIX}{os.getpid()}-"))
    published = False
    try:
        yield staging
        _publish(staging, out, replaced)
        published = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not published and not any(out.iterdir()):
            out.rmdir()  # a folder made by this failed run: gone again


def _publish(staging: Path, out: Path, replaced: list[str]) -> None:
    """Rename ``replaced`` entries of ``out`` aside (the dataset key first), the staged ones in (key last),
    then delete the old ones; a failure part way renames everything back before it is raised."""
    trash = Path(tempfile.mkdtemp(dir=out, prefix=f"{_REPLACED_PREFIX}{os.getpid()}-"))
    moved_aside: list[str] = []
    moved_in: list[str] = []
    try:
        for name in sorted(replaced, key=lambda n: not _is_dataset_key(n)):
            os.replace(out / name, trash / name)
            moved_aside.append(name)
        for name in sorted(os.listdir(staging), key=_is_dataset_key):
            os.replace(staging / name, out / name)
            moved_in.append(name)
    except BaseException:
        for name in reversed(moved_in):
            os.replace(out / name, staging / name)
        for name in reversed(moved_aside):
            os.replace(trash / name, out / name)
        os.rmdir(trash)
        raise
    shutil.rmtree(trash, ignore_errors=True)


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

    from nerfseg.io_utils import atomic_write_bytes, png_bytes
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
