"""Atomic writes: write to a temporary name in the same folder, fsync, then rename over the target.
A reader therefore sees either the old file or the complete new one, never a partial write.

Also the checks a command runs on its output paths BEFORE its work (:func:`ensure_writable_dir`,
:func:`ensure_writable_file`), and :func:`load_torch_file`, the one ``torch.load(weights_only=True)`` whose
failures become a clear :class:`~nerfseg.errors.DataError` (never torch's advice to drop ``weights_only``).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from nerfseg.errors import DataError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, writer: Callable[[IO[bytes]], None]) -> Path:
    """Call ``writer(f)`` on a temporary binary file beside ``path``, then rename it to ``path``.

    The file gets the usual permissions of a new file (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def png_bytes(image, compress_level: int = 1) -> bytes:
    """PNG of an (H, W, 3) uint8 RGB image, or of an (H, W) uint16 one-channel image (16-bit PNG)."""
    import numpy as np
    from PIL import Image

    image = np.asarray(image)
    if image.dtype == np.uint16:
        pil = Image.fromarray(image)
    else:
        pil = Image.fromarray(np.ascontiguousarray(image, np.uint8))
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def atomic_torch_save(obj: object, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (serialised in memory first)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _blocking_file(path: Path) -> Path | None:
    """The first of ``path`` and its ancestors that exists and is not a folder (None when there is none)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def ensure_writable_dir(path: str | Path, what: str) -> Path:
    """Create folder ``path`` (and its parents) if missing and check that a file can be created in it.

    Commands call this on their output folders before any work, so a bad output path fails at once rather
    than after the work is done. ``what`` names the option in the message (e.g. ``"--out"``).

    Raises:
        DataError naming ``path`` and ``what``: it, or one of its ancestors, is a file; it cannot be created;
            or no file can be created in it (read-only, no permission).
    """
    path = Path(path)
    blocking = _blocking_file(path)
    if blocking == path:
        raise DataError(path, f"{what} must be a folder, but this is a file")
    if blocking is not None:
        raise DataError(path, f"{what}: cannot create this folder: {blocking} is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".nerfseg-write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise DataError(path, f"{what}: cannot write into this folder ({err.strerror or err})") from None
    return path


def ensure_writable_file(path: str | Path, what: str) -> Path:
    """Check that file ``path`` can be written (atomically, as :func:`atomic_write` does) before any work.

    Creates the missing parent folders; does not create or change ``path`` itself.

    Raises:
        DataError naming ``path`` and ``what``: it is a folder, or its folder cannot take a new file.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(path, f"{what} must be a file name, but this is a folder")
    blocking = _blocking_file(path.parent)
    if blocking is not None:
        raise DataError(path, f"{what}: cannot write this file: {blocking} is a file, not a folder")
    ensure_writable_dir(path.parent, f"{what}'s folder")
    return path


_TORCH_ZIP_MAGIC = b"PK\x03\x04"


def _torch_load_problem(path: Path, err: Exception) -> str:
    """Our own words for why ``torch.load(weights_only=True)`` failed (torch's text suggests loading with
    ``weights_only=False``, which can run arbitrary code from the file and must not be done)."""
    import re

    unsupported = re.search(r"(?:Unsupported global: GLOBAL|Unsupported class) ([\w.]+)", str(err))
    if unsupported:
        return (
            f"it holds a Python object ({unsupported.group(1)}) besides tensors and plain values; not "
            "loaded, as unpickling it could run code"
        )
    try:
        with path.open("rb") as f:
            head = f.read(len(_TORCH_ZIP_MAGIC))
    except OSError as read_err:
        return f"the file cannot be read ({read_err.strerror or read_err})"
    if head == _TORCH_ZIP_MAGIC:
        return "the file is corrupt or truncated (an incomplete PyTorch zip archive)"
    return f"the file is corrupt or not a PyTorch file ({type(err).__name__} while reading it)"


def load_torch_file(path: str | Path, what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: only tensors and plain Python values, no code.

    Args:
        path: the file.
        what: what the file should be, for the messages (e.g. ``"nerfseg checkpoint"``).
        map_location: as for ``torch.load``.
    Raises:
        DataError naming the file: missing, unreadable, corrupt / truncated, not a PyTorch file, or holding
            objects other than tensors and plain values. The message never passes on torch's advice to load
            with ``weights_only=False``.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} not found" if not path.is_dir() else f"is a folder, not a {what}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - the weights_only unpickler of garbage bytes raises
        # anything (UnpicklingError, RuntimeError, struct.error, KeyError, EOFError, ...).
        raise DataError(path, f"not a readable {what}: {_torch_load_problem(path, err)}") from None
