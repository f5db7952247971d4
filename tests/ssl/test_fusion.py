"""Fusion of rendered distributions and masks into pseudo-labels (DESIGN.md step 8), on hand-made cases
and against a per-mask loop reference."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.masks.convert import masks_to_id_image
from nerfseg.ssl.fusion import FusionConfig, fuse_pseudo_labels

I = IGNORE_INDEX


def _opaque(probs):
    """Every ray fully opaque: the opacity gate lets every pixel through."""
    return torch.ones(probs.shape[:2], dtype=probs.dtype)


def test_hand_computed_two_masks_and_lone_pixels():
    # 2 x 3 image, 2 classes. Mask 0 = left column, mask 7 = middle column, right column in no mask.
    probs = torch.tensor(
        [
            [[0.9, 0.1], [0.2, 0.8], [0.95, 0.05]],
            [[0.5, 0.5], [0.6, 0.4], [0.6, 0.4]],
        ]
    )
    ids = torch.tensor([[0, 7, -1], [0, 7, -1]])
    labels, conf = fuse_pseudo_labels(probs, _opaque(probs), ids, tau_mask=0.6, tau_pix=0.9)
    # mask 0 mean = (0.7, 0.3) -> class 0, conf 0.7 >= 0.6; mask 7 mean = (0.4, 0.6) -> class 1, conf 0.6.
    # lone pixels: (0.95) >= 0.9 kept as class 0; (0.6) < 0.9 ignored.
    assert labels.tolist() == [[0, 1, 0], [0, 1, I]]
    assert torch.allclose(conf, torch.tensor([[0.7, 0.6, 0.95], [0.7, 0.6, 0.0]]))
    assert labels.dtype == torch.int64 and conf.dtype == probs.dtype


def test_mask_label_overrides_pixel_argmax():
    # One mask of 4 pixels: 3 say class 2 weakly, one says class 0 strongly; the mask mean decides for all.
    probs = torch.tensor([[[0.1, 0.3, 0.6], [0.1, 0.3, 0.6]], [[0.1, 0.3, 0.6], [0.7, 0.3, 0.0]]])
    ids = torch.zeros(2, 2, dtype=torch.int64)
    labels, conf = fuse_pseudo_labels(probs, _opaque(probs), ids, tau_mask=0.4, tau_pix=0.0)
    assert labels.tolist() == [[2, 2], [2, 2]]  # mean = (0.25, 0.3, 0.45)
    assert torch.allclose(conf, torch.full((2, 2), 0.45))


def test_overlaps_resolved_upstream_smallest_mask_wins():
    # A big mask (whole 4x4 image, mostly class 0) and a small 2x2 mask inside it where class 1 dominates.
    big = np.ones((4, 4), dtype=bool)
    small = np.zeros((4, 4), dtype=bool)
    small[:2, :2] = True
    ids = torch.from_numpy(masks_to_id_image(np.stack([big, small])))
    probs = torch.zeros(4, 4, 2)
    probs[..., 0] = 0.9
    probs[..., 1] = 0.1
    probs[:2, :2] = torch.tensor([0.2, 0.8])
    labels, conf = fuse_pseudo_labels(probs, _opaque(probs), ids, tau_mask=0.5, tau_pix=1.0)
    assert (labels[:2, :2] == 1).all() and torch.allclose(conf[:2, :2], torch.tensor(0.8))
    rest = torch.ones(4, 4, dtype=torch.bool)
    rest[:2, :2] = False
    assert (labels[rest] == 0).all() and torch.allclose(conf[rest], torch.tensor(0.9))  # small mask excluded


def test_empty_masks_and_sparse_ids_change_nothing():
    probs = torch.rand(5, 6, 4, generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, 3, (5, 6), generator=torch.Generator().manual_seed(1))
    base = fuse_pseudo_labels(probs, _opaque(probs), ids, 0.3, 0.5)
    # Renumber to sparse ids (1, 40, 1000): ids 2..39 etc. are empty masks; an all-False mask in a stack too.
    sparse = torch.tensor([1, 40, 1000])[ids]
    shifted = fuse_pseudo_labels(probs, _opaque(probs), sparse, 0.3, 0.5)
    stack = np.stack([(ids == k).numpy() for k in range(3)] + [np.zeros((5, 6), dtype=bool)])
    from_stack = fuse_pseudo_labels(
        probs, _opaque(probs), torch.from_numpy(masks_to_id_image(stack)), 0.3, 0.5
    )
    for other in (shifted, from_stack):
        assert torch.equal(base[0], other[0]) and torch.allclose(base[1], other[1])


def test_masks_all_below_threshold_are_ignored():
    probs = torch.full((3, 3, 4), 0.25)  # uniform: every mask mean peaks at 0.25
    ids = torch.tensor([[0, 0, 1], [0, 1, 1], [2, 2, 2]])
    labels, conf = fuse_pseudo_labels(probs, _opaque(probs), ids, tau_mask=0.3, tau_pix=0.3)
    assert (labels == I).all() and (conf == 0).all()


def test_all_ignore_when_nothing_valid_or_thresholds_unreachable():
    probs = torch.softmax(torch.randn(4, 4, 3, generator=torch.Generator().manual_seed(2)), dim=-1)
    ids = torch.tensor([[0, 0, -1, -1]] * 4)
    labels, conf = fuse_pseudo_labels(probs, _opaque(probs), ids, tau_mask=1.01, tau_pix=1.01)
    assert (labels == I).all() and (conf == 0).all()
    labels, conf = fuse_pseudo_labels(
        probs, _opaque(probs), ids, 0.0, 0.0, valid=torch.zeros(4, 4, dtype=torch.bool)
    )
    assert (labels == I).all() and (conf == 0).all()


def test_pixels_in_no_mask_use_their_own_argmax():
    probs = torch.tensor([[[0.05, 0.95], [0.9, 0.1]], [[0.3, 0.7], [0.0, 0.0]]])  # last: ray hit nothing
    ids = torch.full((2, 2), -1)
    labels, conf = fuse_pseudo_labels(probs, _opaque(probs), ids, tau_mask=0.5, tau_pix=0.9)
    assert labels.tolist() == [[1, 0], [I, I]]
    assert torch.allclose(conf, torch.tensor([[0.95, 0.9], [0.0, 0.0]]))


def test_invalid_pixels_do_not_dilute_the_mask_mean():
    probs = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # second pixel rendered nothing
    ids = torch.zeros(1, 2, dtype=torch.int64)
    labels, conf = fuse_pseudo_labels(probs, _opaque(probs), ids, tau_mask=0.8, tau_pix=0.9)
    assert labels.tolist() == [[I, I]]  # mean (0.5, 0) < 0.8
    labels, conf = fuse_pseudo_labels(
        probs, _opaque(probs), ids, 0.8, 0.9, valid=torch.tensor([[True, False]])
    )
    assert labels.tolist() == [[0, I]] and conf.tolist() == [[1.0, 0.0]]


def test_opacity_gates_mask_means_and_labels_hand_computed():
    # 2 x 3 image, 2 classes, P already divided by the opacity (what the head renders).
    # Mask 0 = left column + top middle; mask 5 = bottom middle; right column in no mask.
    probs = torch.tensor(
        [
            [[0.9, 0.1], [0.0, 1.0], [0.95, 0.05]],
            [[0.7, 0.3], [1.0, 0.0], [0.97, 0.03]],
        ]
    )
    opacity = torch.tensor([[0.9, 0.2, 0.6], [0.5, 0.49, 0.3]])
    ids = torch.tensor([[0, 0, -1], [0, 5, -1]])
    labels, conf = fuse_pseudo_labels(probs, opacity, ids, tau_mask=0.6, tau_pix=0.9, tau_opacity=0.5)
    # Mask 0: the transparent top-middle pixel (A 0.2, P says class 1 with certainty) is left out of the
    # mean: mean over (0.9, 0.1), (0.7, 0.3) = (0.8, 0.2) -> class 0, conf 0.8; and it gets no label itself.
    # (With it the mean would be (0.533, 0.467) < 0.6: no label at all.)
    # Mask 5: its only pixel has A 0.49 < 0.5 -> no opaque pixel -> no label, though P is (1, 0).
    # Lone pixels: (0.95, A 0.6) kept; (0.97, A 0.3) transparent -> ignored.
    assert labels.tolist() == [[0, I, 0], [0, I, I]]
    assert torch.allclose(conf, torch.tensor([[0.8, 0.0, 0.95], [0.8, 0.0, 0.0]]))
    # tau_opacity 0 lets every pixel through: the plain fusion.
    labels, conf = fuse_pseudo_labels(probs, opacity, ids, tau_mask=0.5, tau_pix=0.9, tau_opacity=0.0)
    assert labels.tolist() == [[0, 0, 0], [0, 0, 0]]  # mask 0 mean (1.6/3, 1.4/3); mask 5 (1, 0)
    assert torch.allclose(conf[0, :2], torch.tensor(1.6 / 3)) and float(conf[1, 1]) == 1.0


def test_a_faint_ray_never_gets_a_label_even_through_its_mask():
    # One mask of 4 pixels, all confidently class 1 after the division by opacity; only one ray is opaque.
    probs = torch.zeros(2, 2, 3)
    probs[..., 1] = 1.0
    opacity = torch.tensor([[0.01, 0.02], [0.8, 0.0]])
    labels, conf = fuse_pseudo_labels(probs, opacity, torch.zeros(2, 2, dtype=torch.int64), 0.5, 0.5)
    assert labels.tolist() == [[I, I], [1, I]] and conf.tolist() == [[0.0, 0.0], [1.0, 0.0]]
    none_opaque = fuse_pseudo_labels(probs, opacity * 0.5, torch.zeros(2, 2, dtype=torch.int64), 0.0, 0.0)
    assert (none_opaque[0] == I).all() and (none_opaque[1] == 0).all()


def _loop_reference(probs, opacity, ids, tau_mask, tau_pix, tau_opacity):
    """Per-pixel / per-mask loop straight from the rule in DESIGN.md (slow, obviously right)."""
    p, a, m = probs.numpy().astype(np.float64), opacity.numpy(), ids.numpy()
    h, w, _ = p.shape
    labels = np.full((h, w), I)
    conf = np.zeros((h, w))
    for mask in set(m[m >= 0].tolist()):
        sel = (m == mask) & (a >= tau_opacity)
        if not sel.any():
            continue
        mean = p[sel].mean(axis=0)
        if mean.max() >= tau_mask:
            labels[sel], conf[sel] = mean.argmax(), mean.max()
    for v in range(h):
        for u in range(w):
            if m[v, u] < 0 and a[v, u] >= tau_opacity and p[v, u].max() >= tau_pix:
                labels[v, u], conf[v, u] = p[v, u].argmax(), p[v, u].max()
    return labels, conf


@given(
    st.integers(1, 6), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**31 - 1),
    st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0),
)
@settings(max_examples=60, deadline=None)
def test_matches_loop_reference(h, w, c, seed, tau_mask, tau_pix, tau_opacity):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(3 * torch.randn(h, w, c, generator=g, dtype=torch.float64), dim=-1)
    opacity = torch.rand(h, w, generator=g, dtype=torch.float64)
    ids = torch.randint(-1, 4, (h, w), generator=g)
    labels, conf = fuse_pseudo_labels(probs, opacity, ids, tau_mask, tau_pix, tau_opacity)
    ref_labels, ref_conf = _loop_reference(probs, opacity, ids, tau_mask, tau_pix, tau_opacity)
    # argmax ties are measure-zero with float64 random inputs
    assert np.array_equal(labels.numpy(), ref_labels)
    assert np.allclose(conf.numpy(), ref_conf)
    assert (labels[opacity < tau_opacity] == I).all()  # a transparent pixel never gets a label


def test_fusion_config_defaults_are_plain_fields():
    cfg = FusionConfig(tau_mask=0.7)
    assert cfg.tau_mask == 0.7 and 0.0 < cfg.tau_pix <= 1.0
