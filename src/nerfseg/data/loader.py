"""Data loading for training: a deterministic, resumable sampler and a Dataset wrapper that augments.

Data order: the run is an endless stream of dataset positions; epoch ``e`` visits the items in the order
``torch.randperm(n, generator=seed_e)`` with ``seed_e`` derived from (seed, e). Batch ``b`` (0-based training
step) holds stream positions ``[b * B, (b + 1) * B)``, so a run resumed at step ``s`` continues with exactly
the batches an uninterrupted run would have drawn, whatever the number of workers. Each item carries its
(epoch, index) so augmentation is seeded from (seed, epoch, index), independent of worker scheduling.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from nerfseg.data.augment import AugmentConfig, augment_sample, augmentation_rng
from nerfseg.data.collate import collate_samples
from nerfseg.data.sample import Sample
from nerfseg.errors import DataError


@dataclass(frozen=True)
class LoadFailure:
    """A DataError raised while loading an item, carried out of a DataLoader worker as a value (torch
    re-raises worker exceptions as a RuntimeError holding the worker's traceback, not as the one clear line a
    user should see). :func:`next_batch` raises it again in the main process."""

    path: str
    problem: str

    def error(self) -> DataError:
        return DataError(self.path, self.problem)


def catching_failures(collate):
    """Wrap a collate function: a batch holding a :class:`LoadFailure` collates to that failure."""

    def collate_or_failure(items):
        for item in items:
            if isinstance(item, LoadFailure):
                return item
        return collate(items)

    return collate_or_failure


def next_batch(batches):
    """The next batch of a loader built with :func:`catching_failures`; raises the DataError of a failed
    item (naming its file) instead of returning it."""
    batch = next(batches)
    if isinstance(batch, LoadFailure):
        raise batch.error()
    return batch


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
        self, source: SampleSource, indices: Sequence[int] | None, augment: AugmentConfig, seed: int
    ):
        self.source = source
        self.indices = np.arange(len(source)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, item: tuple[int, int]) -> Sample | LoadFailure:
        epoch, position = item
        index = int(self.indices[position])
        try:
            sample = self.source[index]
        except DataError as err:
            return LoadFailure(str(err.path), err.problem)
        if self.augment.enabled:
            sample = augment_sample(sample, self.augment, augmentation_rng(self.seed, epoch, index))
        return sample


def make_train_loader(
    dataset: TrainingDataset, batch_size: int, seed: int, start_step: int, num_workers: int
) -> DataLoader:
    """DataLoader of PointBatch for training, resuming at batch ``start_step``.

    The loader gets its own torch.Generator so creating it consumes nothing from the global RNG (which the
    checkpoint restores).
    """
    return resumable_loader(dataset, collate_samples, batch_size, seed, start_step, num_workers)


def exit_with_parent(worker_id: int) -> None:  # noqa: ARG001 - DataLoader's worker_init_fn signature
    """DataLoader ``worker_init_fn``: on Linux the worker is killed when the process that started it dies
    (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), so a training killed with SIGKILL leaves no loader workers behind
    (torch's own watchdog only notices a dead parent between batches, and a worker blocked on its queue waits
    forever)."""
    import os
    import signal
    import sys

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
    generator_seed: int | None = None,
) -> DataLoader:
    """DataLoader of an endless :class:`ResumableBatchSampler` stream (order drawn from ``order_seed``) from
    batch ``start_step`` on, collating with ``collate`` (failed items pass as :class:`LoadFailure`)."""
    sampler = ResumableBatchSampler(len(dataset), batch_size, order_seed, start_batch=start_step)
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
    )


class _Positions(Dataset):
    def __init__(self, source: SampleSource, indices: np.ndarray):
        self.source = source
        self.indices = indices

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, position: int) -> Sample:
        return self.source[int(self.indices[position])]


def make_eval_loader(
    source: SampleSource, batch_size: int, num_workers: int, max_items: int = 0
) -> DataLoader:
    """DataLoader of PointBatch over ``source`` in order, no augmentation; ``max_items > 0`` takes the first
    ``max_items`` evenly spaced items (a quick validation subset)."""
    n = len(source)
    if max_items and max_items < n:
        indices = np.unique(np.linspace(0, n - 1, max_items).round().astype(np.int64))
    else:
        indices = np.arange(n, dtype=np.int64)
    return DataLoader(
        _Positions(source, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_samples,
        generator=torch.Generator().manual_seed(0),
        worker_init_fn=exit_with_parent,
    )
