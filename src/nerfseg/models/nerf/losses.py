"""Geometry (and semantics) from LiDAR rays, DESIGN.md step 6: the head renders rays from the sensor origin to
measured points; the depth must match the range, the ray must be opaque at the return, and on labeled points
the rendered class distribution must give the point's label."""

from __future__ import annotations

import torch

from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.geometry.rays import lidar_ray_bundle
from nerfseg.models.nerf.head import NerfHead
from nerfseg.models.nerf.sampler import uniform01


def draw_points_per_scan(
    batch_index: torch.Tensor, eligible: torch.Tensor, budget: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw up to ``budget`` eligible points per scan uniformly without replacement (vectorised).

    Args:
        batch_index: (N,) int64 scan of each point; eligible: (N,) bool; budget: points per scan.

    Returns:
        (K,) int64 indices of the drawn points, sorted by scan (K <= budget * number of scans).
    """
    if batch_index.numel() == 0 or budget <= 0:
        return torch.zeros(0, dtype=torch.int64, device=batch_index.device)
    noise = uniform01((batch_index.shape[0],), generator, batch_index.device)
    # Eligible points of scan b sort into [2b, 2b + 1) in random order, the others after them.
    sort_key = batch_index.double() * 2.0 + torch.where(
        eligible, noise.double(), torch.full_like(noise, 1.5).double()
    )
    order = torch.argsort(sort_key)
    sorted_batch = batch_index[order]
    first_of_scan = torch.searchsorted(sorted_batch, sorted_batch, right=False)
    rank = torch.arange(order.shape[0], device=order.device) - first_of_scan
    keep = (rank < budget) & eligible[order]
    return order[keep]


def lidar_ray_losses(
    head: NerfHead, seg_out, batch, generator: torch.Generator | None = None, volume=None
) -> dict[str, torch.Tensor]:
    """LiDAR-ray losses of one training step.

    Args:
        head: the NeRF head (its cfg gives the ray budget, near / far, margins and loss weights).
        seg_out: the segmentor's output: ``voxel_features`` (a SparseTensor at stride 1 with ``coords`` (M, 4)
            [batch, i, j, k] and ``feats`` (M, F)) and ``voxel_size`` (metres).
        batch: the PointBatch the segmentor saw (points (N, 4) in each scan's LiDAR frame, batch_index (N,),
            labels (N,) or None).
        generator: random source of the drawn points and of the stratified samples.
        volume: ``head.build_volume(seg_out)`` when the caller already built it (other losses of the step
            render through the same volume); built here otherwise.

    Returns:
        dict of scalar tensors: ``depth`` (mean |D - range|, metres), ``opacity`` (mean -log A at the return),
        ``free`` (mean rendering weight in front of ``range - lidar_free_margin``: the LiDAR saw through
        that space, so a camera ray must not stop there), ``semantic`` (mean -log P[label] over drawn
        labeled points; 0 when none), ``total`` (their weighted sum with cfg.lambda_depth / lambda_opacity /
        lambda_free / lambda_sem; the engine adds it to the loss) and ``num_rays``.
        The ray of each point runs from the sensor origin to ``range + cfg.lidar_surface_margin``, sampled
        with ``cfg.lidar_samples_per_ray`` stratified bins plus ``cfg.lidar_surface_samples`` around the
        return.
    """
    cfg = head.cfg
    points = batch.points[:, :3]
    ranges_all = torch.linalg.vector_norm(points, dim=1)
    eligible = ranges_all > cfg.near + cfg.lidar_surface_margin
    drawn = draw_points_per_scan(batch.batch_index, eligible, cfg.lidar_rays_per_scan, generator)
    bundle, ranges = lidar_ray_bundle(points[drawn], batch.batch_index[drawn])
    far = ranges + cfg.lidar_surface_margin
    near = torch.full_like(far, cfg.near)
    grid = head.build_volume(seg_out) if volume is None else volume
    out = head.render_grid(
        grid,
        bundle,
        near=near,
        far=far,
        surface_depth=ranges,
        generator=generator,
        num_samples=cfg.lidar_samples_per_ray,
    )
    zero = out.depth.new_zeros(())
    if drawn.numel() == 0:
        depth_loss = opacity_loss = free_loss = zero
    else:
        depth_loss = (out.depth - ranges.float()).abs().mean()
        opacity_loss = -torch.log(out.opacity.clamp(cfg.eps, 1.0)).mean()
        in_front = out.t < (ranges.float() - cfg.lidar_free_margin).unsqueeze(1)
        free_loss = (out.weights * in_front).sum(dim=1).mean()
    semantic_loss = zero
    if batch.labels is not None and drawn.numel() > 0:
        labels = batch.labels[drawn]
        labeled = labels != IGNORE_INDEX
        if bool(labeled.any()):
            picked = out.probs[labeled].gather(1, labels[labeled].unsqueeze(1)).squeeze(1)
            semantic_loss = -torch.log(picked.clamp_min(cfg.eps)).mean()
    total = (
        cfg.lambda_depth * depth_loss
        + cfg.lambda_opacity * opacity_loss
        + cfg.lambda_free * free_loss
        + cfg.lambda_sem * semantic_loss
    )
    return {
        "depth": depth_loss,
        "opacity": opacity_loss,
        "free": free_loss,
        "semantic": semantic_loss,
        "total": total,
        "num_rays": torch.tensor(float(drawn.numel()), device=out.depth.device),
    }
