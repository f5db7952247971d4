"""The ramp-up of the pseudo-label terms: its shape, and that a step scales exactly those terms by it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_methods import _cfg, _one_step

from nerfseg.ssl.config import Method
from nerfseg.ssl.ramp import pseudo_label_ramp

PSEUDO_LABEL_TERMS = {"consistency", "lasermix", "projection", "render"}


def test_ramp_ends_and_disabled():
    assert pseudo_label_ramp(0, 100) == pytest.approx(math.exp(-5.0))
    assert pseudo_label_ramp(50, 100) == pytest.approx(math.exp(-1.25))
    assert pseudo_label_ramp(100, 100) == 1.0
    assert pseudo_label_ramp(10_000, 100) == 1.0
    assert pseudo_label_ramp(0, 0) == 1.0 and pseudo_label_ramp(7, -1) == 1.0


@given(st.integers(0, 2_000), st.integers(0, 2_000), st.integers(1, 1_000))
def test_ramp_is_monotone_and_bounded(a, b, rampup):
    lo, hi = sorted((a, b))
    assert 0.0 < pseudo_label_ramp(lo, rampup) <= pseudo_label_ramp(hi, rampup) <= 1.0


@pytest.mark.parametrize("method", [Method.NERF_LASERMIX, Method.PROJECTION], ids=lambda m: m.value)
def test_a_step_scales_exactly_the_pseudo_label_terms(sim_ssl_root, method, one_thread):
    full, _, _ = _one_step(_cfg(sim_ssl_root, method))
    ramped, _, _ = _one_step(_cfg(sim_ssl_root, method, extra=("ssl.rampup_steps=4",)))
    weight = pseudo_label_ramp(1, 4)
    assert ramped["pseudo_ramp"] == pytest.approx(weight) and full["pseudo_ramp"] == 1.0
    terms = {k for k in full if k in PSEUDO_LABEL_TERMS}
    assert terms, full.keys()
    for term in terms:
        assert full[term] != 0.0
        assert ramped[term] == pytest.approx(weight * full[term], rel=1e-5), term
    for term in ("supervised", "geometry_labeled", "geometry_unlabeled"):
        if term in full:
            assert ramped[term] == pytest.approx(full[term], rel=1e-6), term
