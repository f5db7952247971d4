"""LaserMix partition and mixing against hand-placed points at known inclinations and a per-point
Python reference (math.atan2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.data.collate import collate_samples
from nerfseg.data.sample import IGNORE_INDEX, Sample
from nerfseg.ssl.lasermix import inclination_areas, lasermix_batch, lasermix_scans

PITCH_MIN, PITCH_MAX = -25.0, 3.0  # A = 4 -> bands of 7 degrees: [-25,-18) [-18,-11) [-11,-4) [-4,3)


def at_inclination(pitch_deg, azimuth_deg, rng=10.0, intensity=0.5):
    """(N, 4) float32 points at the given inclinations / azimuths (degrees) and range (metres)."""
    p = np.deg2rad(np.asarray(pitch_deg, dtype=np.float64))
    a = np.deg2rad(np.broadcast_to(np.asarray(azimuth_deg, dtype=np.float64), p.shape))
    r = np.broadcast_to(np.asarray(rng, dtype=np.float64), p.shape)
    xyz = np.stack([r * np.cos(p) * np.cos(a), r * np.cos(p) * np.sin(a), r * np.sin(p)], axis=1)
    return torch.from_numpy(np.concatenate([xyz, np.full((p.size, 1), intensity)], 1).astype(np.float32))


def test_inclination_areas_hand_values():
    # Band centres of A = 4, plus points below / above the range (clamped) and on the lower edges.
    pitch = [-21.5, -14.5, -7.5, -0.5, -40.0, 12.0, -17.9, -10.9, -3.9]
    pts = at_inclination(pitch, [0, 90, 180, -45, 10, 200, 30, 60, 120], rng=[5, 20, 40, 8, 3, 15, 9, 9, 9])
    areas = inclination_areas(pts[:, :3], 4, PITCH_MIN, PITCH_MAX)
    assert areas.dtype == torch.int64
    assert areas.tolist() == [0, 1, 2, 3, 0, 3, 1, 2, 3]
    # A = 2 -> bands of 14 degrees: [-25, -11) and [-11, 3).
    assert inclination_areas(pts, 2, PITCH_MIN, PITCH_MAX).tolist() == [0, 0, 1, 1, 0, 1, 0, 1, 1]
    # One count per point.
    per_point = torch.tensor([4, 2, 4, 2, 1, 1, 4, 2, 4])
    assert inclination_areas(pts, per_point, PITCH_MIN, PITCH_MAX).tolist() == [0, 0, 2, 1, 0, 0, 1, 1, 3]


def test_inclination_areas_rejects_bad_arguments():
    pts = at_inclination([0.0], [0.0])
    with pytest.raises(ValueError, match="pitch_min < pitch_max"):
        inclination_areas(pts, 4, 3.0, -25.0)
    with pytest.raises(ValueError, match="num_areas"):
        inclination_areas(pts, 0, PITCH_MIN, PITCH_MAX)
    with pytest.raises(ValueError, match="num_areas tensor"):
        inclination_areas(pts, torch.tensor([2, 2]), PITCH_MIN, PITCH_MAX)


@settings(max_examples=40, deadline=None)
@given(
    pitch=st.lists(st.floats(-35, 10), min_size=1, max_size=30),
    num_areas=st.integers(1, 7),
    yaw=st.floats(-math.pi, math.pi),
    scale=st.floats(0.2, 5.0),
)
def test_inclination_areas_ignore_azimuth_and_range(pitch, num_areas, yaw, scale):
    """Areas depend on inclination only: rotating the scan about z or scaling it changes nothing."""
    width = (PITCH_MAX - PITCH_MIN) / num_areas
    offsets = [((p - PITCH_MIN) / width) % 1.0 for p in pitch]
    pitch = [p for p, o in zip(pitch, offsets, strict=True) if 1e-4 < o < 1 - 1e-4]  # away from bin edges
    if not pitch:
        return
    pts = at_inclination(pitch, np.linspace(0, 300, len(pitch)), rng=np.linspace(2, 60, len(pitch)))
    xyz = pts[:, :3].double()
    c, s = math.cos(yaw), math.sin(yaw)
    rot = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1.0]], dtype=torch.float64)
    base = inclination_areas(xyz, num_areas, PITCH_MIN, PITCH_MAX)
    assert torch.equal(inclination_areas(xyz @ rot.T * scale, num_areas, PITCH_MIN, PITCH_MAX), base)
    expected = [min(max(math.floor((p - PITCH_MIN) / width), 0), num_areas - 1) for p in pitch]
    assert base.tolist() == expected


def test_lasermix_scans_hand_values():
    pts_a = at_inclination([-21.5, -14.5, -7.5, -0.5, -30.0], [0, 10, 20, 30, 40], intensity=0.1)
    pts_b = at_inclination([-0.5, -7.5, -14.5, -21.5], [50, 60, 70, 80], intensity=0.9)
    lab_a = torch.tensor([10, 11, 12, 13, 14])
    lab_b = torch.tensor([3, IGNORE_INDEX, 1, 0])  # b's areas: 3, 2, 1, 0
    mix1, mix2 = lasermix_scans(pts_a, lab_a, pts_b, lab_b, 4, PITCH_MIN, PITCH_MAX)
    # mix 1: a's even areas (rows 0, 2, 4) then b's odd areas (rows 0 in area 3, 2 in area 1).
    assert mix1.source_index.tolist() == [0, 2, 4, 0, 2]
    assert mix1.from_unlabeled.tolist() == [False, False, False, True, True]
    assert mix1.labels.tolist() == [10, 12, 14, 3, 1]
    assert torch.equal(mix1.points, torch.cat([pts_a[[0, 2, 4]], pts_b[[0, 2]]]))
    # mix 2: a's odd areas (rows 1, 3) then b's even areas (rows 1 in area 2, 3 in area 0).
    assert mix2.source_index.tolist() == [1, 3, 1, 3]
    assert mix2.from_unlabeled.tolist() == [False, False, True, True]
    assert mix2.labels.tolist() == [11, 13, IGNORE_INDEX, 0]
    assert torch.equal(mix2.points, torch.cat([pts_a[[1, 3]], pts_b[[1, 3]]]))
    # A = 1: everything of a in mix 1, everything of b in mix 2.
    one1, one2 = lasermix_scans(pts_a, lab_a, pts_b, lab_b, 1, PITCH_MIN, PITCH_MAX)
    assert not one1.from_unlabeled.any() and one1.source_index.tolist() == [0, 1, 2, 3, 4]
    assert one2.from_unlabeled.all() and one2.source_index.tolist() == [0, 1, 2, 3]


@settings(max_examples=40, deadline=None)
@given(
    na=st.integers(0, 40),
    nb=st.integers(0, 40),
    num_areas=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
)
def test_lasermix_scans_complementary(na, nb, num_areas, seed):
    """Every row of a and b lands in exactly one mixed scan, with its own label, in an area of the right
    parity, and the mixes keep each source's row order."""
    gen = np.random.default_rng(seed)
    pts_a = at_inclination(gen.uniform(-30, 8, na), gen.uniform(-180, 180, na), gen.uniform(1, 50, na))
    pts_b = at_inclination(gen.uniform(-30, 8, nb), gen.uniform(-180, 180, nb), gen.uniform(1, 50, nb))
    lab_a = torch.from_numpy(gen.integers(0, 20, na))
    lab_b = torch.from_numpy(gen.choice([0, 1, 2, IGNORE_INDEX], nb))
    mixes = lasermix_scans(pts_a, lab_a, pts_b, lab_b, num_areas, PITCH_MIN, PITCH_MAX)
    area_a = inclination_areas(pts_a, num_areas, PITCH_MIN, PITCH_MAX)
    area_b = inclination_areas(pts_b, num_areas, PITCH_MIN, PITCH_MAX)
    seen_a = torch.zeros(na, dtype=torch.int64)
    seen_b = torch.zeros(nb, dtype=torch.int64)
    for parity, mix in enumerate(mixes):  # mix 1 takes a's even / b's odd areas; mix 2 the converse
        fu, idx = mix.from_unlabeled, mix.source_index
        assert mix.points.shape[0] == mix.labels.shape[0] == fu.shape[0] == idx.shape[0]
        ia, ib = idx[~fu], idx[fu]
        assert torch.equal(mix.points[~fu], pts_a[ia]) and torch.equal(mix.points[fu], pts_b[ib])
        assert torch.equal(mix.labels[~fu], lab_a[ia]) and torch.equal(mix.labels[fu], lab_b[ib])
        assert (area_a[ia] % 2 == parity).all() and (area_b[ib] % 2 == 1 - parity).all()
        assert not (fu[:-1] & ~fu[1:]).any()  # a's rows first
        assert (ia.diff() > 0).all() and (ib.diff() > 0).all()
        seen_a += torch.bincount(ia, minlength=na)
        seen_b += torch.bincount(ib, minlength=nb)
    assert (seen_a == 1).all() and (seen_b == 1).all()


def _scan(sample_id, pitch, azimuth, labels):
    pts = at_inclination(pitch, azimuth).numpy()
    return Sample(sample_id, pts, None if labels is None else np.asarray(labels, dtype=np.int64), 0.0)


def _reference_mix(pts_a, lab_a, pts_b, lab_b, num_areas):
    """Per-point Python reference: lists of (from_unlabeled, row, label) of mix 1 and mix 2."""
    def area(p):
        pitch = math.degrees(math.atan2(float(p[2]), math.hypot(float(p[0]), float(p[1]))))
        k = math.floor((pitch - PITCH_MIN) / (PITCH_MAX - PITCH_MIN) * num_areas)
        return min(max(k, 0), num_areas - 1)

    mixes = ([], [])
    for i, p in enumerate(pts_a):
        mixes[area(p) % 2].append((False, i, int(lab_a[i])))
    for i, p in enumerate(pts_b):
        mixes[1 - area(p) % 2].append((True, i, int(lab_b[i])))
    return mixes


def test_lasermix_batch_matches_per_point_reference():
    rng = np.random.default_rng(3)
    labeled = collate_samples([
        _scan("L0", rng.uniform(-28, 6, 30), rng.uniform(-180, 180, 30), rng.integers(0, 5, 30)),
        _scan("L1", rng.uniform(-28, 6, 25), rng.uniform(-180, 180, 25), rng.integers(0, 5, 25)),
    ])
    # The unlabeled stream's labels must never reach the mix: they are garbage here.
    unlabeled = collate_samples([
        _scan("U0", rng.uniform(-28, 6, 20), rng.uniform(-180, 180, 20), np.full(20, 7)),
        _scan("U1", rng.uniform(-28, 6, 35), rng.uniform(-180, 180, 35), np.full(35, 7)),
    ])
    pseudo = torch.from_numpy(rng.choice([0, 1, IGNORE_INDEX], 55))
    counts = (2, 3, 5)
    out = lasermix_batch(labeled, unlabeled, pseudo, counts, PITCH_MIN, PITCH_MAX,
                         torch.Generator().manual_seed(0))
    draws = torch.randint(3, (2,), generator=torch.Generator().manual_seed(0)).tolist()
    assert out.num_areas == [counts[i] for i in draws]
    mixed = out.batch
    assert mixed.batch_size == 4 and mixed.samples == []
    assert mixed.sample_ids == [f"lasermix:L{i}+U{i}:{k}" for i in (0, 1) for k in (1, 2)]
    assert (mixed.batch_index.diff() >= 0).all()
    assert (mixed.labels[out.from_unlabeled] != 7).all()
    offsets_a, offsets_b = [0, 30], [0, 20]
    for pair in range(2):
        a_rows = slice(offsets_a[pair], offsets_a[pair] + (30, 25)[pair])
        b_rows = slice(offsets_b[pair], offsets_b[pair] + (20, 35)[pair])
        ref = _reference_mix(labeled.points[a_rows], labeled.labels[a_rows], unlabeled.points[b_rows],
                             pseudo[b_rows], out.num_areas[pair])
        for k in range(2):
            rows = mixed.batch_index == 2 * pair + k
            fu, idx = out.from_unlabeled[rows], out.source_index[rows]
            local = torch.where(fu, idx - offsets_b[pair], idx - offsets_a[pair])
            got = list(zip(fu.tolist(), local.tolist(), mixed.labels[rows].tolist(), strict=True))
            assert got == ref[k]
            pts = mixed.points[rows]
            assert torch.equal(pts[~fu], labeled.points[idx[~fu]])
            assert torch.equal(pts[fu], unlabeled.points[idx[fu]])


def test_lasermix_batch_rejects_mismatched_batches():
    one = collate_samples([_scan("L0", [-10.0], [0.0], [1])])
    two = collate_samples([_scan("U0", [-10.0], [0.0], None), _scan("U1", [-5.0], [0.0], None)])
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="batch sizes differ"):
        lasermix_batch(one, two, torch.zeros(2, dtype=torch.int64), (2,), PITCH_MIN, PITCH_MAX, gen)
    with pytest.raises(ValueError, match="no labels"):
        lasermix_batch(two, two, torch.zeros(2, dtype=torch.int64), (2,), PITCH_MIN, PITCH_MAX, gen)
    with pytest.raises(ValueError, match="labels"):
        lasermix_batch(one, one, torch.zeros(3, dtype=torch.int64), (2,), PITCH_MIN, PITCH_MAX, gen)
