"""Which nuScenes version (table folder ``ROOT/v1.0-*``) a command reads, and the split names of that version.

Every command that takes a nuScenes version (check-data, masks, make-splits, train, predict, evaluate) goes
through :func:`resolve_version`: with no version given (None or ``"auto"``) the one ``v1.0-*`` folder under
the root is used, and a line on stderr says so; several folders are a :class:`~nerfseg.errors.ConfigError`
asking for ``--version`` / ``--set data.version=``. :func:`split_for_version` maps the generic split names
onto the version's own (``train`` on ``v1.0-mini`` is ``mini_train``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from nerfseg.data.nuscenes_splits import SPLIT_VERSIONS
from nerfseg.data.nuscenes_tables import VERSIONS
from nerfseg.errors import ConfigError, DataError

AUTO = "auto"
"""The version value that asks for detection (``data.version``'s default)."""

VERSION_PREFIX = "v1.0-"

MINI_SPLITS = {"train": "mini_train", "val": "mini_val"}
"""Generic split name -> its name on ``v1.0-mini`` (the mini version has no test split)."""

_announced: set[tuple[str, str]] = set()  # (root, version) pairs already reported on stderr


def version_folders(root: str | Path) -> list[str]:
    """Sorted names of the ``v1.0-*`` folders directly under ``root`` (empty when there are none)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.name.startswith(VERSION_PREFIX) and p.is_dir())


def resolve_version(root: str | Path, version: str | None) -> str:
    """The nuScenes version to read under ``root``.

    Args:
        root: nuScenes root folder.
        version: a version name (returned as given), or None / ``"auto"`` to detect it.
    Returns:
        The version name. When detected, one line on stderr names it (once per root and process).
    Raises:
        DataError: detection found no ``v1.0-*`` folder (names ``root``).
        ConfigError: detection found several; the message lists them and asks for ``--version`` /
            ``--set data.version=``.
    """
    if version is not None and version != AUTO:
        return version
    root = Path(root)
    found = version_folders(root)
    if not found:
        what = "folder not found" if not root.is_dir() else "no nuScenes table folder (v1.0-*) in it"
        raise DataError(root, f"{what}; expected ROOT/v1.0-trainval, v1.0-mini or v1.0-test")
    if len(found) > 1:
        raise ConfigError(
            f"{root} holds several nuScenes versions ({', '.join(found)}); choose one with --version "
            f"{found[0]} (nerfseg check-data, masks, predict, evaluate, make-splits) or "
            f"--set data.version={found[0]} (train, masks)"
        )
    key = (str(root.resolve()), found[0])
    if key not in _announced:
        _announced.add(key)
        print(f"nerfseg: nuScenes version {found[0]} (the only v1.0-* folder in {root})", file=sys.stderr)
    return found[0]


def split_for_version(split: str | None, version: str) -> str | None:
    """The official name of ``split`` in ``version``: ``train`` / ``val`` on ``v1.0-mini`` are ``mini_train``
    / ``mini_val``; other names are returned unchanged, and None (every sample of the version) too.

    Raises:
        ConfigError: an unknown split name, ``test`` on ``v1.0-mini``, or a split of another version (e.g.
            ``mini_train`` on ``v1.0-trainval``).
    """
    if split is None:
        return None
    if split not in SPLIT_VERSIONS:
        raise ConfigError(f"unknown nuScenes split {split!r}; choose one of {', '.join(SPLIT_VERSIONS)}")
    if version == "v1.0-mini":
        if split == "test":
            raise ConfigError(
                "nuScenes v1.0-mini has no test split; choose mini_train or mini_val (or train / val)"
            )
        split = MINI_SPLITS.get(split, split)
    if version in VERSIONS and SPLIT_VERSIONS[split] != version:
        raise ConfigError(f"nuScenes split {split!r} belongs to {SPLIT_VERSIONS[split]}, not {version}")
    return split

