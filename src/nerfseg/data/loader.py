"""Data loading for training: a deterministic, resumable sampler and a Dataset wrapper that augments.

Data order: the run is an endless stream of dataset positions; epoch ``e`` visits the items in the order
``torch.randperm(n, generator=seed_e)`` with ``seed_e`` derived from (seed, e). Batch ``b`` (0-based training
step) holds stream positions ``[b * B, (b + 1) * B)``, so a run resumed at step ``s`` continues with exactly
the batches an uninterrupted run would have drawn, whatever the number of workers. Each item carries its
(epoch, index) so augmentation is seeded from (seed, epoch, index), independent of worker scheduling.

Unreadable scans (:class:`BadScanPolicy`, the config's ``data.on_bad_scan``): with ``error`` the first one
stops the run with its DataError; with ``skip`` the item of an unreadable scan is loaded from another position
of the same stream instead, drawn from (seed, epoch, position) alone (:func:`replacement_positions`), and its
failures travel with the batch (:class:`Replaced`, :class:`WithSkips`) so the main process can name them. The
batch keeps its size and batch ``b`` stays a pure function of (seed, b): a resumed run draws what an
uninterrupted one would have drawn, bad scans included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from nerfseg.data.augment import AugmentConfig, augment_sample, augmentation_rng
from nerfseg.data.bad_scans import BadScanPolicy
from nerfseg.data.collate import collate_samples
from nerfseg.data.sample import Sample
from nerfseg.errors import DataError

MAX_REPLACEMENT_TRIES = 32
"""Scans tried in place of an unreadable one before the run stops (the data is then broken, not one scan)."""


@dataclass(frozen=True)
class LoadFailure:
    """A DataError raised while loading an item, carried out of a DataLoader worker as a value (torch
    re-raises worker exceptions as a RuntimeError holding the worker's traceback, not as the one clear line a
    user should see). :func:`next_batch` raises it again in the main process."""

    path: str
    problem: str

    def error(self) -> DataError:
        return DataError(self.path, self.problem)


@dataclass(frozen=True)
class Replaced:
    """An item loaded from another position because its own scan (and maybe earlier replacements) failed.

    Attributes:
        item: the loaded item (a Sample, an UnlabeledScan, ...).
        failures: the unreadable scans it stands in for, in the order they were tried.
    """

    item: Any
    failures: tuple[LoadFailure, ...]


@dataclass(frozen=True)
class WithSkips:
    """A collated batch some of whose items were :class:`Replaced`; ``failures`` lists their bad scans."""

    batch: Any
    failures: tuple[LoadFailure, ...]

    def pin_memory(self) -> WithSkips:
        """The batch in page-locked memory (DataLoader ``pin_memory=True`` calls it)."""
        pin = getattr(self.batch, "pin_memory", None)
        return WithSkips(pin() if pin is not None else self.batch, self.failures)


def replacement_positions(num_items: int, seed: int, epoch: int, position: int, count: int) -> np.ndarray:
    """(min(count, num_items - 1),) int64 distinct positions in [0, num_items), ``position`` excluded, tried
    in this order in place of the unreadable item ``position`` of ``epoch``; a pure function of the
    arguments (the same scans replace it in a resumed run and whatever the number of workers)."""
    take = min(count, num_items - 1)
    if take <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(position), 0xBAD5CA]))
    drawn = rng.choice(num_items - 1, size=take, replace=False).astype(np.int64)
    return drawn + (drawn >= position)  # skip the unreadable position itself


def load_with_policy(
    load: Callable[[int, int, int], Any],
    item: tuple[int, int],
    num_items: int,
    seed: int,
    policy: BadScanPolicy,
) -> Any:
    """Load ``item = (epoch, position)`` with ``load(epoch, source_position, key_position)``, which raises
    DataError for an unreadable scan; ``key_position`` seeds the item's random draws (augmentation, cameras).

    Returns the loaded item, a :class:`LoadFailure` (``error``, or ``skip`` when no replacement among
    :data:`MAX_REPLACEMENT_TRIES` could be read either) or, with ``skip``, a :class:`Replaced` holding the
    item at the first readable position of :func:`replacement_positions` (augmented with the draws of the
    slot it fills, so it differs from that scan's own appearance in the epoch).
    """
    epoch, position = item
    try:
        return load(epoch, position, position)
    except DataError as err:
        first = LoadFailure(str(err.path), err.problem)
    if policy is BadScanPolicy.ERROR:
        return first
    failures = [first]
    for candidate in replacement_positions(num_items, seed, epoch, position, MAX_REPLACEMENT_TRIES):
        try:
            return Replaced(load(epoch, int(candidate), position), tuple(failures))
        except DataError as err:
            failures.append(LoadFailure(str(err.path), err.problem))
    return LoadFailure(
        first.path,
        f"{first.problem}; data.on_bad_scan is skip, but the {len(failures) - 1} scans tried in its place "
        f"could not be read either (last: {failures[-1].path}: {failures[-1].problem})",
    )


def catching_failures(collate):
    """Wrap a collate function: a batch holding a :class:`LoadFailure` collates to that failure; one holding
    :class:`Replaced` items collates their items into a :class:`WithSkips` that names the bad scans."""

    def collate_or_failure(items):
        loaded, failures = [], []
        for item in items:
            if isinstance(item, LoadFailure):
                return item
            if isinstance(item, Replaced):
                failures.extend(item.failures)
                item = item.item
            loaded.append(item)
        batch = collate(loaded)
        return WithSkips(batch, tuple(failures)) if failures else batch

    return collate_or_failure


def next_batch(batches, on_skip: Callable[[tuple[LoadFailure, ...]], None] | None = None):
    """The next batch of a loader built with :func:`catching_failures`; raises the DataError of a failed
    item (naming its file) instead of returning it, and hands the unreadable scans that replaced items
    stood in for to ``on_skip`` (None: they pass unnamed)."""
    batch = next(batches)
    if isinstance(batch, LoadFailure):
        raise batch.error()
    if isinstance(batch, WithSkips):
        if on_skip is not None:
            on_skip(batch.failures)
        batch = batch.batch
    return batch


def close_batches(batches) -> None:
    """Stop a DataLoader iterator's worker processes now (an interrupted run): the workers are killed
    rather than asked to finish the item they are loading (torch's own shutdown waits up to 5 s per busy
    worker), then torch's bookkeeping (queues, the SIGCHLD watch) is closed. No-op for other iterators."""
    workers = getattr(batches, "_workers", None)
    if not workers or getattr(batches, "_shutdown", True):
        return
    from torch.utils.data import _utils

    if getattr(batches, "_worker_pids_set", False):  # or torch's SIGCHLD handler reports the kill as a crash
        _utils.signal_handling._remove_worker_pids(id(batches))
        batches._worker_pids_set = False
    for worker in workers:
        if worker.is_alive():
            worker.kill()
    for worker in workers:
        worker.join(timeout=1.0)
    batches._shutdown_workers()


class SampleSource(Protocol):
    """What every dataset reader offers: a length and samples by position."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


def labeled_subset(num_items: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted (K,) int64 positions of the labeled subset: ``K = max(1, round(fraction * num_items))`` items
    drawn without replacement by ``seed`` (all items when fraction >= 1). Same seed -> same subset; a
    smaller fraction with the same seed gives a subset of a larger one (prefix of one permutation)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    if fraction >= 1.0:
        return np.arange(num_items, dtype=np.int64)
    count = min(num_items, max(1, int(round(fraction * num_items))))
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x1ABE1])).permutation(num_items)
    return np.sort(order[:count]).astype(np.int64)


def epoch_order(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """(num_items,) int64 permutation visited in ``epoch`` of a run seeded ``seed``."""
    generator = torch.Generator().manual_seed(
        int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])
    )
    return torch.randperm(num_items, generator=generator)


class ResumableBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of (epoch, position) pairs, starting at batch ``start_batch``.

    Args:
        num_items: dataset length (> 0).
        batch_size: items per batch.
        seed: run seed.
        start_batch: index of the first batch to yield (the number of training steps already done).
        shuffle: False visits positions in order every epoch (validation-like order).
    """

    def __init__(
        self, num_items: int, batch_size: int, seed: int, start_batch: int = 0, shuffle: bool = True
    ):
        if num_items <= 0:
            raise ValueError("cannot sample batches from an empty dataset")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start_batch = start_batch
        self.shuffle = shuffle

    def _order(self, epoch: int) -> torch.Tensor:
        if self.shuffle:
            return epoch_order(self.num_items, self.seed, epoch)
        return torch.arange(self.num_items)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        position = self.start_batch * self.batch_size
        epoch = position // self.num_items
        order = self._order(epoch)
        while True:
            batch = []
            for _ in range(self.batch_size):
                e, p = divmod(position, self.num_items)
                if e != epoch:
                    epoch, order = e, self._order(e)
                batch.append((epoch, int(order[p])))
                position += 1
            yield batch


class TrainingDataset(Dataset):
    """Wraps a reader: item ``(epoch, position)`` -> the augmented Sample at ``indices[position]``.

    Args:
        source: the reader (``__len__`` / ``__getitem__ -> Sample``).
        indices: (K,) positions in ``source`` used for training (e.g. :func:`labeled_subset`); None = all.
        augment: augmentation settings (``enabled=False`` returns the samples unchanged).
        seed: run seed for the augmentation generators.
    """

    def __init__(
        self, source: SampleSource, indices: Sequence[int] | None, augment: AugmentConfig, seed: int,
        on_bad_scan: BadScanPolicy = BadScanPolicy.ERROR,
    ):
        self.source = source
        self.indices = np.arange(len(source)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.augment = augment
        self.seed = seed
        self.on_bad_scan = on_bad_scan

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, item: tuple[int, int]) -> Sample | LoadFailure | Replaced:
        return load_with_policy(self._load, item, len(self), self.seed, self.on_bad_scan)

    def _load(self, epoch: int, position: int, key_position: int) -> Sample:
        sample = self.source[int(self.indices[position])]
        if self.augment.enabled:
            key = int(self.indices[key_position])
            sample = augment_sample(sample, self.augment, augmentation_rng(self.seed, epoch, key))
        return sample


def make_train_loader(
    dataset: TrainingDataset, batch_size: int, seed: int, start_step: int, num_workers: int, shard=None,
    pin_memory: bool = False,
) -> DataLoader:
    """DataLoader of PointBatch for training, resuming at batch ``start_step``.

    The loader gets its own torch.Generator so creating it consumes nothing from the global RNG (which the
    checkpoint restores).
    """
    return resumable_loader(
        dataset, collate_samples, batch_size, seed, start_step, num_workers, shard=shard,
        pin_memory=pin_memory,
    )


def exit_with_parent(worker_id: int) -> None:  # noqa: ARG001 - DataLoader's worker_init_fn signature
    """DataLoader ``worker_init_fn``: on Linux the worker is killed when the process that started it dies
    (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), so a training killed with SIGKILL leaves no loader workers behind
    (torch's own watchdog only notices a dead parent between batches, and a worker blocked on its queue waits
    forever). The worker ignores SIGINT: a Ctrl-C reaches the whole process group, and the main process stops
    its workers itself (:func:`close_batches`); a worker dying of it would print a traceback of its own and
    make torch's SIGCHLD watch raise "worker exited unexpectedly" in the main process."""
    import os
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def resumable_loader(
    dataset: Dataset, collate, batch_size: int, order_seed: int, start_step: int, num_workers: int,
    generator_seed: int | None = None, shard=None, pin_memory: bool = False,
) -> DataLoader:
    """DataLoader of an endless :class:`ResumableBatchSampler` stream (order drawn from ``order_seed``) from
    batch ``start_step`` on, collating with ``collate`` (failed items pass as :class:`LoadFailure`, replaced
    ones as :class:`WithSkips`: read it with :func:`next_batch`). ``shard`` (a
    :class:`nerfseg.data.distributed_sampling.Shard`): this process's slice of every global batch of
    ``batch_size`` items (the items keep their global (epoch, position), so a bad scan's replacement is the
    one a single process draws). ``pin_memory``: batches (their ``pin_memory()``) are page-locked by the
    loader's pinning thread, for asynchronous copies to a CUDA device."""
    from nerfseg.data.distributed_sampling import shard_batches

    sampler = ResumableBatchSampler(len(dataset), batch_size, order_seed, start_batch=start_step)
    sampler = shard_batches(sampler, batch_size, shard)
    seed = order_seed if generator_seed is None else generator_seed
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=catching_failures(collate),
        generator=torch.Generator().manual_seed(int(seed)),
        worker_init_fn=exit_with_parent,
        persistent_workers=False,
        prefetch_factor=2 if num_workers > 0 else None,
        pin_memory=pin_memory,
    )


class _Positions(Dataset):
    def __init__(self, source: SampleSource, indices: np.ndarray):
        self.source = source
        self.indices = indices

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, position: int) -> Sample | LoadFailure:
        try:
            return self.source[int(self.indices[position])]
        except DataError as err:  # leaves the worker as a value, raised in the main process
            return LoadFailure(str(err.path), err.problem)


class RaisingLoader:
    """Iterates a DataLoader built with :func:`catching_failures`, raising the DataError of a failed item
    (one line naming the file) in the main process; anything else is the DataLoader's (``len``, ...)."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if isinstance(batch, LoadFailure):
                raise batch.error()
            yield batch

    def __getattr__(self, name: str):
        return getattr(self.loader, name)


def make_eval_loader(
    source: SampleSource, batch_size: int, num_workers: int, max_items: int = 0
) -> RaisingLoader:
    """PointBatches over ``source`` in order, no augmentation; ``max_items > 0`` takes the first
    ``max_items`` evenly spaced items (a quick validation subset). An unreadable scan raises its DataError
    (no skipping: a score must cover the scans it names), also from a worker."""
    n = len(source)
    if max_items and max_items < n:
        indices = np.unique(np.linspace(0, n - 1, max_items).round().astype(np.int64))
    else:
        indices = np.arange(n, dtype=np.int64)
    return RaisingLoader(DataLoader(
        _Positions(source, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=catching_failures(collate_samples),
        generator=torch.Generator().manual_seed(0),
        worker_init_fn=exit_with_parent,
    ))
