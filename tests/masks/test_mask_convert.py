"""Boolean mask stacks -> mask-id images, smallest mask winning on overlap."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nerfseg.masks.convert import compact_ids, masks_to_id_image


def test_hand_made_overlap_smallest_wins():
    big = np.zeros((3, 4), dtype=bool)
    big[:, :3] = True  # 9 pixels
    small = np.zeros((3, 4), dtype=bool)
    small[1, 1:] = True  # 3 pixels, overlaps big at (1,1), (1,2)
    empty = np.zeros((3, 4), dtype=bool)
    ids = masks_to_id_image(np.stack([big, empty, small]))
    # ids renumbered by stack order among visible masks: big -> 0, small -> 1 (the empty mask gets none)
    assert ids.tolist() == [[0, 0, 0, -1], [0, 1, 1, 1], [0, 0, 0, -1]]
    assert ids.dtype == np.int32


def test_no_masks_gives_all_minus_one():
    assert (masks_to_id_image(np.zeros((0, 2, 5), dtype=bool)) == -1).all()


def _painter_reference(masks):
    """Paint masks from largest to smallest (stable): the last painter wins = the smallest mask."""
    k, h, w = masks.shape
    areas = masks.reshape(k, h * w).sum(1)
    ids = np.full((h, w), -1)
    for idx in sorted(range(k), key=lambda i: (-areas[i], -i)):
        ids[masks[idx]] = idx
    return compact_ids(ids)


@given(arrays(bool, st.tuples(st.integers(0, 6), st.integers(1, 7), st.integers(1, 7))))
@settings(max_examples=80, deadline=None)
def test_matches_painter_reference(masks):
    assert np.array_equal(masks_to_id_image(masks), _painter_reference(masks))


def test_compact_ids_keeps_order():
    ids = np.array([[7, -1, 3], [-5, 7, 100]])
    assert compact_ids(ids).tolist() == [[1, -1, 0], [-1, 1, 2]]
