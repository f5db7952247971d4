"""Samples along rays, as bins: each ray's [near, far] is cut into contiguous bins (edges ``e_0..e_N``);
sample i sits at the bin midpoint ``t_i = (e_i + e_{i+1}) / 2`` and has length ``delta_i = e_{i+1} - e_i``
(density is piecewise constant per bin, so weights of merged bin sets stay consistent).

Passes: stratified (uniform bins, interior edges jittered in training), importance (inverse-CDF draws from a
previous pass's weights, merged with its edges), and a band of bins around a known depth (LiDAR returns).
The empty-space test (no occupied voxel among a sample's 8 neighbours) is ``VoxelGrid.occupied``.
"""

from __future__ import annotations

import torch


def uniform01(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Uniform [0, 1) float32 on ``device`` drawn from ``generator`` (on whatever device it lives)."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def stratified_edges(
    near: torch.Tensor,
    far: torch.Tensor,
    num_bins: int,
    perturb: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bin edges of ``num_bins`` equal bins in [near, far] per ray, interior edges optionally jittered.

    Args:
        near, far: (R,) metres along each ray (far > near).
        num_bins: N >= 1.
        perturb: jitter each interior edge uniformly within +-half a bin (edges stay sorted, the first is
            ``near`` and the last ``far``); False gives the evenly spaced edges.
        generator: random source for the jitter.

    Returns:
        (R, N + 1) float32 sorted edges.
    """
    steps = torch.arange(num_bins + 1, device=near.device, dtype=torch.float32).expand(near.shape[0], -1)
    if perturb and num_bins > 1:
        jitter = uniform01((near.shape[0], num_bins - 1), generator, near.device) - 0.5
        steps = torch.cat([steps[:, :1], steps[:, 1:-1] + jitter, steps[:, -1:]], dim=1)
    fraction = steps / num_bins
    near = near.float().unsqueeze(1)
    far = far.float().unsqueeze(1)
    return near + (far - near) * fraction


def band_edges(
    center: torch.Tensor,
    half_width: float,
    num_bins: int,
    near: torch.Tensor,
    far: torch.Tensor,
    perturb: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Stratified edges of ``num_bins`` bins in ``[center - half_width, center + half_width]`` clipped to
    [near, far]: extra samples around a known surface (the LiDAR return).

    Shapes: center, near, far (R,) -> (R, num_bins + 1) float32.
    """
    lo = torch.maximum(center.float() - half_width, near.float())
    hi = torch.minimum(center.float() + half_width, far.float())
    return stratified_edges(lo, torch.maximum(hi, lo), num_bins, perturb, generator)


def importance_edges(
    edges: torch.Tensor,
    weights: torch.Tensor,
    num_samples: int,
    perturb: bool,
    generator: torch.Generator | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Draw ``num_samples`` positions from the piecewise-constant pdf of ``weights`` over the bins of
    ``edges`` (inverse CDF) and return them merged with the original edges.

    Args:
        edges: (R, N + 1) sorted; weights: (R, N) >= 0 (detached is fine; no gradient flows through).
        num_samples: K new edges per ray; perturb: random draws (else evenly spaced quantiles).

    Returns:
        (R, N + 1 + K) sorted edges. A ray with all-zero weights gets uniform draws.
    """
    weights = weights.detach().float() + eps  # keeps the pdf defined on empty rays
    pdf = weights / weights.sum(dim=1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=1)], dim=1).clamp_(max=1.0)
    if perturb:
        u = uniform01((edges.shape[0], num_samples), generator, edges.device)
    else:
        u = (torch.arange(num_samples, device=edges.device, dtype=torch.float32) + 0.5) / num_samples
        u = u.expand(edges.shape[0], -1)
    u = u.contiguous()
    index = torch.searchsorted(cdf.contiguous(), u, right=True).clamp_(1, cdf.shape[1] - 1)
    cdf_lo, cdf_hi = cdf.gather(1, index - 1), cdf.gather(1, index)
    edge_lo, edge_hi = edges.gather(1, index - 1), edges.gather(1, index)
    fraction = ((u - cdf_lo) / (cdf_hi - cdf_lo).clamp_min(1e-12)).clamp_(0.0, 1.0)
    drawn = edge_lo + fraction * (edge_hi - edge_lo)
    return merge_edges(edges, drawn)


def merge_edges(*edge_sets: torch.Tensor) -> torch.Tensor:
    """Union of several (R, K_j) sorted edge sets of the same rays -> (R, sum K_j) sorted."""
    return torch.sort(torch.cat(edge_sets, dim=1), dim=1).values


def bin_midpoints(edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, N + 1) edges -> sample distances t (R, N) (bin midpoints) and bin lengths delta (R, N), metres."""
    return 0.5 * (edges[:, 1:] + edges[:, :-1]), edges[:, 1:] - edges[:, :-1]
