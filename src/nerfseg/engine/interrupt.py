"""Ctrl-C during training: stop at once, say where, leave nothing running, never print a traceback.

The training loop (:mod:`nerfseg.engine.train`) turns a KeyboardInterrupt into :class:`TrainingInterrupted`
after stopping its loader workers and printing one line (:func:`report`). Python only delivers the
KeyboardInterrupt between bytecodes, and one torch call (a backward pass over a large scan) can run for
seconds, so the CLI also starts an :class:`InterruptWatchdog`: a thread woken by the signal itself
(``signal.set_wakeup_fd``) that ends the process when the main thread has not done so within a grace
period. Ending a process mid-step loses nothing: checkpoints are written atomically (the last complete one
stays), the JSON logs skip a torn last line, and the loader workers die with their parent.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

EXIT_CODE = 130
"""Exit status of a process ended by Ctrl-C (128 + SIGINT), as shells report it."""

GRACE_S = 1.0
"""Seconds the main thread gets to stop by itself after a Ctrl-C before the watchdog ends the process."""

_reported = threading.Event()


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the training loop; its loader workers are stopped and where it stopped is printed."""


def report(message: str) -> None:
    """Print the one line that says where an interrupted run stopped (once per process)."""
    if not _reported.is_set():
        _reported.set()
        print(message, file=sys.stderr, flush=True)


def quiet_exit(signum=None, frame=None) -> None:  # noqa: ARG001 - signal handler signature
    """End the process now with :data:`EXIT_CODE`, skipping the interpreter's teardown (seconds with torch
    loaded) and any traceback."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(EXIT_CODE)


def quiet_second_interrupts() -> None:
    """After a first Ctrl-C: a second one (during the shutdown) ends the process at once and quietly."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, quiet_exit)


def kill_worker_processes() -> None:
    """SIGKILL every multiprocessing child of this process (the DataLoader workers of a training CLI)."""
    import multiprocessing

    for child in multiprocessing.active_children():
        try:
            child.kill()
        except (OSError, ValueError):  # already gone / closed
            pass


class InterruptWatchdog:
    """Ends the process :data:`GRACE_S` after a Ctrl-C if the main thread is still busy (CLI use only: it
    exits the process). Start it on the main thread; ``stop`` restores the previous wakeup fd.

    Args:
        run_dir: the run folder, named in the message.
        grace_s: seconds the main thread gets.
    """

    def __init__(self, run_dir: str | Path, grace_s: float = GRACE_S):
        self.run_dir = Path(run_dir)
        self.grace_s = grace_s
        self._previous_fd: int | None = None
        self._read_fd = self._write_fd = -1

    def start(self) -> InterruptWatchdog:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, name="nerfseg-interrupt-watchdog", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
            self._previous_fd = None
            os.close(self._write_fd)  # the thread's read returns b"" and it ends

    def _watch(self) -> None:
        while True:
            try:
                data = os.read(self._read_fd, 64)
            except OSError:
                return
            if not data:
                os.close(self._read_fd)
                return
            if signal.SIGINT in data:  # one byte per signal number (SIGCHLD of the workers comes too)
                break
        threading.Event().wait(self.grace_s)
        last = self.run_dir / "checkpoints" / "last.pt"
        tail = (
            f"`nerfseg train --resume {self.run_dir}` continues exactly from the last checkpoint ({last})"
            if last.is_file()
            else "no checkpoint was written yet"
        )
        report(f"stopped by Ctrl-C in the middle of a training step; {tail}")
        kill_worker_processes()
        quiet_exit()
