"""MinkUNet-style sparse-convolution encoder-decoder (U-Net) on voxel features.

Layout (n = number of encoder stages, ``encoder_channels[i]`` / ``decoder_channels[i]``):

- stem at stride 1: two 3x3x3 submanifold convs (in -> stem), each with BN + ReLU;
- encoder stage i: a k=2, s=2 strided conv (keeps channels) + BN + ReLU, then ``encoder_depths[i]``
  residual blocks (the first changes channels to ``encoder_channels[i]``); stage i ends at stride 2**(i+1);
- decoder stage j: a k=2, s=2 transposed conv onto the encoder's voxels one level finer
  (-> ``decoder_channels[j]``) + BN + ReLU, concatenation with that level's encoder output (skip), then
  ``decoder_depths[j]`` residual blocks. The last decoder stage ends at stride 1 on the input voxels.

A residual block is conv-BN-ReLU-conv-BN plus a shortcut (identity, or a linear map + BN when the
channel count changes), then ReLU. The ``full`` preset has MinkUNet18's widths (as in SPVNAS's
MinkUNet: 32 | 32, 64, 128, 256 | 256, 128, 96, 96, two blocks per stage).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from nerfseg.errors import ConfigError
from nerfseg.sparse import (
    DownConv3d,
    SparseBatchNorm,
    SparseLinear,
    SparseReLU,
    SparseTensor,
    SubmanifoldConv3d,
    UpConv3d,
)


@dataclass(frozen=True)
class BackboneConfig:
    """Widths and depths of the U-Net.

    Attributes:
        in_channels: input voxel feature channels.
        stem_channels: channels of the stride-1 stem.
        encoder_channels: output channels of each encoder stage (stage i ends at stride 2**(i+1)).
        decoder_channels: output channels of each decoder stage (same count as encoder stages).
        encoder_depths: residual blocks per encoder stage.
        decoder_depths: residual blocks per decoder stage.
    """

    in_channels: int = 4
    stem_channels: int = 32
    encoder_channels: tuple[int, ...] = (32, 64, 128, 256)
    decoder_channels: tuple[int, ...] = (256, 128, 96, 96)
    encoder_depths: tuple[int, ...] = (2, 2, 2, 2)
    decoder_depths: tuple[int, ...] = (2, 2, 2, 2)

    def validate(self) -> None:
        """Raise ConfigError when the lists do not fit together."""
        n = len(self.encoder_channels)
        lengths = [len(self.decoder_channels), len(self.encoder_depths), len(self.decoder_depths)]
        if n == 0 or any(length != n for length in lengths):
            raise ConfigError(
                "backbone: encoder_channels, decoder_channels, encoder_depths and decoder_depths must be "
                f"non-empty and of equal length, got {n} and {lengths}"
            )
        widths = [self.in_channels, self.stem_channels, *self.encoder_channels, *self.decoder_channels]
        if any(int(c) <= 0 for c in widths):
            raise ConfigError(f"backbone: channel counts must be positive, got {widths}")
        if any(int(d) < 1 for d in (*self.encoder_depths, *self.decoder_depths)):
            raise ConfigError("backbone: every stage needs at least one residual block")

    @property
    def out_channels(self) -> int:
        return int(self.decoder_channels[-1])


BACKBONE_PRESETS: dict[str, BackboneConfig] = {
    # fast: unit tests, the demo and CPU runs on the synthetic dataset
    "tiny": BackboneConfig(
        stem_channels=16, encoder_channels=(16, 32, 64), decoder_channels=(32, 32, 32),
        encoder_depths=(1, 1, 1), decoder_depths=(1, 1, 1),
    ),
    # real datasets: MinkUNet18 widths and depths
    "full": BackboneConfig(),
    # MinkUNet34 depths with the same widths
    "full34": BackboneConfig(encoder_depths=(2, 3, 4, 6), decoder_depths=(2, 2, 2, 2)),
}


def backbone_config(preset: str, in_channels: int, **overrides) -> BackboneConfig:
    """The named preset (``tiny``, ``full``, ``full34``) with ``in_channels`` and non-None overrides."""
    if preset not in BACKBONE_PRESETS:
        raise ConfigError(f"backbone: unknown preset {preset!r}; choose one of {sorted(BACKBONE_PRESETS)}")
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None}
    cfg = replace(BACKBONE_PRESETS[preset], in_channels=in_channels, **changes)
    cfg.validate()
    return cfg


def folded_batch_norm(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift), both (C,), with ``bn(y) == y * scale + shift``, for a batch norm in eval mode that
    uses running statistics; None when it normalises with batch statistics (training)."""
    if bn.training or bn.running_mean is None or bn.running_var is None:
        return None
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def conv_bn(conv: nn.Module, bn: nn.BatchNorm1d, x: SparseTensor) -> SparseTensor:
    """``bn(conv(x))`` for a sparse conv without bias; in eval mode the batch norm is folded into the
    conv's (K, Cin, Cout) weight and a bias, so no separate normalisation pass runs."""
    folded = folded_batch_norm(bn)
    if folded is None:
        return bn(conv(x))
    scale, shift = folded
    return conv(x, conv.weight * scale, shift)


def linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d, x: SparseTensor) -> SparseTensor:
    """``bn(linear(x))`` for a linear map without bias, folded in eval mode like :func:`conv_bn`."""
    folded = folded_batch_norm(bn)
    if folded is None:
        return bn(linear(x))
    scale, shift = folded
    return x.replace(torch.addmm(shift, x.feats, (linear.weight * scale[:, None]).t()))


class ConvBNReLU(nn.Sequential):
    """A sparse conv module followed by batch norm and ReLU (the norm folded into the conv in eval mode)."""

    def __init__(self, conv: nn.Module, channels: int):
        super().__init__(conv, SparseBatchNorm(channels), SparseReLU(inplace=True))

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        y = conv_bn(self[0], self[1], x)
        return y.replace(torch.relu_(y.feats))  # in place: BN (or the folded conv) does not need its output


class ResidualBlock(nn.Module):
    """conv3-BN-ReLU-conv3-BN + shortcut, ReLU. (M, Cin) -> (M, Cout) on the same voxels."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = SubmanifoldConv3d(in_channels, out_channels)
        self.bn1 = SparseBatchNorm(out_channels)
        self.conv2 = SubmanifoldConv3d(out_channels, out_channels)
        self.bn2 = SparseBatchNorm(out_channels)
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(
                SparseLinear(in_channels, out_channels, bias=False), SparseBatchNorm(out_channels)
            )
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        y = conv_bn(self.conv1, self.bn1, x)
        y = conv_bn(self.conv2, self.bn2, y.replace(torch.relu_(y.feats)))  # in place: BN needs no output
        shortcut = x if isinstance(self.shortcut, nn.Identity) else linear_bn(*self.shortcut, x)
        if y.feats.dtype == shortcut.feats.dtype:
            return x.replace(torch.relu_(y.feats.add_(shortcut.feats)))
        return x.replace(torch.relu_(y.feats + shortcut.feats))  # mixed precision: promote as before


def _blocks(in_channels: int, out_channels: int, depth: int) -> list[nn.Module]:
    return [ResidualBlock(in_channels if i == 0 else out_channels, out_channels) for i in range(depth)]


class MinkUNet(nn.Module):
    """Sparse U-Net: SparseTensor (M, in_channels) at stride 1 -> SparseTensor (M, out_channels) at stride 1.

    The output lies on exactly the input voxels (same coords, same row order).
    """

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        stem = cfg.stem_channels
        self.stem = nn.Sequential(
            ConvBNReLU(SubmanifoldConv3d(cfg.in_channels, stem), stem),
            ConvBNReLU(SubmanifoldConv3d(stem, stem), stem),
        )
        level_channels = [stem]  # output channels at stride 2**i, i = 0..n
        self.encoder = nn.ModuleList()
        for width, depth in zip(cfg.encoder_channels, cfg.encoder_depths, strict=True):
            c = level_channels[-1]
            self.encoder.append(nn.Sequential(ConvBNReLU(DownConv3d(c, c), c), *_blocks(c, width, depth)))
            level_channels.append(width)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        c = level_channels[-1]
        for j, (width, depth) in enumerate(zip(cfg.decoder_channels, cfg.decoder_depths, strict=True)):
            skip = level_channels[-2 - j]
            self.up.append(ConvBNReLU(UpConv3d(c, width), width))
            self.decoder.append(nn.Sequential(*_blocks(width + skip, width, depth)))
            c = width

    @property
    def out_channels(self) -> int:
        return self.cfg.out_channels

    def forward(self, x: SparseTensor) -> SparseTensor:
        if x.stride != 1:
            raise ValueError(f"MinkUNet expects a stride-1 input, got stride {x.stride}")
        levels = [self.stem(x)]
        for stage in self.encoder:
            levels.append(stage(levels[-1]))
        y = levels[-1]
        for j, (up, stage) in enumerate(zip(self.up, self.decoder, strict=True)):
            y = up(y)
            skip = levels[-2 - j]
            y = stage(y.replace(torch.cat([y.feats, skip.feats.to(y.feats.dtype)], dim=1)))
        return y
