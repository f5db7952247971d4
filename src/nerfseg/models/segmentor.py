"""The LiDAR segmentor: voxelize -> MinkUNet -> devoxelize -> point head (DESIGN.md, method step 1).

Inference model: this module holds no NeRF weights; the NeRF head (training only) reads
``SegmentorOutput.voxel_features``.

Voxel convention of the output (the NeRF head relies on it): ``voxel_features.coords`` are
[batch, i, j, k] with base voxel index ``floor(xyz / voxel_size)`` in the scan's own LiDAR frame (no
offset), stride 1; the voxel centre is ``(index + 0.5) * voxel_size`` metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nerfseg.data.collate import PointBatch
from nerfseg.errors import ConfigError
from nerfseg.models.backbone import BackboneConfig, MinkUNet, backbone_config, folded_batch_norm
from nerfseg.sparse import SparseTensor, devoxelize, point_offsets, voxelize


@dataclass
class SegmentorConfig:
    """Configuration of :class:`LidarSegmentor`.

    Attributes:
        preset: backbone preset, ``tiny`` (tests, demo, synthetic data on CPU), ``full`` (MinkUNet18
            widths, real datasets) or ``full34`` (MinkUNet34 depths).
        voxel_size: base voxel edge in metres.
        in_channels: point columns averaged per voxel as the backbone input: 3 = x, y, z (metres, lidar
            frame); 4 = x, y, z and intensity.
        stem_channels, encoder_channels, decoder_channels, encoder_depths, decoder_depths: optional
            overrides of the preset (None keeps the preset's value).
        point_hidden: hidden width of the point head MLP.
        dropout: dropout probability in the point head (training only).
    """

    preset: str = "tiny"
    voxel_size: float = 0.05
    in_channels: int = 4
    stem_channels: int | None = None
    encoder_channels: tuple[int, ...] | None = None
    decoder_channels: tuple[int, ...] | None = None
    encoder_depths: tuple[int, ...] | None = None
    decoder_depths: tuple[int, ...] | None = None
    point_hidden: int = 64
    dropout: float = 0.0

    def backbone(self) -> BackboneConfig:
        """The backbone configuration (preset plus overrides); raises ConfigError when invalid."""
        if not self.voxel_size > 0:
            raise ConfigError(f"model.voxel_size must be positive metres, got {self.voxel_size}")
        if self.in_channels not in (3, 4):
            raise ConfigError(
                f"model.in_channels must be 3 (x, y, z) or 4 (x, y, z, intensity), got {self.in_channels}"
            )
        if self.point_hidden < 1 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(
                f"model.point_hidden must be >= 1 and model.dropout in [0, 1), "
                f"got {self.point_hidden}, {self.dropout}"
            )
        return backbone_config(
            self.preset, self.in_channels, stem_channels=self.stem_channels,
            encoder_channels=self.encoder_channels, decoder_channels=self.decoder_channels,
            encoder_depths=self.encoder_depths, decoder_depths=self.decoder_depths,
        )


@dataclass
class SegmentorOutput:
    """What :meth:`LidarSegmentor.forward` returns.

    Attributes:
        point_logits: (N, num_classes) float class scores of the batch's points, in PointBatch order.
        voxel_features: decoder output, a SparseTensor at stride 1 on the input voxels (see module doc).
        voxel_size: base voxel edge in metres.
        point_to_voxel: (N,) int64 row of each point's voxel in ``voxel_features``.
    """

    point_logits: torch.Tensor
    voxel_features: SparseTensor
    voxel_size: float
    point_to_voxel: torch.Tensor


class PointHead(nn.Module):
    """MLP on [voxel feature (C), point offset within its voxel (3, voxel units), intensity (1)] -> logits.

    ``mlp`` is Linear(C + 4 -> hidden, no bias), BatchNorm, ReLU, Dropout, Linear(hidden -> classes). The
    first Linear is applied to the voxel features once per voxel and gathered per point (it is linear, so
    this equals applying it to each point's concatenated input, with fewer rows and no (N, C + 4) copy);
    in eval mode its batch norm is folded into it.
    """

    def __init__(self, voxel_channels: int, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(voxel_channels + 4, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(
        self,
        voxel_feats: torch.Tensor,
        point_to_voxel: torch.Tensor,
        offsets: torch.Tensor,
        intensity: torch.Tensor,
    ) -> torch.Tensor:
        """(M, C) voxel features, (N,) int64 voxel row of each point, (N, 3) offsets in voxel units,
        (N, 1) intensity -> (N, num_classes) logits."""
        linear, bn = self.mlp[0], self.mlp[1]
        c = linear.in_features - 4
        weight = linear.weight  # (hidden, C + 4)
        folded = folded_batch_norm(bn)
        if folded is not None:
            weight = weight * folded[0][:, None]
        per_voxel = voxel_feats @ weight[:, :c].t().to(voxel_feats.dtype)  # (M, hidden)
        dtype = per_voxel.dtype
        extra = torch.cat([offsets, intensity], dim=1).to(dtype)  # (N, 4)
        hidden = devoxelize(per_voxel, point_to_voxel).addmm_(extra, weight[:, c:].t().to(dtype))
        hidden = bn(hidden) if folded is None else hidden.add_(folded[1].to(hidden.dtype))
        return self.mlp[4](self.mlp[3](torch.relu_(hidden)))


    def classify_features(self, voxel_feats: torch.Tensor) -> torch.Tensor:
        """Logits (S, num_classes) of features (S, C) read anywhere in the voxel volume (the NeRF head's
        samples), as if a point of zero remission sat at a voxel centre (offset 0): the first Linear's
        voxel part, batch norm with its running statistics (samples are not points, so they must not move
        them), ReLU, dropout, classifier. Gradients reach every weight of the head and the features."""
        linear, bn = self.mlp[0], self.mlp[1]
        c = linear.in_features - 4
        hidden = voxel_feats @ linear.weight[:, :c].t().to(voxel_feats.dtype)
        hidden = F.batch_norm(
            hidden.float(), bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps
        )
        return self.mlp[4](self.mlp[3](torch.relu(hidden)).to(voxel_feats.dtype))


class LidarSegmentor(nn.Module):
    """Per-point semantic segmentation of LiDAR scans with a sparse U-Net and a point head.

    ``LidarSegmentor(cfg, num_classes)(batch)`` with a :class:`~nerfseg.data.collate.PointBatch`
    returns a :class:`SegmentorOutput`.
    """

    def __init__(self, cfg: SegmentorConfig, num_classes: int):
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        self.cfg = cfg
        self.num_classes = num_classes
        self.backbone = MinkUNet(cfg.backbone())
        self.head = PointHead(self.backbone.out_channels, cfg.point_hidden, num_classes, cfg.dropout)

    @property
    def voxel_feature_channels(self) -> int:
        """Channels C of ``SegmentorOutput.voxel_features`` (for the NeRF head's input size)."""
        return self.backbone.out_channels

    def forward(self, batch: PointBatch) -> SegmentorOutput:
        points = batch.points
        if points.ndim != 2 or points.shape[1] < 4 or points.shape[0] == 0:
            raise ValueError(f"LidarSegmentor expects (N >= 1, 4) points, got {tuple(points.shape)}")
        xyz = points[:, :3]
        vox = voxelize(xyz, batch.batch_index, points[:, : self.cfg.in_channels], self.cfg.voxel_size)
        features = self.backbone(vox.tensor)
        offsets = point_offsets(xyz, vox.tensor.coords, vox.point_to_voxel, self.cfg.voxel_size)
        logits = self.head(features.feats, vox.point_to_voxel, offsets, points[:, 3:4])
        return SegmentorOutput(logits, features, self.cfg.voxel_size, vox.point_to_voxel)
