"""The table-lookup label maps against the plain masked reference, on every integer dtype."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nerfseg.data.labelmaps import NUSCENES, SEMANTICKITTI
from nerfseg.data.sample import IGNORE_INDEX


def reference_to_train(table: np.ndarray, raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw).astype(np.int64)
    out = np.full(raw.shape, IGNORE_INDEX, dtype=np.int64)
    inside = (raw >= 0) & (raw < table.size)
    out[inside] = table[raw[inside]]
    return out


DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(DTYPES), label_map=st.sampled_from([SEMANTICKITTI, NUSCENES]))
def test_to_train_and_unknown_ids_match_the_reference(data, dtype, label_map):
    info = np.iinfo(dtype)
    values = st.one_of(st.integers(max(info.min, -3), min(info.max, 300)), st.integers(info.min, info.max))
    raw = data.draw(arrays(dtype, st.tuples(st.integers(0, 5), st.integers(0, 7)), elements=values))
    got = label_map.to_train(raw)
    assert got.dtype == np.int64 and got.shape == raw.shape
    np.testing.assert_array_equal(got, reference_to_train(label_map.raw_to_train, raw))
    present = np.unique(raw.astype(np.int64)) if raw.dtype != np.uint64 else np.unique(raw)
    expected = [int(v) for v in present if int(v) not in label_map.raw_names]
    assert [int(v) for v in label_map.unknown_raw_ids(raw)] == expected


@pytest.mark.parametrize("label_map", [SEMANTICKITTI, NUSCENES])
def test_every_raw_id_of_an_image(label_map):
    """A 16-bit semantic image holding every raw id (and some unknown ones) maps like the reference."""
    raw = np.arange(375 * 1242, dtype=np.int64).reshape(375, 1242) % 400
    np.testing.assert_array_equal(label_map.to_train(raw), reference_to_train(label_map.raw_to_train, raw))
    np.testing.assert_array_equal(label_map.to_train(raw.astype(np.uint16)), label_map.to_train(raw))
