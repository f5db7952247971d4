"""Volume rendering against the product formula of DESIGN.md step 5 and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.models.nerf.renderer import (
    render_class_distribution,
    render_depth_opacity,
    render_weights,
)


def _reference_weights(sigma: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """w_i = T_i alpha_i with T_i the explicit product of (1 - alpha_j), in float64."""
    alpha = 1.0 - torch.exp(-sigma.double() * deltas.double())
    survive = torch.cumprod(1.0 - alpha, dim=1)
    transmittance = torch.cat([torch.ones_like(survive[:, :1]), survive[:, :-1]], dim=1)
    return transmittance * alpha


def test_hand_computed_two_samples():
    sigma = torch.tensor([[math.log(2.0), math.log(2.0), 0.0]])
    deltas = torch.tensor([[1.0, 1.0, 1.0]])
    weights = render_weights(sigma, deltas)
    np.testing.assert_allclose(weights.numpy(), [[0.5, 0.25, 0.0]], atol=1e-7)
    depth, opacity = render_depth_opacity(weights, torch.tensor([[2.0, 4.0, 6.0]]))
    np.testing.assert_allclose(depth.numpy(), [0.5 * 2 + 0.25 * 4], atol=1e-6)
    np.testing.assert_allclose(opacity.numpy(), [0.75], atol=1e-7)


def test_matches_product_formula():
    gen = torch.Generator().manual_seed(0)
    sigma = torch.rand(16, 40, generator=gen) * 3.0
    sigma[sigma < 1.0] = 0.0
    deltas = torch.rand(16, 40, generator=gen) * 0.5
    np.testing.assert_allclose(
        render_weights(sigma, deltas).numpy(), _reference_weights(sigma, deltas).numpy(), atol=2e-6
    )


@settings(max_examples=60, deadline=None)
@given(
    sigma=st.lists(
        st.one_of(st.just(0.0), st.floats(0, 1e6), st.just(1e30), st.just(float("inf"))),
        min_size=1,
        max_size=12,
    ),
    delta=st.floats(0, 1e5),
)
def test_weights_are_finite_nonnegative_and_sum_to_at_most_one(sigma, delta):
    sigma_t = torch.tensor([sigma], dtype=torch.float32)
    weights = render_weights(sigma_t, torch.full_like(sigma_t, delta))
    assert torch.isfinite(weights).all()
    assert (weights >= 0).all()
    assert float(weights.sum()) <= 1.0 + 1e-6


def test_zero_density_renders_nothing_and_no_nan():
    sigma = torch.zeros(3, 50)
    deltas = torch.full((3, 50), 1e4)  # very long rays
    weights = render_weights(sigma, deltas)
    depth, opacity = render_depth_opacity(weights, torch.cumsum(deltas, dim=1))
    assert (weights == 0).all() and (depth == 0).all() and (opacity == 0).all()
    probs = render_class_distribution(torch.zeros(0), torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 3)
    assert probs.shape == (3, 4) and (probs == 0).all()


def test_bf16_density_is_rendered_in_float32():
    gen = torch.Generator().manual_seed(1)
    sigma = (torch.rand(4, 300, generator=gen) * 50).bfloat16()
    deltas = torch.full((4, 300), 0.2).bfloat16()
    weights = render_weights(sigma, deltas)
    assert weights.dtype == torch.float32
    reference = _reference_weights(sigma.float(), deltas.float())
    np.testing.assert_allclose(weights.numpy(), reference.numpy(), atol=1e-5)
    assert float(weights.sum(dim=1).max()) <= 1.0 + 1e-6


def test_class_distribution_matches_dense_formula():
    gen = torch.Generator().manual_seed(2)
    num_rays, num_samples, num_classes = 5, 7, 3
    weights = _reference_weights(
        torch.rand(num_rays, num_samples, generator=gen), torch.ones(num_rays, num_samples)
    )
    logits = torch.randn(num_rays, num_samples, num_classes, generator=gen)
    # Sparse form: drop every third sample (zero weight there in the dense form too).
    keep = torch.arange(num_rays * num_samples) % 3 != 0
    weights.view(-1)[~keep] = 0.0
    dense = (weights.unsqueeze(2) * torch.softmax(logits.double(), dim=2)).sum(1) / (
        weights.sum(1, keepdim=True) + 1e-6
    )
    flat = torch.nonzero(keep).squeeze(1)
    probs = render_class_distribution(
        weights.view(-1)[flat].float(), logits.view(-1, num_classes)[flat], flat // num_samples, num_rays
    )
    np.testing.assert_allclose(probs.numpy(), dense.numpy(), atol=1e-6)
    assert float(probs.sum(1).max()) < 1.0


def test_huge_density_after_small_one_keeps_sum_at_most_one():
    """Regression (found by hypothesis): T_i from cumsum - tau_i lost precision after a clamped huge tau."""
    weights = render_weights(torch.tensor([[0.38, 1e30]]), torch.ones(1, 2))
    np.testing.assert_allclose(weights.numpy(), [[1 - math.exp(-0.38), math.exp(-0.38)]], rtol=1e-6)
    assert float(weights.sum()) <= 1.0 + 1e-6
