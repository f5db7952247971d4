"""Dataset validation results shared by every dataset's checker (`nerfseg check-data`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One problem found in a dataset: the file (or folder) it is in and what is wrong with it.

    ``warning``: the data stays usable (e.g. a LiDAR-only sequence without camera calibration or images);
    ``nerfseg check-data`` reports warnings but fails on errors only.
    """

    path: Path
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{'warning: ' if self.warning else ''}{self.path}: {self.message}"


def errors(problems: list[Problem]) -> list[Problem]:
    """The problems that are not warnings."""
    return [problem for problem in problems if not problem.warning]
