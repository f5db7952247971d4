"""Run logs: one JSON object per line in ``RUN_DIR/metrics.jsonl`` (written and flushed at every log step)
and the same scalars as TensorBoard events under ``RUN_DIR/tensorboard/``.

Each line: ``{"step": int, "time": unix seconds, "<prefix>/<name>": float, ...}``. On resume from step s the
lines written after s by the interrupted run are dropped (the file is rewritten atomically), so the file
reads like one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from nerfseg.io_utils import atomic_write_text


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_json_lines(path: str | Path) -> list[dict[str, Any]]:
    """All complete JSON lines of a .jsonl file (a torn last line, from a kill, is skipped); [] if absent."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All complete JSON lines of a metrics.jsonl file (:func:`read_json_lines`)."""
    return read_json_lines(path)


class RunLogger:
    """Writes scalars to metrics.jsonl and TensorBoard.

    Args:
        run_dir: the run folder.
        resume_step: when resuming, the checkpoint's step: later lines are dropped and TensorBoard purges
            events after it. None for a fresh run (an existing metrics.jsonl is replaced).
        tensorboard: also write TensorBoard events.
    """

    def __init__(self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.jsonl"
        kept = [
            r for r in read_metrics(self.path) if resume_step is not None and r.get("step", 0) <= resume_step
        ]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = self.path.open("a", encoding="utf-8")
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(
                log_dir=str(self.run_dir / "tensorboard"), purge_step=resume_step if resume_step else None
            )

    def log(self, step: int, scalars: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        """Write one line ``{"step", "time", prefix/name: value}`` (flushed) and TensorBoard scalars."""
        record: dict[str, Any] = {"step": int(step), "time": round(time.time(), 3)}
        for name, value in scalars.items():
            key = f"{prefix}/{name}" if prefix else name
            record[key] = _plain(value)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in record.items():
                if key not in ("step", "time") and isinstance(value, (int, float)):
                    self._writer.add_scalar(key, value, global_step=step)
            self._writer.flush()
        return record

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
