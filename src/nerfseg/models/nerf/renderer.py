"""Volume rendering (DESIGN.md step 5), in float32 whatever the field's dtype (bf16 autocast safe):

    alpha_i = 1 - exp(-sigma_i delta_i),  T_i = prod_{j<i} (1 - alpha_j) = exp(-sum_{j<i} sigma_j delta_j),
    w_i = T_i alpha_i,  P(r) = sum_i w_i softmax(s_i) / (sum_i w_i + eps),  D(r) = sum_i w_i t_i,
    A(r) = sum_i w_i.

Transmittance is computed in log space (exclusive cumulative sum of sigma * delta), so zero density, huge
densities and very long rays give finite weights with ``sum_i w_i = 1 - exp(-sum_i sigma_i delta_i) <= 1``.
"""

from __future__ import annotations

import torch

MAX_OPTICAL_DEPTH = 1e4
"""sigma * delta is clamped to this (exp(-1e4) is 0 in float32 already); keeps inf * 0 from making NaN."""


def render_weights(sigma: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Per-sample rendering weights.

    Args:
        sigma: (R, N) densities >= 0 per metre (any float dtype).
        deltas: (R, N) bin lengths in metres (>= 0).

    Returns:
        (R, N) float32 weights ``w_i = T_i alpha_i``; each row sums to at most 1.
    """
    optical_depth = (sigma.float() * deltas.float()).nan_to_num(nan=0.0).clamp(0.0, MAX_OPTICAL_DEPTH)
    # Exclusive sum over j < i (cumsum - tau_i would cancel catastrophically after a huge tau).
    before = torch.cumsum(
        torch.cat([torch.zeros_like(optical_depth[:, :1]), optical_depth[:, :-1]], dim=1), dim=1
    )
    transmittance = torch.exp(-before)  # T_i
    alpha = -torch.expm1(-optical_depth)
    return transmittance * alpha


def render_depth_opacity(weights: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth ``D = sum_i w_i t_i`` (metres, not normalised by opacity) and opacity ``A = sum_i w_i``.

    Shapes: weights (R, N), t (R, N) -> (R,), (R,) float32.
    """
    return (weights * t.float()).sum(dim=1), weights.sum(dim=1)


def render_class_distribution(
    sample_weights: torch.Tensor,
    sample_logits: torch.Tensor,
    ray_index: torch.Tensor,
    num_rays: int,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Rendered class distribution from the samples that carry density (sparse form of step 5).

    Args:
        sample_weights: (S,) weights w_i of the evaluated samples.
        sample_logits: (S, C) semantic logits s_i.
        ray_index: (S,) int64 ray of each sample in [0, num_rays).
        num_rays: R; eps: the epsilon of the normalisation.

    Returns:
        (R, C) float32 ``P(r) = sum_i w_i softmax(s_i) / (sum_i w_i + eps)`` (all zeros for a ray with no
        weight; rows sum to A / (A + eps) < 1).
    """
    probs = torch.softmax(sample_logits.float(), dim=1)
    weighted = sample_weights.float().unsqueeze(1) * probs
    numerator = weighted.new_zeros((num_rays, probs.shape[1])).index_add_(0, ray_index, weighted)
    opacity = sample_weights.float().new_zeros(num_rays).index_add_(0, ray_index, sample_weights.float())
    return numerator / (opacity.unsqueeze(1) + eps)
