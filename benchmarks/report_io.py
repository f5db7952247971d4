"""Writing a benchmark's report: ``OUT.json`` (the raw numbers) and ``OUT.md`` (its markdown), atomically."""

from __future__ import annotations

import json
from pathlib import Path

from nerfseg.io_utils import atomic_write_text


def write_report(out: Path, report: dict, markdown: str) -> None:
    """Write ``out.json`` and ``out.md`` (creating the folder) and print the markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown)
    print(markdown)
