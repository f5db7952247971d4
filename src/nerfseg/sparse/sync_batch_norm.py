"""Batch norm whose statistics are those of the whole global batch, over every process of a distributed run.

``torch.nn.SyncBatchNorm`` refuses CPU tensors (``SyncBatchNorm expected input tensor to be on GPU``), and a
run launched on CPUs with the gloo backend must normalise exactly like one process on the whole batch. This
module all-reduces, per channel, the count, the sum and the sum of squares of the (M, C) rows of every
process with ``torch.distributed.nn.functional.all_reduce`` (an autograd function: its backward all-reduces
the gradients), so the gradient of every process reaches the statistics of the others. Statistics are
accumulated in float64 (a sum of squares minus the squared mean loses digits in float32 over 10^6 rows).

The running statistics are updated as ``nn.BatchNorm1d`` does (unbiased variance over the global count), so
they are identical on every process. In eval mode, or without an initialised process group of more than one
process, the layers are plain batch norms. The layers keep the parameter and buffer names of the batch norms
they replace: state dicts, checkpoints and the eval-mode folding of ``nerfseg.models.backbone`` see no
difference.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from nerfseg.sparse.layers import SparseBatchNorm
from nerfseg.sparse.tensor import SparseTensor


def distributed_active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def autograd_all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over the processes, differentiable (the backward sums the gradients):
    ``torch.distributed.nn.functional.all_reduce``, without its deprecation warning (its suggested successor,
    ``torch.distributed._functional_collectives.all_reduce``, has no backward)."""
    import warnings

    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(x)


def sync_batch_norm(x: torch.Tensor, bn: nn.BatchNorm1d) -> torch.Tensor:
    """Normalise the (M, C) rows ``x`` of this process with the mean and biased variance of the rows of all
    processes (training mode), update ``bn``'s running statistics, apply its affine map.

    Returns (M, C) in ``x``'s dtype. Every process must call it the same number of times per step (M may be
    0 on some of them). Raises ValueError when the global batch has a single row per channel (as BatchNorm1d
    does)."""
    if x.ndim != 2:
        raise ValueError(f"sync batch norm expects (M, C) features, got shape {tuple(x.shape)}")
    x64 = x.double()
    count = torch.full((1,), float(x.shape[0]), dtype=torch.float64, device=x.device)
    stats = torch.cat([count, x64.sum(dim=0), (x64 * x64).sum(dim=0)])  # (1 + 2C,)
    stats = autograd_all_reduce(stats)
    c = x.shape[1]
    n = stats[0]
    total = int(n.detach())
    if total <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got {total} rows in all")
    mean = stats[1 : 1 + c] / n
    var = (stats[1 + c :] / n - mean * mean).clamp_min(0.0)
    if bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            momentum = bn.momentum
            if momentum is None:  # cumulative moving average
                momentum = 1.0 / float(bn.num_batches_tracked)
            unbiased = var.detach() * (total / (total - 1))
            # through .data, like the native kernel: no version bump, so a graph that read the running
            # statistics earlier in the step (the point classifier of the NeRF samples) still backpropagates
            bn.running_mean.data.lerp_(mean.detach().to(bn.running_mean.dtype), momentum)
            bn.running_var.data.lerp_(unbiased.to(bn.running_var.dtype), momentum)
    out = (x64 - mean) * torch.rsqrt(var + bn.eps)
    out = out.to(x.dtype)
    if bn.affine:
        out = out * bn.weight.to(x.dtype) + bn.bias.to(x.dtype)
    return out


class SyncBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` on (M, C) rows with statistics over all processes in training."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and distributed_active():
            return sync_batch_norm(x, self)
        return super().forward(x)


class SyncSparseBatchNorm(SparseBatchNorm):
    """:class:`~nerfseg.sparse.layers.SparseBatchNorm` with statistics over all processes in training."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        if self.training and distributed_active():
            return x.replace(sync_batch_norm(x.feats, self))
        return super().forward(x)


def convert_sync_batch_norm(module: nn.Module) -> nn.Module:
    """Replace, in place, every ``SparseBatchNorm`` / ``nn.BatchNorm1d`` sub-module of ``module`` by its
    synchronised twin holding the same parameters and buffers (the same tensors); returns ``module`` (or its
    replacement when ``module`` itself is a batch norm). Other modules are left untouched."""
    replaced = _sync_twin(module)
    if replaced is not None:
        return replaced
    for name, child in list(module.named_children()):
        setattr(module, name, convert_sync_batch_norm(child))
    return module


def _sync_twin(bn: nn.Module) -> nn.Module | None:
    if isinstance(bn, (SyncBatchNorm1d, SyncSparseBatchNorm)):
        return None
    if isinstance(bn, SparseBatchNorm):
        twin: nn.BatchNorm1d = SyncSparseBatchNorm.__new__(SyncSparseBatchNorm)
    elif type(bn) is nn.BatchNorm1d:
        twin = SyncBatchNorm1d.__new__(SyncBatchNorm1d)
    else:
        return None
    twin.__dict__.update(bn.__dict__)  # same parameters, buffers, hooks and settings, new class
    return twin
