"""The distributed batch streams: disjoint per-process slices of one seeded global order, resumable."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.data.augment import AugmentConfig
from nerfseg.data.bad_scans import BadScanPolicy
from nerfseg.data.distributed_sampling import Shard, ShardedBatchSampler, per_process_batch, shard_batches
from nerfseg.data.loader import (
    LoadFailure,
    Replaced,
    ResumableBatchSampler,
    TrainingDataset,
    replacement_positions,
)
from nerfseg.errors import ConfigError, DataError


def _take(sampler, count):
    return list(itertools.islice(iter(sampler), count))


@settings(max_examples=25, deadline=None)
@given(
    num_items=st.integers(1, 23), per=st.integers(1, 4), world=st.integers(1, 4),
    start=st.integers(0, 9), seed=st.integers(0, 2**31),
)
def test_shards_tile_the_global_batches_in_order(num_items, per, world, start, seed):
    batch = per * world
    steps = 5
    global_batches = _take(ResumableBatchSampler(num_items, batch, seed, start_batch=start), steps)
    shards = [
        _take(ShardedBatchSampler(ResumableBatchSampler(num_items, batch, seed, start_batch=start), batch,
                                  Shard(r, world)), steps)
        for r in range(world)
    ]
    for b in range(steps):
        pieces = [shards[r][b] for r in range(world)]
        assert all(len(p) == per for p in pieces)
        assert sum(pieces, []) == global_batches[b]  # disjoint slices, rank order = the batch's order


@settings(max_examples=20, deadline=None)
@given(num_items=st.integers(1, 17), seed=st.integers(0, 2**31), k=st.integers(0, 7),
       worlds=st.tuples(st.sampled_from([1, 2, 3, 6]), st.sampled_from([1, 2, 3, 6])))
def test_resume_at_step_k_gives_the_same_global_batches_whatever_the_world_size(num_items, seed, k, worlds):
    batch = 6
    before, after = worlds

    def global_from(world, start, steps):
        per_rank = [
            _take(ShardedBatchSampler(ResumableBatchSampler(num_items, batch, seed, start), batch,
                                      Shard(r, world)), steps)
            for r in range(world)
        ]
        return [sum((per_rank[r][b] for r in range(world)), []) for b in range(steps)]

    uninterrupted = global_from(before, 0, k + 4)
    resumed = global_from(before, 0, k) + global_from(after, k, 4)
    assert resumed == uninterrupted == _take(ResumableBatchSampler(num_items, batch, seed), k + 4)


def test_hand_computed_slices():
    # global batch of 4 over 2 processes: rank 0 gets items 0-1, rank 1 items 2-3 of every global batch
    batches = [[(0, 5), (0, 1), (0, 4), (0, 0)], [(0, 2), (0, 3), (1, 0), (1, 1)]]
    assert list(ShardedBatchSampler(batches, 4, Shard(0, 2))) == [[(0, 5), (0, 1)], [(0, 2), (0, 3)]]
    assert list(ShardedBatchSampler(batches, 4, Shard(1, 2))) == [[(0, 4), (0, 0)], [(1, 0), (1, 1)]]
    assert shard_batches(batches, 4, None) is batches
    assert shard_batches(batches, 4, Shard(0, 1)) is batches


def test_world_size_must_divide_the_global_batch():
    assert per_process_batch(8, 4) == 2
    with pytest.raises(ConfigError, match=r"data.batch_size=6 .*not divisible by the 4 processes"):
        per_process_batch(6, 4)
    with pytest.raises(ValueError):
        Shard(2, 2)


class _SourceWithBadScans:
    """A reader of ``n`` "scans" (scan ``i`` reads as the int ``100 + i``) of which ``bad`` are unreadable."""

    def __init__(self, n: int, bad: set[int]):
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        if index in self.bad:
            raise DataError(f"scan_{index}.bin", "truncated")
        return 100 + index


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), bad=st.sets(st.integers(0, 11), min_size=1, max_size=4),
       start=st.integers(0, 5))
def test_bad_scan_replacements_are_those_of_one_process_at_any_world_size(seed, bad, start):
    # the replacement of a bad scan is drawn from (seed, epoch, dataset position): a process's slice keeps
    # the global (epoch, position) of its items, so the global batch, replacements and the failures it
    # names are the one-process ones whatever the number of processes
    batch, steps = 4, 6
    dataset = TrainingDataset(_SourceWithBadScans(12, bad), None, AugmentConfig(enabled=False), seed,
                              BadScanPolicy.SKIP)

    def global_items(world):
        per_rank = [
            _take(shard_batches(ResumableBatchSampler(12, batch, seed, start), batch, Shard(r, world)), steps)
            for r in range(world)
        ]
        return [[dataset[i] for r in range(world) for i in per_rank[r][b]] for b in range(steps)]

    one = global_items(1)
    assert global_items(2) == one
    assert global_items(4) == one
    for b, items in enumerate(_take(ResumableBatchSampler(12, batch, seed, start), steps)):
        for (epoch, position), got in zip(items, one[b], strict=True):
            if position not in bad:
                assert got == 100 + position
                continue
            assert isinstance(got, Replaced)  # by the first readable scan of the (seed, epoch, position) draw
            good = [p for p in replacement_positions(12, seed, epoch, position, 32) if p not in bad]
            assert got.item == 100 + good[0]
            assert got.failures[0] == LoadFailure(f"scan_{position}.bin", "truncated")
