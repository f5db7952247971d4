"""Confidence sampler statistics with seeded generators (DESIGN.md step 9)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.geometry.rays import read_at_pixels
from nerfseg.ssl.ray_sampler import (
    RaySamplerConfig,
    pixel_flat_index,
    ray_weights,
    sample_rays,
    sample_rays_with,
)


def _draw_many(labels, conf, budget, draws=20, **kw):
    g = torch.Generator().manual_seed(0)
    out = [sample_rays(labels, conf, budget, g, **kw) for _ in range(draws)]
    return torch.cat([p for p, _ in out]), torch.cat([lab for _, lab in out])


def test_class_balance_inverse_frequency():
    labels = torch.zeros(100, 100, dtype=torch.int64)
    labels[:10] = 1  # class 1 is 10 % of the pixels
    labels[10:12] = IGNORE_INDEX
    conf = torch.ones(100, 100)
    _, drawn = _draw_many(labels, conf, budget=200)
    share = (drawn == 1).float().mean().item()
    assert abs(share - 0.5) < 0.05, share  # balanced: each class ~ half the budget
    _, drawn = _draw_many(labels, conf, budget=200, class_balanced=False)
    share = (drawn == 1).float().mean().item()
    assert abs(share - 1000 / 9800) < 0.03, share  # unbalanced: proportional to pixel count


def test_confidence_weighting_within_a_class():
    labels = torch.zeros(100, 100, dtype=torch.int64)
    conf = torch.full((100, 100), 0.3)
    conf[:50] = 0.9  # top half three times as confident
    pixels, _ = _draw_many(labels, conf, budget=100)
    share_top = (pixels[:, 1] < 50).float().mean().item()
    assert abs(share_top - 0.75) < 0.04, share_top
    pixels, _ = _draw_many(labels, conf, budget=100, confidence_power=0.0)
    assert abs((pixels[:, 1] < 50).float().mean().item() - 0.5) < 0.04


def test_never_draws_ignored_pixels_and_labels_match():
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 4, (30, 40), generator=g)
    labels[torch.rand(30, 40, generator=g) < 0.7] = IGNORE_INDEX
    conf = torch.rand(30, 40, generator=g)
    pixels, drawn = sample_rays(labels, conf, 50, g)
    assert pixels.shape == (50, 2) and pixels.dtype == torch.int64
    assert torch.equal(labels[pixels[:, 1], pixels[:, 0]], drawn)  # (col, row)
    assert torch.equal(read_at_pixels(labels, pixels), drawn)
    assert (drawn != IGNORE_INDEX).all()
    flat = pixel_flat_index(pixels, 40)
    assert torch.equal(labels.reshape(-1)[flat], drawn)
    assert flat.unique().numel() == 50  # without replacement


def test_budget_larger_than_available():
    labels = torch.full((8, 8), IGNORE_INDEX, dtype=torch.int64)
    labels[2, 3], labels[5, 1], labels[7, 7] = 0, 1, 1
    conf = torch.full((8, 8), 0.5)
    g = torch.Generator().manual_seed(1)
    pixels, drawn = sample_rays(labels, conf, 10, g)
    assert sorted(map(tuple, pixels.tolist())) == [(1, 5), (3, 2), (7, 7)]
    assert sorted(drawn.tolist()) == [0, 1, 1]
    pixels, drawn = sample_rays(labels, conf, 10, g, fill_budget=True)
    assert pixels.shape == (10, 2)
    assert set(map(tuple, pixels.tolist())) == {(3, 2), (1, 5), (7, 7)}


def test_nothing_labeled_gives_no_rays():
    labels = torch.full((4, 4), IGNORE_INDEX, dtype=torch.int64)
    pixels, drawn = sample_rays(labels, torch.ones(4, 4), 5)
    assert pixels.shape == (0, 2) and drawn.shape == (0,)


def test_seeded_draws_repeat_and_config_wrapper():
    labels = torch.randint(0, 3, (20, 20), generator=torch.Generator().manual_seed(5))
    conf = torch.rand(20, 20, generator=torch.Generator().manual_seed(6))
    cfg = RaySamplerConfig(budget=32)
    a = sample_rays_with(cfg, labels, conf, torch.Generator().manual_seed(9))
    b = sample_rays(labels, conf, 32, torch.Generator().manual_seed(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_weights_hand_computed():
    labels = torch.tensor([0, 0, 0, 1, IGNORE_INDEX])
    conf = torch.tensor([0.3, 0.6, 0.9, 0.5, 1.0])
    w = ray_weights(labels, conf)
    assert torch.allclose(w, torch.tensor([0.1, 0.2, 0.3, 0.5, 0.0]))


@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 60), st.integers(0, 2**31 - 1),
       st.booleans(), st.booleans())
@settings(max_examples=60, deadline=None)
def test_invariants(h, w, budget, seed, balanced, fill):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (h, w), generator=g)
    labels[torch.rand(h, w, generator=g) < 0.4] = IGNORE_INDEX
    conf = torch.rand(h, w, generator=g)
    available = int((labels != IGNORE_INDEX).sum())
    pixels, drawn = sample_rays(labels, conf, budget, g, class_balanced=balanced, fill_budget=fill)
    expected = budget if (available >= budget or (fill and available > 0)) else available
    assert pixels.shape == (expected, 2) and drawn.shape == (expected,)
    if expected:
        assert (pixels[:, 1] < h).all() and (pixels[:, 0] < w).all()
        assert torch.equal(labels[pixels[:, 1], pixels[:, 0]], drawn) and (drawn != IGNORE_INDEX).all()
        flat = pixel_flat_index(pixels, w)
        assert flat.unique().numel() == min(expected, available)  # each pixel once before any refill
