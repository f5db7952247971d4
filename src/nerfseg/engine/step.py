"""One optimiser step: the method's losses, backward, clipping, optimiser and scheduler, teacher update."""

from __future__ import annotations

import math

import torch

from nerfseg.config import Config
from nerfseg.engine.build import autocast
from nerfseg.engine.losses import SegmentationLoss
from nerfseg.engine.run_state import RunState
from nerfseg.ssl.methods import StepModels, method_losses
from nerfseg.ssl.ramp import pseudo_label_ramp
from nerfseg.ssl.recipe import Recipe


def train_step(
    recipe: Recipe,
    state: RunState,
    loss_fn: SegmentationLoss,
    cfg: Config,
    labeled,
    unlabeled,
    device: torch.device,
    num_classes: int,
    step: int,
    step_module: torch.nn.Module | None = None,
) -> dict[str, float]:
    """Run optimiser step number ``step`` (1-based) on a labeled PointBatch and an UnlabeledBatch (or None).

    Returns the scalars to log: every weighted loss term by name (``supervised``, ``consistency``,
    ``lasermix``, ``projection``, ``render``, ``geometry_labeled``, ``geometry_unlabeled``), ``loss`` (their
    sum), the method's metrics (``ce``, ``lovasz``, ``geo_*``, ``*_pseudo_accuracy`` ...), ``grad_norm`` and,
    with a teacher, ``ema_decay``. ``step_module``: the DistributedDataParallel-wrapped
    :class:`nerfseg.engine.distributed.StepModule` of a distributed run (its forward gives the losses, its
    backward averages the gradients over the processes); None computes them directly.
    """
    labeled = labeled.to(device)
    unlabeled = None if unlabeled is None else unlabeled.to(device)
    models = StepModels(state.model, state.head, state.teacher, state.appearance)
    ramp = pseudo_label_ramp(step, cfg.ssl.rampup_steps)
    with autocast(device, cfg.train.bf16):
        if step_module is not None:
            losses, metrics = step_module(
                recipe, state.teacher, loss_fn, cfg.ssl, labeled, unlabeled, state.generator, num_classes,
                ramp, state.appearance,
            )
        else:
            losses, metrics = method_losses(
                recipe, models, loss_fn, cfg.ssl, labeled, unlabeled, state.generator, num_classes, ramp
            )
    total = losses["total"]
    state.optimizer.zero_grad(set_to_none=True)
    total.backward()
    params = [p for group in state.optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(
        params, cfg.train.grad_clip if cfg.train.grad_clip > 0 else math.inf
    )
    state.optimizer.step()
    state.scheduler.step()
    result = {name: float(value.detach()) for name, value in losses.items() if name != "total"}
    result.update(metrics)
    result["loss"] = float(total.detach())
    result["grad_norm"] = float(grad_norm)
    if state.teacher is not None:
        students = {"model": state.model}
        if state.head is not None:
            students["head"] = state.head
        result["ema_decay"] = state.teacher.update(students, step)
    return result
