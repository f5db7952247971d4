"""Shards of a split for ``nerfseg masks --shard i/n``: the samples one of n processes (or machines) computes.

Shard i of n takes the samples whose index in the split's sorted order is i modulo n, so the n shards are
disjoint, together cover the split, and are fixed by (i, n) alone. All shards write into one cache: every
entry is its own file, named by the image's content and written atomically (nerfseg.masks.cache), and the
cache has no shared index, so concurrent shards never write one file with different contents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nerfseg.errors import ConfigError

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"--shard {self.index}/{self.count}: need i/n with n >= 1 and 0 <= i < n")

    def indices(self, total: int) -> range:
        """Sample indices of this shard among ``total`` samples: ``index, index + count, ...`` below total."""
        return range(self.index, max(total, 0), self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"i/n"`` -> Shard(i, n); ConfigError naming ``--shard`` for anything else (e.g. ``2/2``, ``-1/3``,
    ``a/b``, ``1/0``)."""
    match = _SHARD.fullmatch(text)
    if match is None:
        raise ConfigError(f"--shard {text!r}: expected i/n (shard i of n, 0 <= i < n), e.g. --shard 0/4")
    return Shard(int(match.group(1)), int(match.group(2)))
