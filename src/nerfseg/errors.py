"""Exceptions shown to users as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations

from pathlib import Path


class UserFacingError(Exception):
    """Base class of errors caused by the user's input rather than by a bug."""


class DataError(UserFacingError, ValueError):
    """A data file is missing, malformed or inconsistent. The message always names the file."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(UserFacingError, ValueError):
    """A configuration file or a --set override is invalid."""
