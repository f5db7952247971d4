"""Inference precision: which dtype the segmentor runs in at prediction time (no torch import here, so
the command line can offer the choices without loading torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "float32", "bf16")
"""``auto`` = bf16 autocast on CUDA and float32 on the CPU; ``float32``; ``bf16`` = bf16 autocast on any
device (on CPUs with native bf16 matmuls, e.g. AVX512-BF16 or AMX, the ``full`` preset runs about 1.7x
faster than in float32: benchmarks/bench_sparse.py; the narrow ``tiny`` preset does not gain)."""


def inference_uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether inference at ``precision`` (one of PRECISIONS) runs under bf16 autocast on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (oneDNN's check: AVX512-BF16, AMX or similar);
    without it bf16 is emulated and slower than float32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
