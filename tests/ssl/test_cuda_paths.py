"""GPU-only checks (skipped without CUDA; this project's CI and development machine have none): pinned
batches, kernel maps built on the device, and every head method training on CUDA with bf16 autocast where
the device has it natively. Run them on a machine with a GPU: ``pytest tests/ssl/test_cuda_paths.py``."""

from __future__ import annotations

import pytest
import torch

from nerfseg.config import load_config
from nerfseg.data.collate import PointBatch
from nerfseg.engine.checkpoint import load_checkpoint
from nerfseg.engine.streams import UnlabeledBatch
from nerfseg.engine.train import train
from nerfseg.sparse.kernel_map import downsampling_map, submanifold_map
from nerfseg.ssl.config import Method
from train_testing import SMALL_HEAD_OVERRIDES, TINY_SEGMENTOR_OVERRIDES

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")


def _batch(n: int = 50) -> PointBatch:
    return PointBatch(torch.randn(n, 4), torch.zeros(n, dtype=torch.int64), torch.zeros(n, dtype=torch.int64),
                      ["00/000000"])


def test_batches_pin_their_tensors_for_asynchronous_copies():
    batch = _batch().pin_memory()
    assert batch.points.is_pinned() and batch.batch_index.is_pinned() and batch.labels.is_pinned()
    views = UnlabeledBatch(_batch(), _batch(), None, [[0]], [[]], [[]]).pin_memory()
    assert views.teacher.points.is_pinned() and views.student.points.is_pinned()
    on_device = batch.to("cuda")
    assert on_device.points.device.type == "cuda"
    assert torch.equal(on_device.points.cpu(), batch.points)


def test_kernel_maps_built_on_the_device_equal_the_cpu_ones():
    g = torch.Generator().manual_seed(0)
    coords = torch.unique(torch.cat([torch.zeros(4000, 1, dtype=torch.int64),
                                     torch.randint(0, 40, (4000, 3), generator=g)], dim=1), dim=0)
    cpu, gpu = submanifold_map(coords), submanifold_map(coords.cuda())
    assert gpu.in_rows.device.type == "cuda"
    pairs = lambda m: sorted(zip(m.in_rows.cpu().tolist(), m.out_rows.cpu().tolist(), strict=True))  # noqa: E731
    assert pairs(cpu) == pairs(gpu)
    down_cpu, down_gpu = downsampling_map(coords), downsampling_map(coords.cuda())
    assert torch.equal(down_cpu.coarse_coords, down_gpu.coarse_coords.cpu())


@pytest.mark.parametrize(
    "method", [Method.SUPERVISED, Method.NERF, Method.NERF_LASERMIX], ids=lambda m: m.value
)
def test_methods_train_on_cuda(sim_ssl_root, tmp_path, method):
    cfg = load_config(None, [
        f"method={method.value}", f"data.root={sim_ssl_root}", "data.label_fraction=0.5", "data.batch_size=1",
        "data.num_workers=1", "data.val_max_scans=1", "train.max_steps=2", "train.log_every=1",
        "train.progress=false", "train.device=cuda", *TINY_SEGMENTOR_OVERRIDES, *SMALL_HEAD_OVERRIDES,
    ])  # fmt: skip
    result = train(cfg, tmp_path / "run")
    assert result.step == 2
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
