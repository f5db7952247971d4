"""``RUN_DIR/skipped.jsonl``: the unreadable scans a run trained past (``data.on_bad_scan: skip``).

One JSON object a line, ``{"file": path, "reason": problem, "step": s, "stream": "labeled"|"unlabeled"}``:
each unreadable file once, at the first step (1-based) whose batch would have held it. Each line is
appended, flushed and fsynced as it happens. Like ``metrics.jsonl``, a resumed run first drops the lines
after its checkpoint's step (rewriting the file atomically) and meets those scans again at the same steps, so
the file of a killed and resumed run equals that of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, TextIO

from tqdm import tqdm

from nerfseg.data.loader import LoadFailure
from nerfseg.engine.logging import read_json_lines
from nerfseg.io_utils import atomic_write_text

FILE_NAME = "skipped.jsonl"


def read_skipped(path: str | Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a skipped.jsonl (a torn last line, from a kill, is dropped)."""
    return read_json_lines(path)


class SkipLog:
    """Names each unreadable scan once: one line on ``stream`` (stderr) and one in skipped.jsonl.

    Args:
        run_dir: the run folder.
        resume_step: the checkpoint's step when resuming (later lines are dropped); None for a fresh run
            (an old file is removed).
        stream: where the one-line notices go (``None``: stderr at the time of the call).
    """

    def __init__(self, run_dir: str | Path, resume_step: int | None = None, stream: TextIO | None = None):
        self.path = Path(run_dir) / FILE_NAME
        kept = [
            r for r in read_skipped(self.path) if resume_step is not None and r.get("step", 0) <= resume_step
        ]
        if kept:
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        elif self.path.exists():
            self.path.unlink()
        self.named = {str(r.get("file")) for r in kept}
        self._stream = stream
        self._file: IO[str] | None = None

    def record(self, step: int, failures: Iterable[LoadFailure], stream_name: str) -> None:
        """Name the scans of ``failures`` not named before, as met by training step ``step`` (1-based) of the
        ``stream_name`` stream."""
        for failure in failures:
            if failure.path in self.named:
                continue
            self.named.add(failure.path)
            record = {
                "file": failure.path, "reason": failure.problem, "step": int(step), "stream": stream_name
            }
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            tqdm.write(  # above a progress bar, not glued to it
                f"skipped unreadable scan {failure.path}: {failure.problem} (step {step}, {stream_name} "
                f"stream; data.on_bad_scan: skip; listed in {self.path})",
                file=self._stream or sys.stderr,
            )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
