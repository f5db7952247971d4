"""The appearance gate of the camera pseudo-labels (``ssl.camera.appearance``): a 2D net
(:class:`nerfseg.models.appearance.AppearanceNet`) trained on the labeled scans' images alone, whose class
must agree with a fused pixel pseudo-label for that label to be kept.

- :func:`projected_cell_labels`: its targets, a labeled scan's LiDAR labels projected into one camera, one
  label per reduced-grid cell: the label of the labeled point nearest to the camera (z axis) among those that
  land in the cell, so a point hidden behind the cell's nearest surface (LiDAR-camera parallax) does not
  override it.
- :func:`labeled_views` / :func:`train_appearance_net`: read the labeled views and train the net once,
  before the first training step (it is then frozen and saved with the run's checkpoints).
- :func:`appearance_gate`: the pure gate.

Metres in the scan's `lidar` frame; cells as :class:`nerfseg.geometry.rays.PixelGrid`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.errors import ConfigError
from nerfseg.geometry.rays import PixelGrid
from nerfseg.models.appearance import APPEARANCE_STRIDE, AppearanceNet
from nerfseg.ssl.camera_points import grid_cells_of_pixels
from nerfseg.ssl.config import AppearanceConfig
from nerfseg.ssl.projection import project_to_pixels


def projected_cell_labels(xyz: torch.Tensor, labels: torch.Tensor, camera, grid: PixelGrid) -> torch.Tensor:
    """Label of the nearest labeled point in each reduced-grid cell of one camera.

    Args:
        xyz: (N, 3+) the scan's points in its `lidar` frame, metres.
        labels: (N,) int64 train ids, IGNORE_INDEX where unlabeled (those points never label a cell).
        camera: the scan's CameraFrame (``K``, ``lidar_to_cam``, ``image_size``).
        grid: the reduced grid (cell (j, i) covers full-resolution pixels [s*j, s*j + s) x [s*i, s*i + s)).
    Returns:
        (H', W') int64 labels on the device of ``labels``, IGNORE_INDEX where no labeled point lands.
    """
    if xyz.ndim != 2 or xyz.shape[1] < 3 or labels.shape != (xyz.shape[0],):
        raise ValueError(f"projected_cell_labels: expected xyz (N, 3+) and labels (N,), got "
                         f"{tuple(xyz.shape)} and {tuple(labels.shape)}")
    device = labels.device
    h, w = grid.shape
    out = torch.full((h * w,), IGNORE_INDEX, dtype=torch.int64, device=device)
    points = xyz[:, :3].detach().cpu()
    pixels, visible = project_to_pixels(points, camera.K, camera.lidar_to_cam, camera.image_size)
    cells = grid_cells_of_pixels(pixels, visible, grid).to(device)
    keep = torch.nonzero((cells >= 0) & (labels != IGNORE_INDEX)).squeeze(1)
    if keep.numel() == 0:
        return out.view(h, w)
    rotation = torch.as_tensor(np.asarray(camera.lidar_to_cam)[2, :3], dtype=torch.float64)
    depth = (points.double() @ rotation + float(np.asarray(camera.lidar_to_cam)[2, 3])).to(device)[keep]
    cell = cells[keep]
    # nearest first within each cell: sort by depth, then stably by cell; the first of each run wins
    order = torch.argsort(depth)
    order = order[torch.argsort(cell[order], stable=True)]
    sorted_cells = cell[order]
    first = torch.ones_like(sorted_cells, dtype=torch.bool)
    first[1:] = sorted_cells[1:] != sorted_cells[:-1]
    out[sorted_cells[first]] = labels[keep][order[first]]
    return out.view(h, w)


def appearance_gate(labels: torch.Tensor, appearance_probs: torch.Tensor) -> torch.Tensor:
    """Keep a pixel pseudo-label only where the appearance net's argmax is the same class.

    Args:
        labels: (H', W') int64 fused pseudo-labels, IGNORE_INDEX where none.
        appearance_probs: (H', W', C) the net's class probabilities on the same grid.
    Returns:
        (H', W') int64: ``labels`` where ``argmax(appearance_probs) == labels``, IGNORE_INDEX elsewhere.
    """
    if appearance_probs.shape[:2] != labels.shape:
        raise ValueError(f"appearance_gate: labels {tuple(labels.shape)} and probabilities "
                         f"{tuple(appearance_probs.shape)} are not on the same grid")
    agrees = appearance_probs.argmax(dim=-1).to(labels.device) == labels
    return torch.where(agrees, labels, torch.full_like(labels, IGNORE_INDEX))


def labeled_views(source, positions, max_views: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The appearance net's training views: (image (H, W, 3) uint8, targets (H/4', W/4') int64) of the cameras
    of the labeled scans ``source[p]`` for p in ``positions``, read in a random (seeded) order of scans until
    ``max_views`` views are held; views whose projected labels are all IGNORE_INDEX are dropped."""
    order = np.random.default_rng(np.random.SeedSequence([seed, 0xA99])).permutation(len(positions))
    views = []
    for k in order:
        if len(views) >= max_views:
            break
        sample = source[int(positions[k])]
        if sample.labels is None:
            continue
        labels = torch.as_tensor(np.asarray(sample.labels, dtype=np.int64))
        points = torch.as_tensor(np.asarray(sample.points[:, :3]))
        for camera in sample.cameras[:max_views - len(views)]:
            grid = PixelGrid(*camera.image_size, APPEARANCE_STRIDE)
            target = projected_cell_labels(points, labels, camera, grid)
            if bool((target != IGNORE_INDEX).any()):
                views.append((torch.as_tensor(camera.load_image()), target))
    return views


def new_appearance_net(num_classes: int, cfg: AppearanceConfig, seed: int,
                       device: torch.device | str = "cpu") -> AppearanceNet:
    """An untrained appearance net, in eval mode and frozen, its initial weights drawn from ``seed`` without
    touching the caller's global RNG stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = AppearanceNet(num_classes, cfg.width).to(device).eval()
    return net.requires_grad_(False)


def _random_crop(image: torch.Tensor, target: torch.Tensor, height: int, width: int, gen: torch.Generator):
    """A random crop of (image, target) whose corner lies on the 4-pixel cell lattice, flipped left-right
    half the time; images smaller than the crop are taken whole. The image crop always spans whole cells
    (``4 * ch`` x ``4 * cw`` pixels): where the grid's last cells are partial (a side 3 more than a multiple
    of 4, e.g. KITTI's 375 rows), the image's last row / column is repeated."""
    s = APPEARANCE_STRIDE
    h, w = target.shape
    ch, cw = min(height // s, h), min(width // s, w)
    j = int(torch.randint(0, h - ch + 1, (), generator=gen))
    i = int(torch.randint(0, w - cw + 1, (), generator=gen))
    rows = torch.arange(j * s, (j + ch) * s).clamp_(max=image.shape[0] - 1)
    cols = torch.arange(i * s, (i + cw) * s).clamp_(max=image.shape[1] - 1)
    img = image[rows][:, cols]
    tgt = target[j:j + ch, i:i + cw]
    if bool(torch.rand((), generator=gen) < 0.5):
        img, tgt = img.flip(1), tgt.flip(1)
    return img, tgt


def train_appearance_net(net: AppearanceNet, views, cfg: AppearanceConfig, seed: int,
                         device: torch.device | str = "cpu") -> list[float]:
    """Train the appearance net in place on labeled views (:func:`labeled_views`): ``cfg.steps`` Adam steps,
    each on ``cfg.views_per_step`` views drawn at random (random crops and flips, from a generator seeded by
    ``seed``; the global RNG is not read), cross-entropy against the projected labels. Leaves the net in
    eval mode with frozen parameters; returns the loss of every step."""
    if not views:
        raise ConfigError("ssl.camera.appearance: no labeled camera view to learn from (no labeled point "
                          "projects into any labeled scan's camera)")
    gen = torch.Generator().manual_seed(seed)
    net.train().requires_grad_(True)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    losses = []
    for _ in range(cfg.steps):
        picks = torch.randint(0, len(views), (cfg.views_per_step,), generator=gen).tolist()
        crops = [_random_crop(*views[k], cfg.crop_height, cfg.crop_width, gen) for k in picks]
        h = min(t.shape[0] for _, t in crops)
        w = min(t.shape[1] for _, t in crops)
        s = APPEARANCE_STRIDE
        images = torch.stack([img[:h * s, :w * s].permute(2, 0, 1) for img, _ in crops]).to(device)
        targets = torch.stack([t[:h, :w] for _, t in crops]).to(device)
        logits = net(images)[:, :, :h, :w]
        if bool((targets != IGNORE_INDEX).any()):
            loss = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    net.eval().requires_grad_(False)
    return losses
