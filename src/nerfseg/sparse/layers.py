"""Feature-wise layers on sparse tensors: batch norm, activation, dropout, linear (1x1x1 conv)."""

from __future__ import annotations

from torch import nn

from nerfseg.sparse.tensor import SparseTensor


class SparseBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the (M, C) features of all voxels of the batch."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace(super().forward(x.feats))


class SparseReLU(nn.ReLU):
    """ReLU on the features."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace(super().forward(x.feats))


class SparseLinear(nn.Linear):
    """Per-voxel linear map (a 1x1x1 convolution), (M, Cin) -> (M, Cout)."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace(super().forward(x.feats))
