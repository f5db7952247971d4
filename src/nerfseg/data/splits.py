"""Labeled-subset split files: which training scans keep their labels in a semi-supervised run.

A split file lists sample ids, one a line, sorted: ``SS/FFFFFF`` for SemanticKITTI / ScribbleKITTI,
LiDAR sample_data tokens for nuScenes. Lines starting with ``#`` (the header :func:`write_split_file`
writes) and blank lines are skipped. ``nerfseg make-splits`` writes them; ``splits/`` holds the
SemanticKITTI ones (1, 10, 20, 50 %, seed 0) and ``data.labeled_split`` names one for training.

Sampling: one seeded permutation of the sorted ids; a fraction takes its prefix, so with one seed a
smaller fraction is a subset of every larger one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nerfseg.errors import DataError
from nerfseg.io_utils import atomic_write_text

SEMANTICKITTI_SEQUENCE_LENGTHS: dict[int, int] = {
    0: 4541, 1: 1101, 2: 4661, 3: 801, 4: 271, 5: 2761, 6: 1101, 7: 1101, 8: 4071, 9: 1591, 10: 1201,
}  # fmt: skip
"""Published scan counts of the labeled SemanticKITTI sequences 00-10 (train 00-07, 09, 10: 19,130)."""

_KITTI_ID = re.compile(r"\d{2}/\d{6}")
_TOKEN_ID = re.compile(r"[0-9A-Za-z_-]+")


def split_file_name(dataset: str, percent: float, seed: int) -> str:
    """File name of a split: ``<dataset>_<percent>pct_seed<seed>.txt``, e.g. ``semantickitti_1pct_seed0.txt``
    (percent written with ``%g``: 1, 10, 0.5)."""
    return f"{dataset}_{percent:g}pct_seed{seed}.txt"


def published_semantickitti_ids(sequences: Sequence[int] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10)) -> list[str]:
    """``SS/FFFFFF`` ids of every scan of ``sequences`` (default: the official train split) from the
    published sequence lengths, without reading any data."""
    return [f"{s:02d}/{f:06d}" for s in sequences for f in range(SEMANTICKITTI_SEQUENCE_LENGTHS[int(s)])]


def labeled_split_ids(ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """A uniform random subset of ``max(1, round(fraction * len(ids)))`` ids, sorted.

    The ids are sorted first, so the result depends on the set of ids, not on their order; then one
    permutation drawn with ``numpy.random.default_rng(seed)`` is cut after that many ids. With one seed a
    smaller fraction is therefore a subset of a larger one.

    Raises ValueError for an empty or duplicated ``ids`` or a fraction outside (0, 1].
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    ordered = sorted(ids)
    if not ordered:
        raise ValueError("no ids to sample from")
    if len(set(ordered)) != len(ordered):
        raise ValueError("ids hold duplicates")
    count = max(1, round(fraction * len(ordered)))
    order = np.random.default_rng(seed).permutation(len(ordered))[:count]
    return [ordered[i] for i in np.sort(order)]


def write_split_file(path: str | Path, ids: Sequence[str], header: str = "") -> Path:
    """Atomically write ``ids`` one a line (sorted), after ``header`` lines prefixed with ``# ``.

    Raises ValueError for an empty list, duplicates or ids that :func:`read_split_file` would reject.
    """
    ordered = sorted(ids)
    if not ordered:
        raise ValueError("a split file needs at least one id")
    if len(set(ordered)) != len(ordered):
        raise ValueError("ids hold duplicates")
    bad = [i for i in ordered if not _valid_id(i)]
    if bad:
        raise ValueError(f"malformed ids {bad[:5]}")
    lines = [f"# {line}".rstrip() for line in header.splitlines()] + ordered
    return atomic_write_text(path, "\n".join(lines) + "\n")


def _valid_id(sample_id: str) -> bool:
    if "/" in sample_id:
        return _KITTI_ID.fullmatch(sample_id) is not None
    return _TOKEN_ID.fullmatch(sample_id) is not None


def _read_entries(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, id) of every id line of a split file, checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "split file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(path, f"unreadable split file ({err})") from None
    entries: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        sample_id = line.strip()
        if not sample_id or sample_id.startswith("#"):
            continue
        if not _valid_id(sample_id):
            raise DataError(
                path,
                f"line {number}: malformed sample id {sample_id!r} (expected SS/FFFFFF, e.g. 00/000123, "
                "or a nuScenes sample_data token)",
            )
        if sample_id in seen:
            raise DataError(path, f"line {number}: sample id {sample_id!r} repeats line {seen[sample_id]}")
        seen[sample_id] = number
        entries.append((number, sample_id))
    if not entries:
        raise DataError(path, "split file lists no sample ids")
    return entries


def read_split_file(path: str | Path) -> list[str]:
    """The ids of a split file, in file order.

    Raises DataError naming the file (and the line) when it is missing, lists no ids, repeats an id or
    holds a malformed one.
    """
    return [sample_id for _, sample_id in _read_entries(Path(path))]


def labeled_positions(sample_ids: Sequence[str], split_path: str | Path) -> np.ndarray:
    """Positions in a reader of the ids that a split file lists.

    Args:
        sample_ids: the training reader's ``sample_ids`` (position i = sample i).
        split_path: split file.
    Returns:
        (K,) int64 sorted positions, K = number of ids in the file.
    Raises DataError naming the file, the line and the id when an id is not one of ``sample_ids``.
    """
    path = Path(split_path)
    position = {sample_id: i for i, sample_id in enumerate(sample_ids)}
    found = []
    for number, sample_id in _read_entries(path):
        if sample_id not in position:
            raise DataError(
                path,
                f"line {number}: sample id {sample_id!r} is not in the training split "
                f"({len(position)} scans)",
            )
        found.append(position[sample_id])
    return np.sort(np.asarray(found, dtype=np.int64))
