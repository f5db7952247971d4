"""Sampler determinism and resumability, labeled subsets, worker independence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from nerfseg.data.augment import AugmentConfig
from nerfseg.data.loader import (
    ResumableBatchSampler,
    TrainingDataset,
    epoch_order,
    labeled_subset,
    make_eval_loader,
    make_train_loader,
)
from nerfseg.data.sample import Sample


class _Scans:
    """A tiny in-memory reader: scan i has 20 + i points whose intensity column is i / 100."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Sample:
        rng = np.random.default_rng(index)
        pts = rng.uniform(-5, 5, size=(20 + index, 4)).astype(np.float32)
        pts[:, 3] = index / 100
        return Sample(f"00/{index:06d}", pts, np.full(20 + index, index % 3, np.int64), float(index))


def _take(sampler, count):
    return list(itertools.islice(iter(sampler), count))


def test_stream_visits_each_item_once_per_epoch_and_is_seeded():
    batches = _take(ResumableBatchSampler(7, 3, seed=5), 7)  # 21 items = 3 epochs
    flat = [item for b in batches for item in b]
    for epoch in range(3):
        positions = [p for e, p in flat if e == epoch]
        assert sorted(positions) == list(range(7))
        assert positions == epoch_order(7, 5, epoch).tolist()
    assert flat != [item for b in _take(ResumableBatchSampler(7, 3, seed=6), 7) for item in b]


def test_resumed_sampler_continues_the_same_stream():
    full = _take(ResumableBatchSampler(5, 2, seed=1), 12)
    for start in (0, 1, 2, 3, 7, 11):
        assert _take(ResumableBatchSampler(5, 2, seed=1, start_batch=start), 12 - start) == full[start:]


def test_labeled_subset_deterministic_nested_and_sized():
    a = labeled_subset(1000, 0.1, seed=3)
    assert len(a) == 100 and np.array_equal(a, labeled_subset(1000, 0.1, seed=3))
    assert np.all(np.diff(a) > 0)
    assert set(labeled_subset(1000, 0.01, seed=3)) <= set(a)
    assert not np.array_equal(a, labeled_subset(1000, 0.1, seed=4))
    assert len(labeled_subset(10, 0.01, seed=0)) == 1
    assert np.array_equal(labeled_subset(4, 1.0, seed=0), np.arange(4))
    with pytest.raises(ValueError):
        labeled_subset(4, 0.0, seed=0)


def _batches(num_workers, start_step, steps):
    ds = TrainingDataset(_Scans(5), indices=[0, 2, 3, 4], augment=AugmentConfig(), seed=9)
    loader = make_train_loader(ds, batch_size=2, seed=9, start_step=start_step, num_workers=num_workers)
    return [(b.sample_ids, b.points.clone(), b.labels.clone()) for b in itertools.islice(loader, steps)]


def test_batches_identical_with_workers_and_after_resume():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    serial = _batches(0, 0, 5)
    assert torch.equal(before, torch.get_rng_state())  # the loader leaves the global RNG alone
    parallel = _batches(2, 0, 5)
    resumed = _batches(0, 3, 2)
    for a, b in zip(serial, parallel, strict=True):
        assert a[0] == b[0] and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
    for a, b in zip(serial[3:], resumed, strict=True):
        assert a[0] == b[0] and torch.equal(a[1], b[1])
    assert all(sid.split("/")[1] != "000001" for ids, _, _ in serial for sid in ids)  # not in the subset
    # augmentation changed the coordinates but not the intensity column / labels
    src = _Scans(5)[int(serial[0][0][0].split("/")[1])]
    n = src.num_points
    assert not torch.allclose(serial[0][1][:n, :3], torch.from_numpy(src.points[:, :3]))
    assert torch.equal(serial[0][1][:n, 3], torch.from_numpy(src.points[:, 3]))


def test_eval_loader_in_order_and_subsampled():
    ids = [sid for b in make_eval_loader(_Scans(6), batch_size=4, num_workers=0) for sid in b.sample_ids]
    assert ids == [f"00/{i:06d}" for i in range(6)]
    ids = [
        sid
        for b in make_eval_loader(_Scans(6), batch_size=4, num_workers=0, max_items=3)
        for sid in b.sample_ids
    ]
    assert ids == ["00/000000", "00/000002", "00/000005"]
