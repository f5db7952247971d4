"""The distributed batch streams: disjoint per-process slices of one seeded global order, resumable."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.data.distributed_sampling import Shard, ShardedBatchSampler, per_process_batch, shard_batches
from nerfseg.data.loader import ResumableBatchSampler
from nerfseg.errors import ConfigError


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
