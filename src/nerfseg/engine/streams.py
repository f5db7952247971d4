"""The two training streams: labeled scans (with their labels) and unlabeled scans (labels stripped).

Both are endless, resumable streams (:class:`nerfseg.data.loader.ResumableBatchSampler`): batch ``s`` of a
stream is a pure function of (seed, s), so a run resumed at step ``s`` draws exactly what an uninterrupted run
would have drawn, whatever the number of workers.

**The unlabeled stream carries no labels into any loss.** Each unlabeled scan is read, its labels moved
out of the sample into ``UnlabeledBatch.metric_labels`` (used only to log pseudo-label accuracy), and the
samples handed to the methods have ``labels = None``. The scan comes in two augmentations of the same points
(same point order): ``teacher`` (what the EMA teacher sees) and ``student``. Cameras follow each view's
augmentation, so a pixel's ray meets the same surface in both views. For the camera methods the loader
workers also read the cached masks (and, where the dataset has it, the ground-truth semantic image for
metrics and the oracle diagnostic) of ``cameras_per_scan`` randomly chosen cameras.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.utils.data import Dataset

from nerfseg.data.augment import AugmentConfig, augment_sample, augmentation_rng
from nerfseg.data.collate import PointBatch, collate_samples
from nerfseg.data.ground_truth import read_semantic_train
from nerfseg.data.labelmaps import LabelMap
from nerfseg.data.loader import (
    BadScanPolicy,
    LoadFailure,
    Replaced,
    SampleSource,
    TrainingDataset,
    load_with_policy,
    make_train_loader,
    resumable_loader,
)
from nerfseg.data.sample import Sample
from nerfseg.masks.config import MasksConfig

STUDENT_VIEW_SEED = 0x57D
"""Seed offset of the student's augmentation of an unlabeled scan (the teacher's view uses the run seed)."""
UNLABELED_ORDER_SEED = 0x0A1
"""Seed offset of the unlabeled stream's order (independent of the labeled stream's)."""


@dataclass
class UnlabeledScan:
    """One unlabeled scan as the methods see it (no labels) plus what only metrics may read."""

    teacher: Sample
    student: Sample
    metric_labels: np.ndarray | None
    cameras: list[int] = field(default_factory=list)
    mask_ids: list[np.ndarray] = field(default_factory=list)
    pixel_truth: list[np.ndarray | None] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)


@dataclass
class UnlabeledBatch:
    """B unlabeled scans in two views.

    Attributes:
        teacher, student: PointBatch of the two augmentations (``labels`` is None in both; point i of one is
            point i of the other).
        metric_labels: (N,) int64 ground-truth train ids for pseudo-label accuracy only (None when the reader
            has none). No loss may read it.
        cameras: per scan, the indices (into ``Sample.cameras``) of the cameras chosen for this step.
        mask_ids: per scan and chosen camera, (H, W) int32 cached mask ids (-1 = no mask).
        pixel_truth: per scan and chosen camera, (H, W) int64 ground-truth train ids or None (metrics and
            the oracle diagnostic only).
        images: per scan and chosen camera, (H, W, 3) uint8 RGB when the loader was asked to keep them
            (``CameraInputs.images``), else empty lists.
    """

    teacher: PointBatch
    student: PointBatch
    metric_labels: torch.Tensor | None
    cameras: list[list[int]]
    mask_ids: list[list[np.ndarray]]
    pixel_truth: list[list[np.ndarray | None]]
    images: list[list[np.ndarray]] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return self.student.batch_size

    def to(self, device: torch.device | str) -> UnlabeledBatch:
        """Copy with both views' tensors on ``device`` (metric labels, masks and images stay on the CPU)."""
        return replace(self, teacher=self.teacher.to(device), student=self.student.to(device))

    def pin_memory(self) -> UnlabeledBatch:
        """Copy with both views' tensors in page-locked memory (DataLoader ``pin_memory=True`` calls it)."""
        return replace(self, teacher=self.teacher.pin_memory(), student=self.student.pin_memory())


def strip_labels(sample: Sample) -> Sample:
    """Copy of a sample with no labels (nor instance ids)."""
    return replace(sample, labels=None, instance_ids=None)


@dataclass
class CameraInputs:
    """What the unlabeled loader reads per camera for the camera methods.

    Attributes:
        cameras_per_scan: cameras drawn per scan (0 = all of them).
        masks: the mask settings (cache location and source); None = read no masks.
        dataset_root: the dataset root (default cache location).
        label_map: maps the ground-truth semantic images to train ids (metrics / oracle).
        pixel_truth: read the ground-truth semantic images where they exist.
        images: keep the chosen cameras' images (the appearance gate, ``ssl.camera.appearance``, reads them).
    """

    cameras_per_scan: int
    masks: MasksConfig | None
    dataset_root: str
    label_map: LabelMap
    pixel_truth: bool = True
    images: bool = False


class UnlabeledDataset(Dataset):
    """Item ``(epoch, position)`` -> :class:`UnlabeledScan` of ``source[indices[position]]``; an unreadable
    scan, image or mask follows ``on_bad_scan`` (:func:`nerfseg.data.loader.load_with_policy`: with ``skip``
    another unlabeled scan takes its place)."""

    def __init__(
        self,
        source: SampleSource,
        indices: Sequence[int],
        augment: AugmentConfig,
        seed: int,
        camera_inputs: CameraInputs | None = None,
        on_bad_scan: BadScanPolicy = BadScanPolicy.ERROR,
    ):
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.augment = augment
        self.seed = seed
        self.camera_inputs = camera_inputs
        self.on_bad_scan = on_bad_scan
        self._cache = None  # opened lazily in each worker

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def _mask_cache(self):
        if self._cache is None:
            from nerfseg.masks.config import open_mask_cache

            assert self.camera_inputs is not None and self.camera_inputs.masks is not None
            self._cache = open_mask_cache(self.camera_inputs.masks, self.camera_inputs.dataset_root)
        return self._cache

    def __getitem__(self, item: tuple[int, int]) -> UnlabeledScan | LoadFailure | Replaced:
        # a DataError leaves the worker as a value: the main process raises it (one line) or names it (skip)
        return load_with_policy(self._load, item, len(self), self.seed, self.on_bad_scan)

    def _load(self, epoch: int, position: int, key_position: int) -> UnlabeledScan:
        """The scan at ``position`` with the random draws (augmentation, cameras) of ``key_position``."""
        sample = self.source[int(self.indices[position])]
        index = int(self.indices[key_position])
        metric_labels = sample.labels
        bare = strip_labels(sample)
        if self.augment.enabled:
            teacher = augment_sample(bare, self.augment, augmentation_rng(self.seed, epoch, index))
            student = augment_sample(
                bare, self.augment, augmentation_rng(self.seed + STUDENT_VIEW_SEED, epoch, index)
            )
        else:
            teacher = student = bare
        scan = UnlabeledScan(teacher, student, metric_labels)
        if self.camera_inputs is not None and bare.cameras:
            self._read_cameras(scan, bare, epoch, index)
        return scan

    def _read_cameras(self, scan: UnlabeledScan, sample: Sample, epoch: int, index: int) -> None:
        inputs = self.camera_inputs
        count = len(sample.cameras)
        take = count if inputs.cameras_per_scan <= 0 else min(inputs.cameras_per_scan, count)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, index, 0xCA3]))
        scan.cameras = sorted(int(c) for c in rng.choice(count, size=take, replace=False))
        for c in scan.cameras:
            camera = sample.cameras[c]
            if inputs.masks is not None or inputs.images:
                image = camera.load_image()
                if inputs.masks is not None:
                    scan.mask_ids.append(
                        self._mask_cache().get(image, camera.image_path, inputs.masks.compute_missing)
                    )
                if inputs.images:
                    scan.images.append(image)
                camera.image = None  # the samples travel without pixels; the kept ones are in scan.images
            truth = read_semantic_train(camera, inputs.label_map) if inputs.pixel_truth else None
            scan.pixel_truth.append(truth)


def collate_unlabeled(scans: Sequence[UnlabeledScan]) -> UnlabeledBatch:
    """Batch unlabeled scans; the ground-truth labels travel apart, for metrics only."""
    teacher = collate_samples([s.teacher for s in scans])
    student = collate_samples([s.student for s in scans])
    metric_labels = None
    if all(s.metric_labels is not None for s in scans):
        metric_labels = torch.cat(
            [torch.from_numpy(np.asarray(s.metric_labels, dtype=np.int64)) for s in scans]
        )
    return UnlabeledBatch(
        teacher=teacher,
        student=student,
        metric_labels=metric_labels,
        cameras=[s.cameras for s in scans],
        mask_ids=[s.mask_ids for s in scans],
        pixel_truth=[s.pixel_truth for s in scans],
        images=[s.images for s in scans],
    )


def labeled_stream(
    source: SampleSource, indices: np.ndarray, augment: AugmentConfig, batch_size: int, seed: int,
    start_step: int, num_workers: int, on_bad_scan: BadScanPolicy = BadScanPolicy.ERROR, shard=None,
    pin_memory: bool = False,
) -> Iterator[PointBatch]:
    """Endless PointBatches of the labeled scans ``indices`` from batch ``start_step`` on (an unreadable
    scan is replaced by another labeled scan with ``on_bad_scan`` skip; read the stream with
    :func:`nerfseg.data.loader.next_batch`; ``shard``: this process's slice of each global batch of
    ``batch_size``)."""
    dataset = TrainingDataset(source, indices, augment, seed, on_bad_scan)
    return iter(make_train_loader(
        dataset, batch_size, seed, start_step, num_workers, shard=shard, pin_memory=pin_memory
    ))


def unlabeled_stream(dataset: UnlabeledDataset, batch_size: int, seed: int, start_step: int,
                     num_workers: int, shard=None, pin_memory: bool = False) -> Iterator[UnlabeledBatch]:
    """Endless UnlabeledBatches from batch ``start_step`` on (order seeded apart from the labeled stream;
    ``shard``: this process's slice of each global batch)."""
    return iter(resumable_loader(
        dataset, collate_unlabeled, batch_size, seed + UNLABELED_ORDER_SEED, start_step, num_workers, seed,
        shard=shard, pin_memory=pin_memory,
    ))
