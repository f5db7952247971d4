"""The policy for unreadable scans during training (``data.on_bad_scan``), kept free of torch so the config
can name it."""

from __future__ import annotations

import enum


class BadScanPolicy(enum.Enum):
    """What training does with a scan it cannot read (truncated ``.bin``, short ``.label``, unreadable image
    or mask): ``data.on_bad_scan: error|skip``."""

    ERROR = "error"
    """Stop with one line naming the file and the problem."""
    SKIP = "skip"
    """Name the file once (stderr and ``RUN/skipped.jsonl``) and train on with another scan of the same
    stream in its place."""
