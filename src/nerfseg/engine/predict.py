"""Inference: run a trained segmentor over a dataset split and write benchmark submission files.

SemanticKITTI / ScribbleKITTI: ``PRED/sequences/SS/predictions/FFFFFF.label`` (uint32 raw ids).
nuScenes: ``PRED/lidarseg/<split>/<lidar token>_lidarseg.bin`` (uint8 classes 1..16) and
``PRED/<split>/submission.json``. Both are what ``nerfseg evaluate`` reads. Only LiDAR is used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nerfseg.data.datasets import DatasetKind, open_dataset
from nerfseg.data.loader import make_eval_loader
from nerfseg.engine.checkpoint import build_segmentor, load_checkpoint
from nerfseg.engine.precision import inference_uses_bf16
from nerfseg.engine.train import predict_batch, resolve_device
from nerfseg.errors import ConfigError, DataError
from nerfseg.io_utils import ensure_writable_dir


@dataclass
class PredictResult:
    """Number of scans / points predicted, where the files went and how long it took (seconds)."""

    num_scans: int
    num_points: int
    out_dir: Path
    seconds: float


def predict(
    checkpoint_path: str | Path,
    data_root: str | Path,
    out_dir: str | Path,
    dataset: str | None = None,
    split: str = "val",
    version: str | None = None,
    batch_size: int = 1,
    num_workers: int = 0,
    device: str = "auto",
    precision: str = "auto",
    progress: bool = True,
    num_threads: int = 0,
) -> PredictResult:
    """Predict every scan of ``split`` and write submission files under ``out_dir``.

    Args:
        checkpoint_path: a training checkpoint (``last.pt``) or an inference export (``model.pt``).
        data_root: dataset root.
        out_dir: prediction root (created).
        dataset: dataset kind; None = the one the model was trained on (stored in the checkpoint).
        split: split to predict (``val``, ``test``, ``train``).
        version: nuScenes version; None = the checkpoint's ``data.version``.
        batch_size / num_workers: loading; device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 autocast on CUDA, float32 on the CPU), ``float32`` or ``bf16`` (bf16
            autocast where the device has native bf16, else float32 with a PrecisionFallbackWarning; see
            nerfseg.engine.precision).
        num_threads: torch intra-op threads for this call (0 = leave torch's setting).

    Raises ConfigError for batch_size < 1, num_workers < 0 or num_threads < 0 (named as the command's
    options); DataError for an ``out_dir`` that cannot be written (checked first), unreadable checkpoints
    or data, and when the dataset's classes differ from the model's.
    """
    for option, value, least in (("--batch-size", batch_size, 1), ("--workers", num_workers, 0),
                                 ("--threads", num_threads, 0)):  # fmt: skip
        if value < least:
            raise ConfigError(f"{option} must be >= {least}, got {value}")
    threads = torch.get_num_threads()
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    try:
        return _predict(checkpoint_path, data_root, out_dir, dataset, split, version, batch_size, num_workers,
                        device, precision, progress)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def _predict(
    checkpoint_path,
    data_root,
    out_dir,
    dataset,
    split,
    version,
    batch_size,
    num_workers,
    device,
    precision,
    progress,
) -> PredictResult:
    from tqdm import tqdm

    started = time.perf_counter()
    out_dir = ensure_writable_dir(out_dir, "--out")  # before the work, not after it
    state = load_checkpoint(checkpoint_path)
    model, cfg = build_segmentor(state, checkpoint_path)
    kind = DatasetKind(dataset or cfg.data.dataset)
    label_map = kind.label_map
    if label_map.num_classes != int(state["num_classes"]):
        raise DataError(
            checkpoint_path,
            f"model predicts {state['num_classes']} classes but {kind.value} has {label_map.num_classes}",
        )
    options = {"version": version or cfg.data.version} if kind is DatasetKind.NUSCENES else {}
    source = open_dataset(kind, data_root, split, load_images=False, **options)
    dev = resolve_device(device)
    bf16 = inference_uses_bf16(precision, dev)
    model.to(dev)
    if kind is DatasetKind.NUSCENES:
        from nerfseg.data.nuscenes import write_nuscenes_prediction, write_nuscenes_submission_json
    else:
        from nerfseg.data.submission import write_semantickitti_prediction

    num_scans = num_points = 0
    loader = make_eval_loader(source, batch_size, num_workers)
    with torch.inference_mode():
        for batch in tqdm(loader, desc="predict", disable=not progress):
            pred = predict_batch(model, batch, dev, bf16).numpy()
            index = batch.batch_index.numpy()
            for i, sample_id in enumerate(batch.sample_ids):
                ids = pred[index == i]
                if kind is DatasetKind.NUSCENES:
                    write_nuscenes_prediction(out_dir, split, sample_id, ids)
                else:
                    write_semantickitti_prediction(out_dir, sample_id, ids, label_map)
                num_scans += 1
                num_points += int(ids.shape[0])
    if kind is DatasetKind.NUSCENES:
        write_nuscenes_submission_json(
            out_dir,
            split,
            {
                "use_camera": False,
                "use_lidar": True,
                "use_radar": False,
                "use_map": False,
                "use_external": False,
            },
        )
    return PredictResult(num_scans, num_points, out_dir, time.perf_counter() - started)
