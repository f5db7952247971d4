"""Distributed training with ``torch.distributed``, launched by ``torchrun`` (one process per device).

What a run of ``W`` processes does (``nerfseg train`` picks it up from torchrun's environment: ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``):

* process group: ``nccl`` on CUDA (process ``LOCAL_RANK`` uses GPU ``LOCAL_RANK``), ``gloo`` on the CPU;
* data: the global batch ``data.batch_size`` is split, ``B / W`` scans per process, each process drawing its
  slice of the one seeded global order (:mod:`nerfseg.data.distributed_sampling`), for the labeled and the
  unlabeled stream;
* student: segmentor and NeRF head in one :class:`StepModule` wrapped in ``DistributedDataParallel``; its
  forward is the whole step's losses, so each step has one DDP forward and one backward (gradients averaged
  over the processes); batch norms synchronised (:mod:`nerfseg.sparse.sync_batch_norm`);
* point losses over the global batch: CE + Lovász of the labeled points (and of LaserMix's mixed scans) are
  computed on the rows of all processes gathered with autograd (:func:`gather_rows`), so the loss is the
  one-process loss of the whole batch, not a mean of per-process means over unequal point counts;
* teacher: updated on every process from the synchronised student, so it stays identical (:func:`state_digest`
  checks it);
* random draws (LiDAR / camera rays, jitter): process ``r`` reseeds its step generator and torch's global
  generator at step ``s`` from (``train.seed``, s, r), so a resume at the same ``W`` is exact;
* rank 0 alone logs, validates and writes checkpoints (atomically); the others wait at a barrier;
* run folder: rank 0 alone holds its lock (:func:`run_lock`, taken after joining the process group); a
  resume of a finished run returns on every rank, as rank 0 decides (:func:`broadcast_flag`), before any
  other collective;
* unreadable scans (``data.on_bad_scan``): each process's batch items keep their global (epoch, position),
  so a bad scan's replacement is the one a single process draws; each step the processes exchange the scans
  they skipped and any DataError (:func:`share_draw_outcome`): rank 0 names them all in ``skipped.jsonl``,
  and an error stops every process with the same one line.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from nerfseg.data.distributed_sampling import Shard, per_process_batch
from nerfseg.data.loader import LoadFailure
from nerfseg.engine.run_lock import RunFolderLocked, RunLock
from nerfseg.errors import ConfigError, DataError
from nerfseg.sparse.sync_batch_norm import autograd_all_reduce

BARRIER_S = 4 * 3600
"""Timeout of the process group's collectives, seconds (rank 0's validation runs while the others wait)."""
SUM_METRICS = frozenset({"points"})
"""Logged step scalars summed over the processes (the others are averaged)."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the run.

    Attributes:
        rank, world_size, local_rank: torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (0, 1, 0 alone).
        device: this process's device (``cuda:LOCAL_RANK`` on CUDA).
        owns_group: this context initialised the process group (and tears it down).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes."""
        return self.rank == 0

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world_size)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group when this context created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={value!r} is not an integer (torchrun sets it)"
        ) from None


def setup_distributed(device: torch.device, global_batch: int) -> DistContext:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), or none for a single process.

    Args:
        device: the configured device (``cuda`` becomes ``cuda:LOCAL_RANK`` with several processes).
        global_batch: ``data.batch_size``; ConfigError when the number of processes does not divide it.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world <= 1:
        return DistContext(device=device)
    per_process_batch(global_batch, world)  # refuse before any process waits for the others
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK={local} but this node has {torch.cuda.device_count()} CUDA devices "
                "(use --nproc_per_node <= the number of GPUs)"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        # rank 0 validates alone while the others wait at a barrier: a full validation split takes longer
        # than the collectives' default timeout (10 min with nccl)
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(seconds=BARRIER_S)
        )
        owns = True
    if dist.get_world_size() != world or dist.get_rank() != rank:
        raise ConfigError(f"process group ({dist.get_rank()}/{dist.get_world_size()}) does not match "
                          f"RANK={rank} WORLD_SIZE={world}")
    return DistContext(rank, world, local, device, owns)


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of process ``rank``'s random draws in optimiser step ``step`` (1-based) of run seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(step), int(rank), 0xD15]).generate_state(1)[0])


def reseed_step(ctx: DistContext, generator: torch.Generator, seed: int, step: int) -> None:
    """With several processes: reseed the step generator and torch's global generator for ``step``."""
    if not ctx.distributed:
        return
    value = step_seed(seed, step, ctx.rank)
    generator.manual_seed(value)
    torch.manual_seed(value)


def reduce_metrics(ctx: DistContext, metrics: dict[str, float]) -> dict[str, float]:
    """The step's scalars over all processes: :data:`SUM_METRICS` summed, the others averaged over the
    processes that report them (a process may lack a metric, e.g. an accuracy with nothing to score)."""
    if not ctx.distributed:
        return metrics
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, metrics)
    keys = sorted({k for m in gathered for k in m})
    out: dict[str, float] = {}
    for key in keys:
        values = [float(m[key]) for m in gathered if key in m]
        out[key] = float(np.sum(values)) if key in SUM_METRICS else float(np.mean(values))
    return out


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate the (N_r, ...) rows of every process in rank order, with autograd: the gradient of each
    process's rows sums what every process's loss sends them (``torch.distributed.nn`` all-reduce of a
    zero-padded buffer; exact, since each entry is one value plus zeros). Single process: ``x`` itself.

    Returns (sum_r N_r, ...) on every process."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return x
    world, rank = dist.get_world_size(), dist.get_rank()
    counts = torch.zeros(world, dtype=torch.int64, device=x.device)
    counts[rank] = x.shape[0]
    dist.all_reduce(counts)
    offsets = [0, *torch.cumsum(counts, 0).tolist()]
    if x.is_floating_point():
        buffer = x.new_zeros((offsets[-1], *x.shape[1:]))
        buffer = buffer.index_copy(0, torch.arange(offsets[rank], offsets[rank + 1], device=x.device), x)
        return autograd_all_reduce(buffer)
    buffer = x.new_zeros((offsets[-1], *x.shape[1:]))
    buffer[offsets[rank] : offsets[rank + 1]] = x
    dist.all_reduce(buffer)
    return buffer


class GlobalBatchLoss(nn.Module):
    """A point loss ``(logits (N, C), labels (N,)) -> dict`` evaluated on the rows of every process (the
    whole global batch, in its one-process order), e.g. CE + Lovász; every process gets the same values."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.inner(gather_rows(logits), gather_rows(labels))


class StepModule(nn.Module):
    """The student's modules (``model``, ``head`` or None) with the whole step's losses as forward, the one
    module ``DistributedDataParallel`` wraps."""

    def __init__(self, model: nn.Module, head: nn.Module | None):
        super().__init__()
        self.model = model
        self.head = head

    def forward(
        self, recipe, teacher, loss_fn, ssl, labeled, unlabeled, generator, num_classes: int,
        ramp: float = 1.0, appearance: nn.Module | None = None,
    ):
        """:func:`nerfseg.ssl.methods.method_losses` of the step -> (losses, metrics)."""
        from nerfseg.ssl.methods import StepModels, method_losses

        models = StepModels(self.model, self.head, teacher, appearance)
        return method_losses(recipe, models, loss_fn, ssl, labeled, unlabeled, generator, num_classes, ramp)


def wrap_student(ctx: DistContext, model: nn.Module, head: nn.Module | None,
                 find_unused_parameters: bool) -> nn.Module | None:
    """``DistributedDataParallel(StepModule(model, head))`` with several processes, None alone.

    Buffers are not broadcast: the synchronised batch norms keep the running statistics identical."""
    if not ctx.distributed:
        return None
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # no buffer broadcast before each forward (torch >= 2.14 names the switch forward_sync_buffers)
    accepts = inspect.signature(DistributedDataParallel.__init__).parameters
    switch = "forward_sync_buffers" if "forward_sync_buffers" in accepts else "broadcast_buffers"
    no_sync = {switch: False}
    return DistributedDataParallel(
        StepModule(model, head), device_ids=None, find_unused_parameters=find_unused_parameters, **no_sync
    )


def state_digest(modules: dict[str, nn.Module]) -> str:
    """SHA-256 of every parameter and buffer of ``modules`` (names, dtypes, shapes and bytes, in order)."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        for key, value in modules[name].state_dict().items():
            t = value.detach().cpu().contiguous().reshape(-1)  # 1-d: a 0-d tensor has no byte view
            digest.update(f"{name}.{key}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def digests_agree(ctx: DistContext, digest: str) -> list[str]:
    """The digests of every process (rank order); a single process gets ``[digest]``."""
    if not ctx.distributed:
        return [digest]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, digest)
    return [str(g) for g in gathered]


class NullLogger:
    """The logger of the processes other than rank 0: writes nothing."""

    def log(self, step: int, scalars: dict[str, Any], prefix: str = "") -> dict[str, Any]:  # noqa: ARG002
        return {}

    def close(self) -> None:
        pass


def resume_note(ctx: DistContext, stored_world: int, global_batch: int, step: int) -> str | None:
    """The one line a resume prints when the number of processes changed (None when it did not)."""
    if stored_world == ctx.world_size:
        return None

    def procs(n: int) -> str:
        return f"{n} process" + ("es" if n != 1 else "")

    return (
        f"resuming step {step} with {procs(ctx.world_size)} (the checkpoint was written by "
        f"{procs(stored_world)}): global batch {global_batch} kept, "
        f"{global_batch // ctx.world_size} scans per process (was {global_batch // max(stored_world, 1)}); "
        "the random ray draws and jitter differ from an uninterrupted run"
    )


def replicas_agree(ctx: DistContext, modules: dict[str, nn.Module | None]) -> bool:
    """True when every process holds bit-identical ``modules`` (student, head, teacher): a collective, every
    process calls it. Always True for a single process."""
    if not ctx.distributed:
        return True
    digest = state_digest({k: m for k, m in modules.items() if m is not None})
    return len(set(digests_agree(ctx, digest))) == 1


class NoLock:
    """The run-folder "lock" of the processes other than rank 0: holds nothing, writes nothing."""

    def write_pid(self) -> None:
        pass

    def __enter__(self) -> NoLock:
        return self

    def __exit__(self, *exc) -> None:
        pass


@contextlib.contextmanager
def run_lock(ctx: DistContext, run_dir: str | Path) -> Iterator[RunLock | NoLock]:
    """The run folder's lock, held by rank 0 alone (a second rank would find it taken by the first); a
    collective with several processes: when rank 0 cannot take it, every rank raises its RunFolderLocked
    (rather than the others waiting for rank 0 in the first collective of the run)."""
    lock: RunLock | NoLock = RunLock(run_dir) if ctx.is_main else NoLock()
    refused: str | None = None
    if ctx.is_main:
        try:
            lock.__enter__()
        except RunFolderLocked as err:
            if not ctx.distributed:
                raise
            refused = str(err)
    if ctx.distributed:
        shared = [refused]
        dist.broadcast_object_list(shared, src=0)
        refused = shared[0]
    if refused is not None:
        raise RunFolderLocked(refused)
    try:
        yield lock
    finally:
        lock.__exit__(None, None, None)


def broadcast_module(ctx: DistContext, module: nn.Module) -> None:
    """Overwrite ``module``'s parameters and buffers with rank 0's, in place (a collective; nothing for a
    single process). For modules every process builds on its own, e.g. the frozen appearance net."""
    if not ctx.distributed:
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def broadcast_flag(ctx: DistContext, value: bool) -> bool:
    """Rank 0's ``value`` on every process (a collective; ``value`` itself for a single process)."""
    if not ctx.distributed:
        return bool(value)
    flag = torch.tensor([1 if value else 0], dtype=torch.int64, device=ctx.device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def share_draw_outcome(
    ctx: DistContext,
    found: list[tuple[str, LoadFailure]],
    error: tuple[DataError, str] | None,
) -> tuple[list[tuple[str, LoadFailure]], DataError | None]:
    """What every process met drawing one step's batches, on every process (a collective).

    Args:
        found: this process's ``(stream name, unreadable scan)`` pairs, in its batch order.
        error: the DataError this process's draw raised and the stream it came from, or None.

    Returns:
        (every process's ``found`` concatenated in rank order, which is the global batch order of each
        stream; the error a single process would have raised first: the lowest rank's labeled-stream error,
        else the lowest rank's unlabeled-stream error, else None). A single process gets its own.
    """
    if not ctx.distributed:
        return found, None if error is None else error[0]
    mine = {
        "found": [(name, f.path, f.problem) for name, f in found],
        "error": None if error is None else (str(error[0].path), error[0].problem, error[1]),
    }
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, mine)
    every = [(name, LoadFailure(path, problem)) for g in gathered for name, path, problem in g["found"]]
    errors = [g["error"] for g in gathered if g["error"] is not None]
    errors.sort(key=lambda e: e[2] != "labeled")  # stable: labeled first, each in rank order
    first = None if not errors else DataError(errors[0][0], errors[0][1])
    return every, first
