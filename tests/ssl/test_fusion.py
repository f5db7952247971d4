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


def test_hand_computed_two_masks_and_lone_pixels():
    # 2 x 3 image, 2 classes. Mask 0 = left column, mask 7 = middle column, right column in no mask.
    probs = torch.tensor(
        [
            [[0.9, 0.1], [0.2, 0.8], [0.95, 0.05]],
            [[0.5, 0.5], [0.6, 0.4], [0.6, 0.4]],
        ]
    )
    ids = torch.tensor([[0, 7, -1], [0, 7, -1]])
    labels, conf = fuse_pseudo_labels(probs, ids, tau_mask=0.6, tau_pix=0.9)
    # mask 0 mean = (0.7, 0.3) -> class 0, conf 0.7 >= 0.6; mask 7 mean = (0.4, 0.6) -> class 1, conf 0.6.
    # lone pixels: (0.95) >= 0.9 kept as class 0; (0.6) < 0.9 ignored.
    assert labels.tolist() == [[0, 1, 0], [0, 1, I]]
    assert torch.allclose(conf, torch.tensor([[0.7, 0.6, 0.95], [0.7, 0.6, 0.0]]))
    assert labels.dtype == torch.int64 and conf.dtype == probs.dtype


def test_mask_label_overrides_pixel_argmax():
    # One mask of 4 pixels: 3 say class 2 weakly, one says class 0 strongly; the mask mean decides for all.
    probs = torch.tensor([[[0.1, 0.3, 0.6], [0.1, 0.3, 0.6]], [[0.1, 0.3, 0.6], [0.7, 0.3, 0.0]]])
    ids = torch.zeros(2, 2, dtype=torch.int64)
    labels, conf = fuse_pseudo_labels(probs, ids, tau_mask=0.4, tau_pix=0.0)
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
    labels, conf = fuse_pseudo_labels(probs, ids, tau_mask=0.5, tau_pix=1.0)
    assert (labels[:2, :2] == 1).all() and torch.allclose(conf[:2, :2], torch.tensor(0.8))
    rest = torch.ones(4, 4, dtype=torch.bool)
    rest[:2, :2] = False
    assert (labels[rest] == 0).all() and torch.allclose(conf[rest], torch.tensor(0.9))  # small mask excluded


def test_empty_masks_and_sparse_ids_change_nothing():
    probs = torch.rand(5, 6, 4, generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, 3, (5, 6), generator=torch.Generator().manual_seed(1))
    base = fuse_pseudo_labels(probs, ids, 0.3, 0.5)
    # Renumber to sparse ids (1, 40, 1000): ids 2..39 etc. are empty masks; an all-False mask in a stack too.
    sparse = torch.tensor([1, 40, 1000])[ids]
    shifted = fuse_pseudo_labels(probs, sparse, 0.3, 0.5)
    stack = np.stack([(ids == k).numpy() for k in range(3)] + [np.zeros((5, 6), dtype=bool)])
    from_stack = fuse_pseudo_labels(probs, torch.from_numpy(masks_to_id_image(stack)), 0.3, 0.5)
    for other in (shifted, from_stack):
        assert torch.equal(base[0], other[0]) and torch.allclose(base[1], other[1])


def test_masks_all_below_threshold_are_ignored():
    probs = torch.full((3, 3, 4), 0.25)  # uniform: every mask mean peaks at 0.25
    ids = torch.tensor([[0, 0, 1], [0, 1, 1], [2, 2, 2]])
    labels, conf = fuse_pseudo_labels(probs, ids, tau_mask=0.3, tau_pix=0.3)
    assert (labels == I).all() and (conf == 0).all()


def test_all_ignore_when_nothing_valid_or_thresholds_unreachable():
    probs = torch.softmax(torch.randn(4, 4, 3, generator=torch.Generator().manual_seed(2)), dim=-1)
    ids = torch.tensor([[0, 0, -1, -1]] * 4)
    labels, conf = fuse_pseudo_labels(probs, ids, tau_mask=1.01, tau_pix=1.01)
    assert (labels == I).all() and (conf == 0).all()
    labels, conf = fuse_pseudo_labels(probs, ids, 0.0, 0.0, valid=torch.zeros(4, 4, dtype=torch.bool))
    assert (labels == I).all() and (conf == 0).all()


def test_pixels_in_no_mask_use_their_own_argmax():
    probs = torch.tensor([[[0.05, 0.95], [0.9, 0.1]], [[0.3, 0.7], [0.0, 0.0]]])  # last: ray hit nothing
    ids = torch.full((2, 2), -1)
    labels, conf = fuse_pseudo_labels(probs, ids, tau_mask=0.5, tau_pix=0.9)
    assert labels.tolist() == [[1, 0], [I, I]]
    assert torch.allclose(conf, torch.tensor([[0.95, 0.9], [0.0, 0.0]]))


def test_invalid_pixels_do_not_dilute_the_mask_mean():
    probs = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # second pixel rendered nothing
    ids = torch.zeros(1, 2, dtype=torch.int64)
    labels, conf = fuse_pseudo_labels(probs, ids, tau_mask=0.8, tau_pix=0.9)
    assert labels.tolist() == [[I, I]]  # mean (0.5, 0) < 0.8
    labels, conf = fuse_pseudo_labels(probs, ids, 0.8, 0.9, valid=torch.tensor([[True, False]]))
    assert labels.tolist() == [[0, I]] and conf.tolist() == [[1.0, 0.0]]


def _loop_reference(probs, ids, tau_mask, tau_pix):
    """Per-pixel / per-mask loop straight from the rule in DESIGN.md (slow, obviously right)."""
    p, m = probs.numpy().astype(np.float64), ids.numpy()
    h, w, _ = p.shape
    labels = np.full((h, w), I)
    conf = np.zeros((h, w))
    for mask in set(m[m >= 0].tolist()):
        sel = m == mask
        mean = p[sel].mean(axis=0)
        if mean.max() >= tau_mask:
            labels[sel], conf[sel] = mean.argmax(), mean.max()
    for v in range(h):
        for u in range(w):
            if m[v, u] < 0 and p[v, u].max() >= tau_pix:
                labels[v, u], conf[v, u] = p[v, u].argmax(), p[v, u].max()
    return labels, conf


@given(
    st.integers(1, 6), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**31 - 1),
    st.floats(0.0, 1.0), st.floats(0.0, 1.0),
)
@settings(max_examples=60, deadline=None)
def test_matches_loop_reference(h, w, c, seed, tau_mask, tau_pix):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(3 * torch.randn(h, w, c, generator=g, dtype=torch.float64), dim=-1)
    ids = torch.randint(-1, 4, (h, w), generator=g)
    labels, conf = fuse_pseudo_labels(probs, ids, tau_mask, tau_pix)
    ref_labels, ref_conf = _loop_reference(probs, ids, tau_mask, tau_pix)
    # argmax ties are measure-zero with float64 random inputs
    assert np.array_equal(labels.numpy(), ref_labels)
    assert np.allclose(conf.numpy(), ref_conf)


def test_fusion_config_defaults_are_plain_fields():
    cfg = FusionConfig(tau_mask=0.7)
    assert cfg.tau_mask == 0.7 and 0.0 < cfg.tau_pix <= 1.0
