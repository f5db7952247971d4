"""One training process per run folder: an exclusive, non-blocking ``flock`` on ``RUN_DIR/.lock``.

The lock lives as long as the process holds the file open, so it goes away with the process however it ends
(even SIGKILL); the file itself stays (removing it would let a third process lock a new file while a second
still holds the old one). It holds the holder's pid, for the message of the process that is turned away.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from nerfseg.errors import UserFacingError

LOCK_NAME = ".lock"


class RunFolderLocked(UserFacingError):
    """Another process trains in this run folder."""


class RunLock:
    """Exclusive lock of a run folder (a context manager; the folder is created).

    ``acquire`` raises :class:`RunFolderLocked` at once, naming the folder and the holder's pid, when another
    process holds it. ``write_pid`` records this process as the holder (kept apart so a run that turns out to
    be finished changes no file).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderLocked(
                f"{self.run_dir}: run folder in use by another training process (pid {holder}); wait for it "
                "to end or stop it, or train into another --out"
            ) from None
        self._fd = fd
        return self

    def write_pid(self) -> None:
        """Record this process's pid in the lock file (the lock must be held)."""
        assert self._fd is not None, "lock not held"
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode("ascii"), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
