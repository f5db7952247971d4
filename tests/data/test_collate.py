"""Collate: one flat point tensor per batch; per-scan metadata travels without a second copy of the points."""

import pickle

import numpy as np
import torch

from nerfseg.data.collate import collate_samples
from nerfseg.data.sample import IGNORE_INDEX, CameraFrame, Sample


def _sample(n: int, labeled: bool, seed: int) -> Sample:
    rng = np.random.default_rng(seed)
    camera = CameraFrame(name="image_2", image_path="x.png", K=np.eye(3), lidar_to_cam=np.eye(4),
                         timestamp=0.05, image_size=(8, 4))
    return Sample(
        sample_id=f"00/{seed:06d}",
        points=rng.normal(size=(n, 4)).astype(np.float32),
        labels=rng.integers(0, 19, n) if labeled else None,
        timestamp=0.1 * seed,
        cameras=[camera],
        instance_ids=np.zeros(n, dtype=np.int64) if labeled else None,
    )


def test_batch_of_labeled_and_unlabeled_scans():
    a, b = _sample(5, True, 1), _sample(3, False, 2)
    batch = collate_samples([a, b])
    assert torch.equal(batch.points, torch.from_numpy(np.concatenate([a.points, b.points])))
    assert batch.batch_index.tolist() == [0] * 5 + [1] * 3
    assert batch.labels.tolist() == a.labels.tolist() + [IGNORE_INDEX] * 3
    assert batch.sample_ids == ["00/000001", "00/000002"]


def test_samples_keep_cameras_and_times_but_not_the_points():
    scans = [_sample(20000, True, s) for s in range(2)]
    batch = collate_samples(scans)
    for kept, source in zip(batch.samples, scans, strict=True):
        assert kept.sample_id == source.sample_id and kept.timestamp == source.timestamp
        assert len(kept.cameras) == 1 and kept.cameras[0] is source.cameras[0]
        assert kept.points.shape == (0, 4) and kept.labels is None and kept.instance_ids is None
    assert scans[0].points.shape == (20000, 4) and scans[0].labels is not None  # the inputs are not changed
    metadata = len(pickle.dumps(batch.samples))
    assert metadata < 0.01 * sum(s.points.nbytes for s in scans)  # what a loader worker sends besides tensors
