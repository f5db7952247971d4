"""Sampler determinism and resumability, labeled subsets, worker independence, unreadable scans."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from nerfseg.data.augment import AugmentConfig
from nerfseg.data.bad_scans import BadScanPolicy
from nerfseg.data.loader import (
    Replaced,
    ResumableBatchSampler,
    TrainingDataset,
    close_batches,
    epoch_order,
    labeled_subset,
    make_eval_loader,
    make_train_loader,
    next_batch,
    replacement_positions,
)
from nerfseg.data.sample import Sample
from nerfseg.errors import DataError


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


class _SomeBad(_Scans):
    """``_Scans`` whose scans in ``bad`` raise a DataError naming their file."""

    def __init__(self, n: int, bad: set[int]):
        super().__init__(n)
        self.bad = bad

    def __getitem__(self, index: int) -> Sample:
        if index in self.bad:
            raise DataError(f"/data/{index:06d}.bin", "size 10 bytes is not a whole number of points")
        return super().__getitem__(index)


def _stream(source, policy, num_workers=0, start_step=0, steps=6, indices=None):
    """(sample ids per batch, failures per batch) of ``steps`` batches of 2 from ``start_step``."""
    ds = TrainingDataset(source, indices=indices, augment=AugmentConfig(), seed=4, on_bad_scan=policy)
    loader = make_train_loader(ds, batch_size=2, seed=4, start_step=start_step, num_workers=num_workers)
    batches = iter(loader)
    out = []
    for _ in range(steps):
        seen = []
        batch = next_batch(batches, seen.extend)
        out.append((batch.sample_ids, batch.points.clone(), [f.path for f in seen]))
    close_batches(batches)
    return out


def test_replacement_positions_are_seeded_distinct_and_skip_the_bad_one():
    a = replacement_positions(10, seed=1, epoch=2, position=3, count=32)
    assert sorted(a.tolist()) == [0, 1, 2, 4, 5, 6, 7, 8, 9]  # every other position once, at most 9
    assert np.array_equal(a, replacement_positions(10, 1, 2, 3, 32))
    assert not np.array_equal(a, replacement_positions(10, 1, 3, 3, 32))
    assert replacement_positions(1000, 0, 0, 7, 5).shape == (5,)
    assert 7 not in replacement_positions(1000, 0, 0, 7, 999).tolist()
    assert replacement_positions(1, 0, 0, 0, 5).size == 0


def test_error_policy_raises_the_first_bad_scan_naming_its_file():
    with pytest.raises(DataError, match=r"000002\.bin: size 10 bytes"):
        _stream(_SomeBad(5, {2}), BadScanPolicy.ERROR, steps=10)


def test_skip_replaces_bad_scans_keeps_batch_size_and_reports_them():
    good = _stream(_Scans(6), BadScanPolicy.SKIP, steps=9)  # 3 epochs of 6 scans
    skipped = _stream(_SomeBad(6, {1, 4}), BadScanPolicy.SKIP, steps=9)
    reported = [p for _, _, paths in skipped for p in paths]
    assert sorted(set(reported)) == ["/data/000001.bin", "/data/000004.bin"]
    # each bad scan is met once per epoch in its own slot, maybe more as a replacement that failed too (the
    # loader reports every meeting; the run's skip log names each file once)
    assert len(reported) >= 6
    for (ids_good, pts_good, _), (ids, pts, paths) in zip(good, skipped, strict=True):
        assert len(ids) == 2 and not {"00/000001", "00/000004"} & set(ids)
        bad_slots = {f"/data/{sid[3:]}.bin" for sid in ids_good if sid in ("00/000001", "00/000004")}
        assert set(paths) >= bad_slots and bool(paths) == bool(bad_slots)
        if not bad_slots:  # batches without a bad scan are untouched
            assert ids == ids_good and torch.equal(pts, pts_good)
    # a replacement is augmented with the draws of the slot it fills, not as in its own appearance
    ds = TrainingDataset(_SomeBad(6, {1}), None, AugmentConfig(), seed=4, on_bad_scan=BadScanPolicy.SKIP)
    stand_in = ds[(0, 1)]
    assert isinstance(stand_in, Replaced) and [f.path for f in stand_in.failures] == ["/data/000001.bin"]
    own = ds[(0, int(stand_in.item.sample_id[3:]))]
    assert own.sample_id == stand_in.item.sample_id
    assert not np.allclose(own.points[:, :3], stand_in.item.points[:, :3])
    assert np.array_equal(own.points[:, 3], stand_in.item.points[:, 3])


def test_skip_is_the_same_with_workers_and_after_resume():
    source = _SomeBad(6, {0, 3})
    serial = _stream(source, BadScanPolicy.SKIP, steps=8)
    parallel = _stream(source, BadScanPolicy.SKIP, num_workers=2, steps=8)
    resumed = _stream(source, BadScanPolicy.SKIP, start_step=5, steps=3)
    for a, b in zip(serial, parallel, strict=True):
        assert a[0] == b[0] and torch.equal(a[1], b[1]) and a[2] == b[2]
    for a, b in zip(serial[5:], resumed, strict=True):
        assert a[0] == b[0] and torch.equal(a[1], b[1]) and a[2] == b[2]


def test_skip_draws_replacements_from_the_streams_own_scans():
    # labeled subset {0, 2, 3}: a bad labeled scan is replaced by another labeled one, never by 1 or 4
    batches = _stream(_SomeBad(5, {2}), BadScanPolicy.SKIP, steps=9, indices=[0, 2, 3])
    assert {sid for ids, _, _ in batches for sid in ids} == {"00/000000", "00/000003"}


def test_skip_with_every_scan_bad_is_one_clear_error():
    with pytest.raises(DataError, match=r"data.on_bad_scan is skip, but the 3 scans tried in its place"):
        _stream(_SomeBad(4, {0, 1, 2, 3}), BadScanPolicy.SKIP)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_eval_loader_raises_an_unreadable_scan_as_one_clear_error(num_workers):
    loader = make_eval_loader(_SomeBad(4, {2}), batch_size=2, num_workers=num_workers)
    assert len(loader) == 2
    batches = iter(loader)
    assert next(batches).sample_ids == ["00/000000", "00/000001"]
    with pytest.raises(DataError, match=r"^/data/000002\.bin: size 10 bytes"):  # not torch's RuntimeError
        next(batches)
