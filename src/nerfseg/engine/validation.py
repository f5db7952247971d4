"""Validation during training: confusion-matrix mIoU of the student on a labeled reader."""

from __future__ import annotations

import torch

from nerfseg.config import Config
from nerfseg.data.datasets import DatasetKind
from nerfseg.data.loader import make_eval_loader
from nerfseg.engine.precision import inference_uses_bf16


@torch.no_grad()
def predict_batch(model: torch.nn.Module, batch, device: torch.device, bf16: bool) -> torch.Tensor:
    """(N,) int64 predicted train ids (on the CPU) for a PointBatch; ``bf16``: under bf16 autocast (any
    device)."""
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(batch.to(device))
    return out.point_logits.float().argmax(dim=1).cpu()


def validate(model: torch.nn.Module, source, cfg: Config, device: torch.device, progress: bool = False):
    """Scores (nerfseg.engine.metrics.Scores) of ``model`` on a labeled reader, by the official rule."""
    from tqdm import tqdm

    from nerfseg.engine.metrics import ConfusionMatrix, nuscenes_scores, semantickitti_scores

    label_map = DatasetKind(cfg.data.dataset).label_map
    cm = ConfusionMatrix(label_map.num_classes)
    was_training = model.training
    model.eval()
    loader = make_eval_loader(source, cfg.data.val_batch_size, cfg.data.num_workers, cfg.data.val_max_scans)
    bf16 = inference_uses_bf16("auto" if cfg.train.bf16 else "float32", device)
    for batch in tqdm(loader, desc="validate", leave=False, disable=not progress):
        if batch.labels is None:
            continue
        cm.update(predict_batch(model, batch, device, bf16).numpy(), batch.labels.numpy())
    model.train(was_training)
    rule = nuscenes_scores if cfg.data.dataset == DatasetKind.NUSCENES.value else semantickitti_scores
    return rule(cm, label_map.class_names)
