"""Sparse 3D convolutions as gather -> matmul -> index_add over a kernel map.

For every kernel offset k the input rows of its pairs are gathered into a buffer, multiplied by the
offset's (Cin, Cout) weight and added into the output rows. Work is chunked (``chunk_rows`` pairs at
a time, reusing two preallocated buffers) so memory stays bounded; the identity offset of a submanifold
convolution is one plain matmul. Submanifold maps are ordered by blocks of output rows (see
:func:`~nerfseg.sparse.kernel_map.submanifold_map`), so each scatter-add writes one block of rows, and their
input gradient is the same blocked pass with flipped,
transposed weights. The backward pass re-gathers instead of storing gathered inputs. Half-precision
matmuls on the CPU are padded to a bounded set of row counts (:func:`padded_rows`). Only tensor ops
are used, so the same code runs on CPU and CUDA.

Weights are stored as (K, Cin, Cout): offset k of :func:`~nerfseg.sparse.kernel_map.cube_offsets`
applies ``weight[k]``. Relation to dense convolutions (used by the tests): a submanifold conv equals
``conv3d(padding=1)`` with ``dense_weight[:, :, kx, ky, kz] = weight[k].T`` read at the active
voxels; the strided conv equals ``conv3d(kernel_size=2, stride=2)``; the transposed conv equals
``conv_transpose3d(kernel_size=2, stride=2)`` with ``dense_weight[:, :, kx, ky, kz] = weight[k]``,
read at the fine voxels it is asked for.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nerfseg.sparse.kernel_map import KernelMap
from nerfseg.sparse.tensor import SparseTensor

CPU_CHUNK_BYTES = 32 << 20
"""Bytes of the two work buffers per gather/matmul/scatter step on CPU: 65536 pairs at 64 -> 64 float32
channels. Fewer, larger steps win: on a 2-core AVX512/AMX Xeon, 32 MiB against the former 4 MiB (with
32768-row map blocks against 8192) made the 64 -> 64 forward 2.0x and forward + backward 1.7x faster, and
``full`` inference 1.56x (float32) / 1.71x (bf16) (benchmarks/results/conv_chunking.md)."""
CUDA_CHUNK_ROWS = 1 << 18
"""Pairs per step on GPUs, where fewer, larger kernels win."""


def padded_rows(rows: int) -> int:
    """``rows`` rounded up to one of 8 sizes per octave (multiples of 16, at most 1/8 more rows).

    Half-precision matmuls on the CPU run through oneDNN, which compiles and caches one kernel per matrix
    shape (1024 by default); the per-offset segments of a sparse conv have thousands of distinct lengths,
    so unpadded they evict each other and every matmul recompiles (measured 2x slower). Padded lengths
    give a few hundred shapes per network (the ``full`` preset: 265 on a 124k-point scan with 32768-row map
    blocks; with the former 8192-row blocks 421 on a 120k-point scan, 632 over eight scans of 76k-152k
    points)."""
    step = _padding_step(rows)
    return max(1, -(-rows // step)) * step


def _padding_step(rows: int) -> int:
    """Granularity of :func:`padded_rows` for ``rows``: 1/8 of its octave, at least 16 (non-decreasing
    in ``rows``, so ``padded_rows(m) - m < _padding_step(rows)`` for every ``m <= rows``)."""
    return max(16, 1 << max(0, rows.bit_length() - 4))


def _pads_matmuls(t: torch.Tensor) -> bool:
    """Whether the per-offset matmuls on ``t`` use :func:`padded_rows` (half precision on the CPU)."""
    return t.device.type == "cpu" and t.dtype in (torch.bfloat16, torch.float16)


def _work_units(kmap: KernelMap, chunk_rows: int) -> list:
    """(row_start, row_end, start, end, segments) steps: pairs ``[start, end)`` (at most ``chunk_rows``)
    that only write output rows ``[row_start, row_end)``; ``segments`` lists (k, a, b), the pairs
    ``[a, b)`` of the range (relative to ``start``) that use offset k. Cached on the map per chunk size
    (the decoder and the backward pass reuse the encoder's maps)."""
    cached = kmap.work_units.get(chunk_rows)
    if cached is not None:
        return cached
    if kmap.blocks is None:
        blocks = [(0, kmap.num_out, 0, int(kmap.in_rows.numel()), kmap.segments)]
    else:
        blocks = [
            (b.row_start, b.row_end, b.pair_start, b.pair_end, kmap.segments[b.seg_start:b.seg_end])
            for b in kmap.blocks
        ]
    units = []
    for r0, r1, p0, p1, segments in blocks:
        for s in range(p0, p1, chunk_rows):
            e = min(s + chunk_rows, p1)
            rel = [(k, max(a, s) - s, min(b, e) - s) for k, a, b in segments if b > s and a < e]
            units.append((r0, r1, s, e, rel))
    kmap.work_units[chunk_rows] = units
    return units


def _conv_forward(
    feats: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    chunk_rows: int,
    bias: torch.Tensor | None = None,
    weight_grad: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The gather -> matmul -> index_add pass. ``bias`` (Cout,) is added to every output row.

    ``weight_grad`` = (x, grad_w) (symmetric maps only, ``feats`` being the output gradient): also
    accumulate the weight gradient from the gathered rows, ``grad_w[K-1-k] += x[out]^T feats[in]`` over
    the pairs (in, out) of offset k (these are the pairs (out, in) of offset K-1-k), so the backward
    pass gathers the output gradient once for both gradients."""
    num_out, c_in, c_out = kmap.num_out, weight.shape[1], weight.shape[2]
    out = feats.new_empty((num_out, c_out))
    if kmap.identity_offset is not None:
        if bias is None:
            torch.mm(feats, weight[kmap.identity_offset], out=out)
        else:
            torch.addmm(bias, feats, weight[kmap.identity_offset], out=out)
    elif bias is None:
        out.zero_()
    else:
        out.copy_(bias.expand(num_out, c_out))
    rows = min(chunk_rows, max(1, int(kmap.in_rows.numel())))
    pad = _pads_matmuls(feats)
    # padded matmuls read and write up to padded_rows(n) - n rows past a segment: the next segment
    # overwrites them later (segments run in order), the slack rows after the last one are never used
    slack = _padding_step(rows) if pad else 0
    gathered = feats.new_zeros((rows + slack, c_in)) if pad else feats.new_empty((rows, c_in))
    product = feats.new_empty((rows + slack, c_out))
    if weight_grad is not None:
        x, grad_w = weight_grad
        x_buf = x.new_empty((rows, x.shape[1]))
        last = kmap.num_offsets - 1
    local = kmap.out_local if kmap.blocks is not None else kmap.out_rows
    for r0, r1, s, e, segments in _work_units(kmap, chunk_rows):
        n = e - s
        torch.index_select(feats, 0, kmap.in_rows[s:e], out=gathered[:n])
        for k, a, b in segments:
            if pad:
                b = a + padded_rows(b - a)
            torch.mm(gathered[a:b], weight[k], out=product[a:b])
        out[r0:r1].index_add_(0, local[s:e], product[:n])  # a block's rows: the target stays in cache
        if weight_grad is not None:
            torch.index_select(x, 0, kmap.out_rows[s:e], out=x_buf[:n])
            for k, a, b in segments:
                grad_w[last - k].addmm_(x_buf[a:b].t(), gathered[a:b])
    return out


def _conv_backward(
    grad_out: torch.Tensor,
    feats: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    chunk_rows: int,
    need_input: bool,
    need_weight: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    c_in, c_out = weight.shape[1], weight.shape[2]
    grad_in = None
    grad_w = torch.zeros_like(weight) if need_weight else None
    k_id = kmap.identity_offset
    if need_input and kmap.symmetric:
        # pairs of offset K-1-k are those of k swapped: the input gradient is a forward pass of the
        # same (blocked) map with weights W'[K-1-k] = W[k]^T; the weight gradient rides along
        if grad_w is not None and k_id is not None:
            torch.mm(feats.t(), grad_out, out=grad_w[k_id])
        grad_in = _conv_forward(
            grad_out, weight.flip(0).transpose(1, 2).contiguous(), kmap, chunk_rows,
            weight_grad=(feats, grad_w) if grad_w is not None else None,
        )
        return grad_in, grad_w
    elif need_input:
        grad_in = torch.mm(grad_out, weight[k_id].t()) if k_id is not None else torch.zeros_like(feats)
    if grad_w is not None and k_id is not None:
        torch.mm(feats.t(), grad_out, out=grad_w[k_id])
    scatter_input = need_input and not kmap.symmetric
    if not (grad_w is not None or scatter_input):
        return grad_in, grad_w
    rows = min(chunk_rows, max(1, int(kmap.in_rows.numel())))
    g_buf = grad_out.new_empty((rows, c_out))
    x_buf = feats.new_empty((rows, c_in))
    for _, _, s, e, segments in _work_units(kmap, chunk_rows):
        n = e - s
        g = torch.index_select(grad_out, 0, kmap.out_rows[s:e], out=g_buf[:n])
        if grad_w is not None:
            x = torch.index_select(feats, 0, kmap.in_rows[s:e], out=x_buf[:n])
            for k, a, b in segments:
                grad_w[k].addmm_(x[a:b].t(), g[a:b])
        if scatter_input:
            for k, a, b in segments:  # x_buf is free again: reuse it for the input gradient rows
                torch.mm(g[a:b], weight[k].t(), out=x_buf[a:b])
            grad_in.index_add_(0, kmap.in_rows[s:e], x_buf[:n])
    return grad_in, grad_w


class _SparseConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, weight, kmap, chunk_rows):  # type: ignore[override]
        feats = feats.contiguous()
        ctx.save_for_backward(feats, weight)
        ctx.kmap, ctx.chunk_rows = kmap, chunk_rows
        return _conv_forward(feats, weight, kmap, chunk_rows)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        feats, weight = ctx.saved_tensors
        grad_in, grad_w = _conv_backward(
            grad_out.contiguous().to(feats.dtype), feats, weight, ctx.kmap, ctx.chunk_rows,
            ctx.needs_input_grad[0], ctx.needs_input_grad[1],
        )
        return grad_in, grad_w, None, None


def sparse_conv(
    feats: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    chunk_rows: int | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sparse convolution: ``out[o] = bias + sum over pairs (i, o) of offset k of feats[i] @ weight[k]``.

    Args:
        feats: (M_in, Cin) float input features.
        weight: (K, Cin, Cout) weights, K = ``kmap.num_offsets``.
        kmap: the kernel map (pairs per offset).
        chunk_rows: pairs per gather/matmul/scatter step (default: CPU_CHUNK_BYTES of buffers on CPU,
            CUDA_CHUNK_ROWS on GPUs); bounds the two work buffers to chunk_rows x (Cin + Cout) values.
        bias: optional (Cout,) added to every output row (fused into the first matmul when no gradient
            is needed, e.g. a batch norm folded into the weights at inference).
    Returns: (kmap.num_out, Cout) features. Differentiable in ``feats``, ``weight`` and ``bias``. Under
        autocast they are cast to the autocast dtype (e.g. bf16 on CUDA) and the result has that dtype.
    """
    if weight.ndim != 3 or weight.shape[0] != kmap.num_offsets or weight.shape[1] != feats.shape[1]:
        raise ValueError(
            f"weight shape {tuple(weight.shape)} does not fit {kmap.num_offsets} offsets and "
            f"{feats.shape[1]} input channels"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[2],):
        raise ValueError(f"bias shape {tuple(bias.shape)} does not fit {weight.shape[2]} output channels")
    device_type = feats.device.type
    if chunk_rows is None:
        row_bytes = (weight.shape[1] + weight.shape[2]) * feats.element_size()
        chunk_rows = CUDA_CHUNK_ROWS if device_type == "cuda" else max(512, CPU_CHUNK_BYTES // row_bytes)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    dtype = feats.dtype
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
    with torch.autocast(device_type, enabled=False):
        feats, weight = feats.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
        tracked = (feats, weight) if bias is None else (feats, weight, bias)
        if not (torch.is_grad_enabled() and any(t.requires_grad for t in tracked)):
            return _conv_forward(feats.contiguous(), weight, kmap, chunk_rows, bias)
        out = _SparseConvFunction.apply(feats, weight, kmap, chunk_rows)
        return out if bias is None else out + bias


def _init_weight(k: int, c_in: int, c_out: int) -> nn.Parameter:
    """(K, Cin, Cout) weight, uniform with the fan-in bound of torch's conv default (1/sqrt(K*Cin))."""
    bound = 1.0 / math.sqrt(k * c_in)
    return nn.Parameter(torch.empty(k, c_in, c_out).uniform_(-bound, bound))


class SubmanifoldConv3d(nn.Module):
    """3x3x3 submanifold convolution: outputs on the input voxels, same stride. No bias (BN follows)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False):
        super().__init__()
        self.weight = _init_weight(27, in_channels, out_channels)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(
        self, x: SparseTensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        """``weight`` (27, Cin, Cout) / ``bias`` (Cout,) replace the module's own (a folded batch norm)."""
        kmap = x.cache.submanifold_map(x.coords, x.stride)
        if weight is None:
            weight, bias = self.weight, self.bias
        return x.replace(sparse_conv(x.feats, weight, kmap, bias=bias))


class DownConv3d(nn.Module):
    """Strided convolution, kernel 2, stride 2: voxels at stride s -> voxels ``floor(c / 2)`` at 2s."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.weight = _init_weight(8, in_channels, out_channels)

    def forward(
        self, x: SparseTensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        """``weight`` (8, Cin, Cout) / ``bias`` (Cout,) replace the module's own (a folded batch norm)."""
        down = x.cache.downsampling(x.coords, x.stride)
        weight = self.weight if weight is None else weight
        out = sparse_conv(x.feats, weight, down.kernel_map, bias=bias)
        return SparseTensor(down.coarse_coords, out, 2 * x.stride, x.cache)


class UpConv3d(nn.Module):
    """Transposed convolution, kernel 2, stride 2: voxels at stride s -> the voxels the cache holds at s/2.

    Each fine voxel ``c`` receives ``feats[parent] @ weight[c - 2 * parent]``; the fine voxel set is the
    one a :class:`DownConv3d` (or ``cache.downsampling``) halved earlier, so decoder levels land exactly
    on the encoder's voxels.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.weight = _init_weight(8, in_channels, out_channels)

    def forward(
        self, x: SparseTensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None
    ) -> SparseTensor:
        """``weight`` (8, Cin, Cout) / ``bias`` (Cout,) replace the module's own (a folded batch norm)."""
        fine_stride = x.stride // 2
        if x.stride < 2 or fine_stride not in x.cache.down:
            raise ValueError(f"no finer voxel set at stride {fine_stride} in the cache to up-sample onto")
        down = x.cache.down[fine_stride]
        fine_coords = x.cache.coords[fine_stride]
        kmap = down.kernel_map.transposed(int(fine_coords.shape[0]))
        weight = self.weight if weight is None else weight
        out = sparse_conv(x.feats, weight, kmap, bias=bias)
        return SparseTensor(fine_coords, out, fine_stride, x.cache)
