"""Stratified, band and importance bins along rays."""

from __future__ import annotations

import numpy as np
import torch

from nerfseg.models.nerf.sampler import band_edges, bin_midpoints, importance_edges, stratified_edges


def test_stratified_edges_even_and_jittered():
    near = torch.tensor([1.0, 2.0])
    far = torch.tensor([5.0, 10.0])
    even = stratified_edges(near, far, 4, perturb=False)
    np.testing.assert_allclose(even.numpy(), [[1, 2, 3, 4, 5], [2, 4, 6, 8, 10]])
    t, deltas = bin_midpoints(even)
    np.testing.assert_allclose(t[0].numpy(), [1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(deltas.sum(1).numpy(), (far - near).numpy())
    gen = torch.Generator().manual_seed(0)
    jittered = stratified_edges(near.repeat(500), far.repeat(500), 4, perturb=True, generator=gen)
    assert (jittered[:, 1:] >= jittered[:, :-1]).all()
    np.testing.assert_allclose(jittered[:, 0].numpy(), near.repeat(500).numpy())
    np.testing.assert_allclose(jittered[:, -1].numpy(), far.repeat(500).numpy())
    width = ((far - near) / 4).repeat(500).unsqueeze(1)
    offset = (jittered - even.repeat(500, 1)).abs()
    assert (offset <= 0.5 * width + 1e-6).all() and float(offset.max()) > 0.3 * float(width.min())
    again = stratified_edges(near.repeat(500), far.repeat(500), 4, True, torch.Generator().manual_seed(0))
    assert torch.equal(jittered, again)


def test_band_edges_stay_inside_band_and_ray():
    centre = torch.tensor([10.0, 0.7, 59.9])
    near = torch.full((3,), 0.5)
    far = torch.full((3,), 60.0)
    edges = band_edges(centre, 0.5, 8, near, far, perturb=True, generator=torch.Generator().manual_seed(1))
    lo = torch.maximum(centre - 0.5, near).unsqueeze(1)
    hi = torch.minimum(centre + 0.5, far).unsqueeze(1)
    assert edges.shape == (3, 9)
    assert ((edges >= lo - 1e-6) & (edges <= hi + 1e-6)).all()


def test_importance_edges_concentrate_on_heavy_bin():
    edges = stratified_edges(torch.zeros(2), torch.full((2,), 10.0), 10, perturb=False)
    weights = torch.zeros(2, 10)
    weights[0, 3] = 1.0  # all the mass of ray 0 in bin [3, 4)
    merged = importance_edges(edges, weights, 20, perturb=False)
    assert merged.shape == (2, 31)
    assert (merged[:, 1:] >= merged[:, :-1]).all()
    for value in edges[0]:  # original edges are kept
        assert bool((merged[0] == value).any())
    new = merged[0][~torch.isin(merged[0], edges[0])]
    assert new.numel() >= 18 and bool(((new > 3.0) & (new < 4.0)).all())
    # Ray 1 has no weight: its draws spread over the whole ray.
    drawn = merged[1][~torch.isin(merged[1], edges[1])]
    assert float(drawn.min()) < 1.0 and float(drawn.max()) > 9.0
    random_draws = importance_edges(
        edges, weights, 200, perturb=True, generator=torch.Generator().manual_seed(3)
    )
    extra = random_draws[0][~torch.isin(random_draws[0], edges[0])]
    assert float(((extra > 3.0) & (extra < 4.0)).float().mean()) > 0.95
