"""Synchronised batch norm and the autograd row gather, run in 2 gloo processes, against one process on the
concatenated batch (torch.nn.SyncBatchNorm refuses CPU tensors, hence nerfseg's own)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from nerfseg.sparse.layers import SparseBatchNorm
from nerfseg.sparse.sync_batch_norm import (
    SyncBatchNorm1d,
    SyncSparseBatchNorm,
    convert_sync_batch_norm,
    sync_batch_norm,
)

ROWS = (7, 12)  # unequal rows per process: a mean of per-process means would be wrong
C = 3


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(sum(ROWS), C, generator=g) * 3.0 + 5.0
    w = torch.randn(sum(ROWS), C, generator=g)  # fixed upstream gradient: loss = sum(out * w)
    labels = torch.randint(0, C, (sum(ROWS),), generator=g)
    return x, w, labels


def _fresh_bn(cls):
    torch.manual_seed(1)
    bn = cls(C, momentum=0.3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1.0, 1.0)
        bn.running_var.fill_(2.0)
    return bn


def _worker(rank: int, world: int, init: str, out: str) -> None:
    from nerfseg.engine.distributed import GlobalBatchLoss, gather_rows
    from nerfseg.engine.losses import LossConfig, SegmentationLoss

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    x, w, labels = _data()
    lo = sum(ROWS[:rank])
    hi = lo + ROWS[rank]
    bn = _fresh_bn(SyncBatchNorm1d).train()
    xr = x[lo:hi].clone().requires_grad_(True)
    y = bn(xr)
    (y * w[lo:hi]).sum().backward()
    # the global CE + Lovász on gathered rows: every process computes the loss of the whole batch
    logits = x[lo:hi].clone().requires_grad_(True)
    loss = GlobalBatchLoss(SegmentationLoss(LossConfig()))(logits, labels[lo:hi])["total"]
    loss.backward()
    gathered = gather_rows(labels[lo:hi])
    torch.save(
        {"y": y.detach(), "x_grad": xr.grad, "w_grad": bn.weight.grad, "b_grad": bn.bias.grad,
         "running_mean": bn.running_mean, "running_var": bn.running_var, "tracked": bn.num_batches_tracked,
         "loss": loss.detach(), "logit_grad": logits.grad, "labels": gathered},
        f"{out}.{rank}",
    )
    dist.barrier()  # both done before either tears the group down (a peer's closed connection aborts gloo)
    dist.destroy_process_group()
    # Leave without the interpreter's C++ teardown: on the AVX512 host of 2026-12-02 about 1 run in 7 aborted
    # there ("terminate called without an active exception", SIGABRT, no Python frame) after destroy and
    # after this function returned, with the results already saved; that is not what this test checks.
    os._exit(0)


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("syncbn")
    init = f"file://{tmp / 'store'}"
    mp.spawn(_worker, args=(2, init, str(tmp / "out")), nprocs=2, join=True)
    return [torch.load(tmp / f"out.{r}", weights_only=True) for r in range(2)]


def test_sync_bn_equals_plain_bn_on_the_concatenated_batch(two_process_results):
    x, w, _ = _data()
    bn = _fresh_bn(nn.BatchNorm1d).train()
    xr = x.clone().requires_grad_(True)
    y = bn(xr)
    (y * w).sum().backward()
    r0, r1 = two_process_results
    torch.testing.assert_close(torch.cat([r0["y"], r1["y"]]), y.detach(), rtol=1e-5, atol=1e-5)
    # each process gets the gradient of its own rows through the other's statistics too
    torch.testing.assert_close(torch.cat([r0["x_grad"], r1["x_grad"]]), xr.grad, rtol=1e-5, atol=1e-5)
    # affine gradients are per-process sums: DDP's all-reduce adds them up
    torch.testing.assert_close(r0["w_grad"] + r1["w_grad"], bn.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r0["b_grad"] + r1["b_grad"], bn.bias.grad, rtol=1e-5, atol=1e-5)
    for r in (r0, r1):  # running statistics: the global batch's (unbiased variance), the same on both
        torch.testing.assert_close(r["running_mean"], bn.running_mean, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(r["running_var"], bn.running_var, rtol=1e-6, atol=1e-6)
        assert int(r["tracked"]) == 1


def test_global_batch_loss_equals_the_one_process_loss(two_process_results):
    from nerfseg.engine.losses import LossConfig, SegmentationLoss

    x, _, labels = _data()
    logits = x.clone().requires_grad_(True)
    loss = SegmentationLoss(LossConfig())(logits, labels)["total"]
    loss.backward()
    r0, r1 = two_process_results
    assert torch.equal(r0["labels"], labels) and torch.equal(r1["labels"], labels)
    for r in (r0, r1):
        torch.testing.assert_close(r["loss"], loss.detach(), rtol=1e-6, atol=1e-6)
    # each process's rows get the gradient of both processes' (equal) losses: DDP's averaging halves it
    grads = torch.cat([r0["logit_grad"], r1["logit_grad"]]) / 2
    torch.testing.assert_close(grads, logits.grad, rtol=1e-5, atol=1e-6)


def test_single_process_is_plain_batch_norm():
    x, _, _ = _data()
    plain, synced = _fresh_bn(nn.BatchNorm1d).train(), _fresh_bn(SyncBatchNorm1d).train()
    assert torch.equal(plain(x), synced(x))
    assert torch.equal(plain.running_var, synced.running_var)
    with pytest.raises(ValueError, match=r"\(M, C\)"):
        sync_batch_norm(x[None], synced)


def test_convert_keeps_parameters_and_state_dict_names():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Sequential(SparseBatchNorm(4)))
    before = {k: v.data_ptr() for k, v in model.state_dict().items()}
    converted = convert_sync_batch_norm(model)
    assert converted is model
    assert type(model[1]) is SyncBatchNorm1d and type(model[2][0]) is SyncSparseBatchNorm
    assert {k: v.data_ptr() for k, v in model.state_dict().items()} == before  # the same tensors
    assert type(model[0]) is nn.Linear
