"""LiDAR-ray losses: the per-scan ray budget, the loss terms, and geometry learned from LiDAR rays alone."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.data.collate import PointBatch
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.geometry.rays import RayBundle
from nerfseg.models.nerf import NerfConfig, NerfHead, lidar_ray_losses
from nerfseg.models.nerf.losses import draw_points_per_scan

VOXEL = 0.2


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 30), min_size=1, max_size=4),
    budget=st.integers(0, 12),
    seed=st.integers(0, 1000),
)
def test_draw_points_per_scan_respects_budget_and_eligibility(sizes, budget, seed):
    batch_index = torch.cat([torch.full((n,), b, dtype=torch.int64) for b, n in enumerate(sizes)])
    gen = torch.Generator().manual_seed(seed)
    eligible = torch.rand(batch_index.shape[0], generator=gen) < 0.7
    drawn = draw_points_per_scan(batch_index, eligible, budget, torch.Generator().manual_seed(seed))
    assert drawn.unique().numel() == drawn.numel()
    assert eligible[drawn].all()
    for b in range(len(sizes)):
        expected = min(budget, int(eligible[batch_index == b].sum()))
        assert int((batch_index[drawn] == b).sum()) == expected
    again = draw_points_per_scan(batch_index, eligible, budget, torch.Generator().manual_seed(seed))
    assert torch.equal(drawn, again)


def _wall_scene(num_points: int = 3000, seed: int = 0):
    """Scan 0: LiDAR returns on a wall x = 8 m (label 1) and the ground z = -1.5 m (label 0); scan 1: the
    wall only, unlabeled (IGNORE_INDEX). Voxels are the occupied cells of the points."""
    gen = torch.Generator().manual_seed(seed)
    y = (torch.rand(num_points, generator=gen) - 0.5) * 8
    z = torch.rand(num_points, generator=gen) * 3 - 1.4
    wall = torch.stack([torch.full_like(y, 8.0), y, z], dim=1)
    gx = torch.rand(num_points, generator=gen) * 6 + 1.5
    gy = (torch.rand(num_points, generator=gen) - 0.5) * 8
    ground = torch.stack([gx, gy, torch.full_like(gx, -1.5)], dim=1)
    xyz = torch.cat([wall, ground, wall])
    points = torch.cat([xyz, torch.rand(xyz.shape[0], 1, generator=gen)], dim=1)
    batch_index = torch.cat(
        [torch.zeros(2 * num_points, dtype=torch.int64), torch.ones(num_points, dtype=torch.int64)]
    )
    labels = torch.cat(
        [torch.ones(num_points), torch.zeros(num_points), torch.full((num_points,), IGNORE_INDEX)]
    ).long()
    batch = PointBatch(points=points, batch_index=batch_index, labels=labels, sample_ids=["a", "b"])
    cells = torch.cat([batch_index.unsqueeze(1), torch.floor(xyz / VOXEL).long()], dim=1)
    coords = torch.unique(cells, dim=0)
    return batch, coords


def _seg_out(coords, feats):
    return SimpleNamespace(voxel_features=SimpleNamespace(coords=coords, feats=feats), voxel_size=VOXEL)


def test_losses_are_finite_weighted_and_reach_features():
    batch, coords = _wall_scene()
    torch.manual_seed(0)
    feats = (0.1 * torch.randn(coords.shape[0], 8)).requires_grad_(True)
    cfg = NerfConfig(lidar_rays_per_scan=128, samples_per_ray=96, lambda_depth=0.3, lambda_opacity=0.2)
    head = NerfHead(cfg, feature_dim=8, num_classes=3).train()
    losses = lidar_ray_losses(head, _seg_out(coords, feats), batch, torch.Generator().manual_seed(1))
    assert set(losses) >= {"depth", "opacity", "semantic", "total", "num_rays"}
    assert float(losses["num_rays"]) == 256
    for key in ("depth", "opacity", "semantic"):
        assert torch.isfinite(losses[key]) and float(losses[key].detach()) > 0
    expected = 0.3 * losses["depth"] + 0.2 * losses["opacity"] + 1.0 * losses["semantic"]
    assert torch.allclose(losses["total"], expected)
    losses["total"].backward()
    assert float(feats.grad.abs().sum()) > 0
    # Unlabeled batch: no semantic term.
    batch.labels = None
    unlabeled = lidar_ray_losses(
        head, _seg_out(coords, feats.detach()), batch, torch.Generator().manual_seed(1)
    )
    assert float(unlabeled["semantic"]) == 0.0 and float(unlabeled["depth"].detach()) > 0


def test_empty_batch_gives_zero_losses():
    batch = PointBatch(
        points=torch.zeros(0, 4), batch_index=torch.zeros(0, dtype=torch.int64), labels=None, sample_ids=[]
    )
    head = NerfHead(NerfConfig(), feature_dim=4, num_classes=2)
    losses = lidar_ray_losses(head, _seg_out(torch.zeros(0, 4, dtype=torch.int64), torch.zeros(0, 4)), batch)
    assert all(float(v) == 0.0 for v in losses.values())


@pytest.mark.slow
def test_geometry_and_semantics_are_learned_from_lidar_rays(one_thread):
    """Optimising only the LiDAR-ray losses, rendered depth of held-out returns converges to their range and
    the rendered class to their label."""
    batch, coords = _wall_scene()
    torch.manual_seed(0)
    feats = torch.nn.Parameter(0.1 * torch.randn(coords.shape[0], 8))
    cfg = NerfConfig(lidar_rays_per_scan=128, samples_per_ray=64, lambda_depth=0.2, lambda_opacity=0.2)
    head = NerfHead(cfg, feature_dim=8, num_classes=3).train()
    optimiser = torch.optim.Adam([feats, *head.parameters()], lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        optimiser.zero_grad()
        losses = lidar_ray_losses(head, _seg_out(coords, feats), batch, gen)
        losses["total"].backward()
        optimiser.step()
    # Evaluate on fresh returns of scan 0 (deterministic samples).
    test_batch, _ = _wall_scene(num_points=200, seed=7)
    head.eval()
    keep = test_batch.batch_index == 0
    points = test_batch.points[keep, :3]
    ranges = torch.linalg.vector_norm(points, dim=1)
    dirs = points / ranges[:, None]
    with torch.no_grad():
        bundle = RayBundle.from_rays(torch.zeros_like(points), dirs, 0)
        out = head.render(head.build_volume(_seg_out(coords, feats)), bundle, far=ranges + 5.0)
    error = (out.depth / out.opacity.clamp_min(1e-6) - ranges).abs()
    assert float(out.opacity.mean()) > 0.9
    assert float(error.median()) < 2 * VOXEL and not math.isnan(float(error.max()))
    accuracy = (out.probs.argmax(1) == test_batch.labels[keep]).float().mean()
    assert float(accuracy) > 0.9


def test_lidar_rays_use_lidar_samples_per_ray_plus_the_surface_band():
    batch, coords = _wall_scene(num_points=100)
    cfg = NerfConfig(
        lidar_rays_per_scan=16, samples_per_ray=200, lidar_samples_per_ray=24, lidar_surface_samples=6
    )
    head = NerfHead(cfg, feature_dim=8, num_classes=3).train()
    seen = []
    render_grid = head.render_grid

    def spy(*args, **kwargs):
        out = render_grid(*args, **kwargs)
        seen.append(out.t.shape)
        return out

    head.render_grid = spy
    feats = 0.1 * torch.randn(coords.shape[0], 8, generator=torch.Generator().manual_seed(0))
    lidar_ray_losses(head, _seg_out(coords, feats), batch, torch.Generator().manual_seed(1))
    # 24 stratified bins (25 edges) merged with the band's 6 bins (7 edges): 32 edges, 31 bins; never 200.
    assert seen == [(32, 24 + 6 + 1)]


def test_free_space_loss_is_the_weight_in_front_of_the_return():
    """An opaque wall at 8 m: LiDAR returns on it carry no weight in front of them (free ~ 0); returns moved
    to 12 m (the LiDAR saw through the wall) carry all of it in front (free ~ 1); lambda_free weighs it."""
    batch, coords = _wall_scene(num_points=200)
    batch.labels = None
    wall = batch.points[:, 0] > 7.9
    feats = torch.zeros(coords.shape[0], 8)
    cfg = NerfConfig(lidar_rays_per_scan=64, lidar_samples_per_ray=96, lambda_free=0.5, lambda_sem=0.0)
    head = NerfHead(cfg, feature_dim=8, num_classes=3).eval()
    torch.nn.init.zeros_(head.field.density.weight)
    torch.nn.init.constant_(head.field.density.bias, 50.0)  # every occupied sample is opaque
    on_wall = PointBatch(batch.points[wall], batch.batch_index[wall], None, batch.sample_ids)
    behind = batch.points[wall].clone()
    behind[:, :3] *= 12.0 / 8.0
    seen_through = PointBatch(behind, batch.batch_index[wall], None, batch.sample_ids)
    near = lidar_ray_losses(head, _seg_out(coords, feats), on_wall)
    far = lidar_ray_losses(head, _seg_out(coords, feats), seen_through)
    assert float(near["free"].detach()) < 0.05 and float(far["free"].detach()) > 0.95
    expected = 0.1 * far["depth"] + 0.1 * far["opacity"] + 0.5 * far["free"]
    assert torch.allclose(far["total"], expected)
