"""The head end to end on analytic scenes: an opaque slab, empty space, gradients, bf16, importance pass."""

from __future__ import annotations

import math

import torch
from torch import nn

from nerfseg.geometry.rays import RayBundle
from nerfseg.models.nerf import NerfConfig, NerfHead
from nerfseg.models.nerf.field import VoxelGrid

VOXEL = 0.2
SLAB_FIRST = 50  # voxels i = 50, 51, 52 cover x in [10.0, 10.6) m
NUM_CLASSES = 4


class SlabField(nn.Module):
    """Analytic field: density 1000 / m times the interpolated occupancy channel; logits from the class
    channels normalised by the occupancy (so the class is sharp even where occupancy is still small)."""

    def forward(self, features, positions):
        occupancy = features[:, :1]
        return 1000.0 * occupancy[:, 0].float(), 10.0 * features[:, 1:] / occupancy.clamp_min(1e-6)


def _slab(feature_dim: int = 1 + NUM_CLASSES, requires_grad: bool = False):
    i, j, k = torch.meshgrid(
        torch.arange(SLAB_FIRST, SLAB_FIRST + 3), torch.arange(-30, 30), torch.arange(-30, 30), indexing="ij"
    )
    coords = torch.stack([torch.zeros_like(i), i, j, k], dim=-1).reshape(-1, 4)
    feats = torch.zeros(coords.shape[0], feature_dim)
    feats[:, 0] = 1.0
    feats[:, 1 + 2] = 1.0  # class 2
    return coords, feats.requires_grad_(requires_grad)


def _rays_towards_slab(num_rays: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(
        torch.cat([torch.ones(num_rays, 1), (torch.rand(num_rays, 2, generator=gen) - 0.5) * 0.6], dim=1),
        dim=1,
    )
    origins = torch.zeros(num_rays, 3)
    distance = SLAB_FIRST * VOXEL / dirs[:, 0]  # where the ray meets the slab's front face x = 10 m
    return origins, dirs, distance


def _analytic_head(**overrides) -> NerfHead:
    raw = {"volume_stride": 1, "volume_dilation": 0}  # the analytic grids are the render volume
    cfg = NerfConfig(**{"near": 0.5, "far": 30.0, "samples_per_ray": 256, **raw, **overrides})
    head = NerfHead(cfg, feature_dim=1 + NUM_CLASSES, num_classes=NUM_CLASSES)
    head.field = SlabField()
    return head.eval()


def test_opaque_slab_renders_its_distance_within_a_voxel():
    coords, feats = _slab()
    origins, dirs, distance = _rays_towards_slab(64)
    head = _analytic_head()
    out = head.render(VoxelGrid(coords, feats, VOXEL), RayBundle.from_rays(origins, dirs, 0))
    assert (out.opacity > 0.999).all()
    assert float((out.depth - distance).abs().max()) < VOXEL
    assert (out.probs.argmax(1) == 2).all() and (out.probs[:, 2] > 0.99).all()
    assert out.num_evaluated < out.num_samples / 10  # empty space skipped before the MLP
    # Same with random stratification in training mode.
    head.train()
    bundle = RayBundle.from_rays(origins, dirs, 0)
    out = head.render(VoxelGrid(coords, feats, VOXEL), bundle, generator=torch.Generator().manual_seed(5))
    assert float((out.depth - distance).abs().max()) < VOXEL and (out.opacity > 0.999).all()


def test_importance_pass_concentrates_samples_at_the_surface():
    coords, feats = _slab()
    origins, dirs, distance = _rays_towards_slab(32, seed=1)
    bundle = RayBundle.from_rays(origins, dirs, 0)
    coarse = _analytic_head(samples_per_ray=48).render(VoxelGrid(coords, feats, VOXEL), bundle)
    head = _analytic_head(samples_per_ray=48, importance_samples=64)
    fine = head.render(VoxelGrid(coords, feats, VOXEL), RayBundle.from_rays(origins, dirs, 0))
    assert fine.t.shape == (32, 48 + 1 + 64 - 1)
    near_fine = ((fine.t - distance[:, None]).abs() < 3 * VOXEL).sum(1)
    near_coarse = ((coarse.t - distance[:, None]).abs() < 3 * VOXEL).sum(1)
    assert (near_fine >= near_coarse + 16).all()
    fine_error = (fine.depth - distance).abs()
    assert float(fine_error.max()) < 2 * VOXEL  # pdf draws refine only bins the coarse pass gave weight
    assert float(fine_error.mean()) < float((coarse.depth - distance).abs().mean())


def test_empty_space_renders_zero_opacity_without_nan():
    coords, feats = _slab()
    origins, dirs, _ = _rays_towards_slab(16)
    head = _analytic_head(far=5000.0)  # very long rays pointing away from the slab
    out = head.render(VoxelGrid(coords, feats, VOXEL), RayBundle.from_rays(origins, -dirs, 0))
    assert (out.opacity == 0).all() and (out.depth == 0).all() and (out.probs == 0).all()
    assert out.num_evaluated == 0
    # A scan with no voxels at all (ray_batch 1 while the slab is scan 0).
    out = head.render(VoxelGrid(coords, feats, VOXEL), RayBundle.from_rays(origins, dirs, 1))
    assert (out.opacity == 0).all() and torch.isfinite(out.probs).all()


def test_gradients_reach_voxel_features_through_the_mlp():
    coords, feats = _slab(feature_dim=8, requires_grad=True)
    torch.manual_seed(0)
    head = NerfHead(
        NerfConfig(near=0.5, far=30.0, samples_per_ray=256, volume_stride=1, volume_dilation=0),
        feature_dim=8,
        num_classes=NUM_CLASSES,
    )
    origins, dirs, _ = _rays_towards_slab(64)
    out = head.render(VoxelGrid(coords, feats, VOXEL), RayBundle.from_rays(origins, dirs, 0))
    assert out.num_evaluated > 0
    (out.depth.sum() + out.probs[:, 1].sum()).backward()
    grad_norm = feats.grad.abs().sum(1)
    front = coords[:, 1] == SLAB_FIRST
    assert float(grad_norm[front].max()) > 0
    assert float(grad_norm[coords[:, 2].abs() >= 25].max()) == 0  # voxels no ray comes near
    assert all(p.grad is not None for p in head.parameters())


def test_bf16_autocast_keeps_rendering_finite():
    coords, feats = _slab(feature_dim=8)
    torch.manual_seed(0)
    head = NerfHead(
        NerfConfig(near=0.5, far=30.0, samples_per_ray=128, volume_stride=1, volume_dilation=0),
        feature_dim=8,
        num_classes=NUM_CLASSES,
    )
    origins, dirs, _ = _rays_towards_slab(16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head.render(VoxelGrid(coords, feats, VOXEL), RayBundle.from_rays(origins, dirs, 0))
    for value in (out.probs, out.depth, out.opacity, out.weights):
        assert value.dtype == torch.float32 and torch.isfinite(value).all()
    assert float(out.weights.detach().sum(1).max()) <= 1.0 + 1e-6


def test_render_chunked_equals_one_pass():
    coords, feats = _slab()
    origins, dirs, _ = _rays_towards_slab(50)
    head = _analytic_head()
    batch = torch.zeros(50, dtype=torch.int64)
    whole = head.render(VoxelGrid(coords, feats, VOXEL), RayBundle.from_rays(origins, dirs, batch))
    bundle = RayBundle.from_rays(origins, dirs, batch)
    chunked = head.render_chunked(VoxelGrid(coords, feats, VOXEL), bundle, chunk_rays=7)
    assert torch.allclose(whole.depth, chunked.depth) and torch.allclose(whole.probs, chunked.probs)
    assert chunked.num_samples == whole.num_samples and math.isclose(
        chunked.num_evaluated, whole.num_evaluated
    )


def test_invalid_config_names_the_key():
    import pytest

    from nerfseg.errors import ConfigError

    with pytest.raises(ConfigError, match="model.nerf.near"):
        NerfHead(NerfConfig(near=5.0, far=1.0), feature_dim=4, num_classes=2)
    with pytest.raises(ConfigError, match="model.nerf.samples_per_ray"):
        NerfHead(NerfConfig(samples_per_ray=0), feature_dim=4, num_classes=2)


def test_early_ray_termination_matches_the_full_render():
    coords, feats = _slab()
    faint = feats.clone()
    faint[coords[:, 2] < 0, 0] *= 1e-3  # half the slab semi-transparent: those rays never terminate early
    origins, dirs, _ = _rays_towards_slab(60, seed=3)
    dirs = torch.cat([dirs, -dirs[:10]])  # plus rays into empty space
    origins = torch.cat([origins, origins[:10]])
    bundle = RayBundle.from_rays(origins, dirs, 0)
    for features in (feats, faint):
        grid = VoxelGrid(coords, features, VOXEL)
        full = _analytic_head(early_stop_transmittance=0.0).render_chunked(grid, bundle, chunk_rays=32)
        early = _analytic_head(early_stop_transmittance=1e-3).render_chunked(grid, bundle, chunk_rays=32)
        assert torch.allclose(early.opacity, full.opacity, atol=1e-3, rtol=0)
        assert torch.allclose(early.depth, full.depth, atol=1e-3, rtol=0)
        assert torch.allclose(early.probs, full.probs, atol=1e-3, rtol=0)
        assert early.num_samples == full.num_samples
    # A thick block (x from 10 m to 16 m): the samples behind its front face are never evaluated.
    i, j, k = torch.meshgrid(
        torch.arange(SLAB_FIRST, SLAB_FIRST + 30), torch.arange(-30, 30), torch.arange(-30, 30), indexing="ij"
    )
    block = torch.stack([torch.zeros_like(i), i, j, k], dim=-1).reshape(-1, 4)
    block_feats = torch.zeros(block.shape[0], 1 + NUM_CLASSES)
    block_feats[:, 0] = block_feats[:, 1 + 2] = 1.0
    grid = VoxelGrid(block, block_feats, VOXEL)
    full = _analytic_head(early_stop_transmittance=0.0).render_chunked(grid, bundle)
    early = _analytic_head().render_chunked(grid, bundle)
    assert torch.allclose(early.depth, full.depth, atol=1e-3, rtol=0)
    assert torch.allclose(early.probs, full.probs, atol=1e-3, rtol=0)
    assert early.num_evaluated < 0.25 * full.num_evaluated, (early.num_evaluated, full.num_evaluated)


def test_clipped_render_matches_the_full_render_with_fewer_samples():
    from nerfseg.models.nerf.ray_bounds import clip_to_boxes, volume_bounds

    coords, feats = _slab()
    faint = feats.clone()
    faint[coords[:, 2] < 0, 0] *= 1e-3  # half the slab semi-transparent
    origins, dirs, _ = _rays_towards_slab(60, seed=4)
    dirs = torch.cat([dirs, -dirs[:10]])  # plus rays away from the slab: they miss its box
    origins = torch.cat([origins, origins[:10]])
    bundle = RayBundle.from_rays(origins, dirs, 0)
    lo, hi = volume_bounds(coords, VOXEL, 1)
    assert torch.allclose(lo[0], torch.tensor([SLAB_FIRST - 0.5, -30.5, -30.5]) * VOXEL)
    assert torch.allclose(hi[0], torch.tensor([SLAB_FIRST + 3.5, 30.5, 30.5]) * VOXEL)
    near, far, hit = clip_to_boxes(origins, dirs, bundle.scan, lo, hi, 0.5, 30.0)
    assert hit[:60].all() and not hit[60:].any()
    assert ((near[:60] - (SLAB_FIRST - 0.5) * VOXEL / dirs[:60, 0]).abs() < 1e-4).all()
    for features in (feats, faint):
        grid = VoxelGrid(coords, features, VOXEL)
        head = _analytic_head(early_stop_transmittance=0.0)
        full = head.render_chunked(grid, bundle)
        clipped = head.render_clipped(grid, bundle)
        assert torch.allclose(clipped.opacity, full.opacity, atol=0.02, rtol=0)
        assert torch.allclose(clipped.probs, full.probs, atol=0.02, rtol=0)
        assert float((clipped.depth - full.depth).abs().max()) < 30.0 / 256
        assert (clipped.opacity[60:] == 0).all()
        assert clipped.num_samples < full.num_samples / 10


def test_detached_field_features_keep_depth_gradients_out_of_the_backbone():
    """detach_field_features: the depth (geometry) gradient stops at the field, while the semantics still
    reach the voxel features through the point classifier."""
    torch.manual_seed(0)
    origins, dirs, _ = _rays_towards_slab(64)
    grads = {}
    for detach in (False, True):
        coords, feats = _slab(feature_dim=8, requires_grad=True)
        torch.manual_seed(0)
        head = NerfHead(
            NerfConfig(near=0.5, far=30.0, samples_per_ray=256, volume_stride=1, volume_dilation=0,
                       detach_field_features=detach),
            feature_dim=8,
            num_classes=NUM_CLASSES,
        )
        head.use_point_classifier(nn.Linear(8, NUM_CLASSES))
        out = head.render(VoxelGrid(coords, feats, VOXEL), RayBundle.from_rays(origins, dirs, 0))
        depth_grad = torch.autograd.grad(out.depth.sum(), feats, retain_graph=True, allow_unused=True)[0]
        sem_grad = torch.autograd.grad(out.probs[:, 1].sum(), feats, allow_unused=True)[0]
        grads[detach] = (depth_grad, sem_grad)
    assert float(grads[False][0].abs().sum()) > 0
    assert grads[True][0] is None or float(grads[True][0].abs().sum()) == 0
    assert float(grads[True][1].abs().sum()) > 0
