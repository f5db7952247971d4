"""Distributed, resumable batch streams: each process draws its disjoint slice of the one global order.

The global stream is :class:`nerfseg.data.loader.ResumableBatchSampler`: global batch ``b`` holds stream
positions ``[b * B, (b + 1) * B)`` of the seeded epoch permutations, ``B = data.batch_size``. With ``W``
processes, process ``r`` takes items ``[r * B / W, (r + 1) * B / W)`` of every global batch. So:

* the slices of one global batch are disjoint and together are exactly that batch, in its order (process 0
  holds its first scans), whatever ``W``;
* batch ``b`` depends on (seed, b) alone: a run resumed at step ``k`` with any ``W'`` dividing ``B`` draws the
  same global batches as the run that wrote the checkpoint, and as a one-process run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch.utils.data import Sampler

from nerfseg.errors import ConfigError


@dataclass(frozen=True)
class Shard:
    """Process ``rank`` of ``world_size`` (0 <= rank < world_size)."""

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"invalid shard: rank {self.rank} of {self.world_size}")


def per_process_batch(global_batch: int, world_size: int, option: str = "data.batch_size") -> int:
    """Scans per process, ``global_batch / world_size``; ConfigError (naming ``option``) when the number of
    processes does not divide the global batch."""
    if world_size < 1:
        raise ValueError(f"world size must be >= 1, got {world_size}")
    if global_batch % world_size:
        raise ConfigError(
            f"{option}={global_batch} (the global batch) is not divisible by the {world_size} processes of "
            f"this run; use a number of processes that divides it, or change {option} in a new run"
        )
    return global_batch // world_size


class ShardedBatchSampler(Sampler[list]):
    """This process's slice of every batch of a global batch sampler.

    Args:
        batches: a sampler yielding global batches of ``global_batch`` items (e.g. ResumableBatchSampler).
        global_batch: items per global batch.
        shard: this process.
    """

    def __init__(self, batches: Sampler[list], global_batch: int, shard: Shard):
        self.batches = batches
        self.per_process = per_process_batch(global_batch, shard.world_size)
        self.start = shard.rank * self.per_process

    def __iter__(self) -> Iterator[list]:
        stop = self.start + self.per_process
        for batch in self.batches:
            yield list(batch[self.start : stop])


def shard_batches(batches: Sampler[list], global_batch: int, shard: Shard | None) -> Sampler[list]:
    """``batches`` itself for one process (or ``shard`` None), else its :class:`ShardedBatchSampler`."""
    if shard is None or shard.world_size == 1:
        return batches
    return ShardedBatchSampler(batches, global_batch, shard)
