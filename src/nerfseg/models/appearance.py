"""A small 2D appearance classifier: per-cell class logits of a camera image on the reduced pixel grid.

It learns from the labeled scans' LiDAR labels projected into their images
(:func:`nerfseg.ssl.appearance.projected_cell_labels`) and labels the unlabeled scans' images from
what they look like. Its errors come from appearance, not from the 3D teacher's geometry, which is what
makes it a second opinion for the camera pseudo-labels (``ssl.camera.appearance``). Training only: the
exported segmentor never holds it.

Layout: two stride-2 3x3 convs to stride 4 (the grid stride the presets use), one more to stride 8, three
dilated 3x3 convs there for context, upsampled back to stride 4 and merged with the stride-4 features by a
1x1 conv. Input: RGB scaled to [-1, 1] and the pixel row as a fourth channel (a camera is mounted at a
fixed height, so the row carries where the ground and the sky are).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nerfseg.geometry.rays import PixelGrid

APPEARANCE_STRIDE = 4
"""Stride of the net's output: one logit vector per 4 x 4 pixel block."""


def _conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class AppearanceNet(nn.Module):
    """Per-cell class logits of an RGB image at stride 4."""

    def __init__(self, num_classes: int, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(_conv(4, width // 2, 2), _conv(width // 2, width, 2))
        self.down = _conv(width, 2 * width, 2)
        self.context = nn.Sequential(*(_conv(2 * width, 2 * width, dilation=d) for d in (1, 2, 4)))
        self.merge = nn.Sequential(nn.Conv2d(3 * width, width, 1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True))
        self.classify = nn.Conv2d(width, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of images.

        Args:
            images: (B, 3, H, W) uint8 RGB (or float in [0, 255]).
        Returns:
            (B, C, ceil(H / 4), ceil(W / 4)) float logits; cell (j, i) covers pixels
            [4j, 4j + 4) x [4i, 4i + 4).
        """
        b, _, h, w = images.shape
        x = images.float() / 127.5 - 1.0
        rows = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1)
        rows = rows.expand(b, 1, h, w)
        f4 = self.stem(torch.cat([x, rows], dim=1))
        f8 = self.context(self.down(f4))
        up = F.interpolate(f8, size=f4.shape[-2:], mode="bilinear", align_corners=False)
        return self.classify(self.merge(torch.cat([f4, up], dim=1)))


def grid_probs(net: AppearanceNet, image: torch.Tensor, grid: PixelGrid) -> torch.Tensor:
    """The net's class probabilities on a reduced pixel grid.

    Args:
        net: the appearance net.
        image: (H, W, 3) uint8 RGB of one camera, H x W = ``(grid.height, grid.width)``.
        grid: the reduced grid; its stride must be a multiple of :data:`APPEARANCE_STRIDE` (a coarser cell
            averages the probabilities of the stride-4 cells it covers).
    Returns:
        (H', W', C) float probabilities, cell (j, i) of ``grid``.
    """
    if grid.stride % APPEARANCE_STRIDE:
        raise ValueError(f"the appearance net labels grids whose stride is a multiple of "
                         f"{APPEARANCE_STRIDE}, got stride {grid.stride}")
    if tuple(image.shape[:2]) != (grid.height, grid.width):
        raise ValueError(f"image {tuple(image.shape)} does not match the grid's {grid.width}x{grid.height}")
    h, w = grid.shape
    probs = torch.softmax(net(image.permute(2, 0, 1).unsqueeze(0)).float(), dim=1)
    k = grid.stride // APPEARANCE_STRIDE
    if k > 1:
        probs = F.avg_pool2d(probs, k, stride=k, ceil_mode=True)
    return probs[0, :, :h, :w].permute(1, 2, 0)
