"""Batching of LiDAR samples into one flat point tensor (the input of the segmentor)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from nerfseg.data.sample import IGNORE_INDEX, Sample


@dataclass
class PointBatch:
    """Points of B scans concatenated.

    Attributes:
        points: (N, 4) float32, columns x, y, z (metres, each scan's own `lidar` frame) and
            intensity in [0, 1].
        batch_index: (N,) int64, the scan each point belongs to, in [0, B).
        labels: (N,) int64 train ids or IGNORE_INDEX; None when no scan of the batch is labeled.
        sample_ids: the B sample ids, in batch order.
        samples: the B source samples' cameras, timestamps and paths for heads that need them, their point
            arrays left out (``points`` has 0 rows, no labels: the batch's tensors hold them; a loader worker
            then sends each scan's points once, not twice); not moved by `to`.
    """

    points: torch.Tensor
    batch_index: torch.Tensor
    labels: torch.Tensor | None
    sample_ids: list[str]
    samples: list[Sample] = field(default_factory=list, repr=False)

    @property
    def batch_size(self) -> int:
        return len(self.sample_ids)

    def pin_memory(self) -> PointBatch:
        """Copy with the tensors in page-locked memory, so ``to(cuda)`` copies asynchronously (DataLoader
        ``pin_memory=True`` calls it in its pinning thread; needs CUDA)."""
        return replace(
            self,
            points=self.points.pin_memory(),
            batch_index=self.batch_index.pin_memory(),
            labels=None if self.labels is None else self.labels.pin_memory(),
        )

    def to(self, device: torch.device | str) -> PointBatch:
        """Copy of the batch with its tensors on ``device``."""
        return PointBatch(
            points=self.points.to(device, non_blocking=True),
            batch_index=self.batch_index.to(device, non_blocking=True),
            labels=None if self.labels is None else self.labels.to(device, non_blocking=True),
            sample_ids=self.sample_ids,
            samples=self.samples,
        )


def collate_samples(samples: Sequence[Sample]) -> PointBatch:
    """Concatenate samples into a PointBatch (first 4 point columns; unlabeled scans get IGNORE_INDEX)."""
    points = [torch.from_numpy(np.ascontiguousarray(s.points[:, :4], dtype=np.float32)) for s in samples]
    batch_index = torch.cat(
        [torch.full((p.shape[0],), i, dtype=torch.int64) for i, p in enumerate(points)]
    ) if points else torch.zeros(0, dtype=torch.int64)
    any_labeled = any(s.labels is not None for s in samples)
    labels = None
    if any_labeled:
        labels = torch.cat(
            [
                torch.from_numpy(s.labels.astype(np.int64))
                if s.labels is not None
                else torch.full((s.num_points,), IGNORE_INDEX, dtype=torch.int64)
                for s in samples
            ]
        )
    return PointBatch(
        points=torch.cat(points) if points else torch.zeros((0, 4)),
        batch_index=batch_index,
        labels=labels,
        sample_ids=[s.sample_id for s in samples],
        samples=[_metadata(s) for s in samples],
    )


def _metadata(sample: Sample) -> Sample:
    """``sample`` without its per-point arrays (0-row points, no labels nor instance ids)."""
    return replace(sample, points=sample.points[:0], labels=None, instance_ids=None)
