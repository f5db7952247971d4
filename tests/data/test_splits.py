"""Split files: sampling (counts, nesting, uniformity), file round trip and errors, positions, and the
committed SemanticKITTI splits under splits/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.data.semantickitti import SPLIT_SEQUENCES
from nerfseg.data.splits import (
    SEMANTICKITTI_SEQUENCE_LENGTHS,
    labeled_positions,
    labeled_split_ids,
    published_semantickitti_ids,
    read_split_file,
    split_file_name,
    write_split_file,
)
from nerfseg.errors import DataError

SPLITS = Path(__file__).resolve().parents[2] / "splits" / "semantickitti"
# 1 % of 19,130 = 191.3 -> 191; 10 % -> 1913; 20 % -> 3826; 50 % -> 9565 (hand-computed).
COMMITTED = {1: 191, 10: 1913, 20: 3826, 50: 9565}


def test_published_lengths_give_the_official_train_total():
    assert sum(SEMANTICKITTI_SEQUENCE_LENGTHS[s] for s in SPLIT_SEQUENCES["train"]) == 19130
    assert SEMANTICKITTI_SEQUENCE_LENGTHS[8] == 4071
    ids = published_semantickitti_ids()
    assert len(ids) == 19130 and ids[0] == "00/000000" and ids[-1] == "10/001200"
    assert "00/004540" in ids and "00/004541" not in ids and not any(i.startswith("08/") for i in ids)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 300),
    fractions=st.lists(st.floats(0.001, 1.0), min_size=2, max_size=4),
    seed=st.integers(0, 2**31 - 1),
)
def test_counts_sorted_and_nested(n, fractions, seed):
    ids = [f"{i // 100:02d}/{i % 100:06d}" for i in range(n)]
    subsets = [labeled_split_ids(ids, f, seed) for f in sorted(fractions)]
    for fraction, subset in zip(sorted(fractions), subsets, strict=True):
        assert len(subset) == max(1, round(fraction * n))
        assert subset == sorted(set(subset)) and set(subset) <= set(ids)
    for small, large in zip(subsets, subsets[1:], strict=False):
        assert set(small) <= set(large)


def test_result_ignores_input_order_and_depends_on_seed():
    ids = [f"{i:032x}" for i in range(50)]
    assert labeled_split_ids(ids, 0.2, 3) == labeled_split_ids(ids[::-1], 0.2, 3)
    assert labeled_split_ids(ids, 0.2, 3) != labeled_split_ids(ids, 0.2, 4)


def test_sampling_is_uniform():
    """Over 2000 seeds each of 20 ids is picked with probability 5/20; the binomial standard deviation of
    its frequency is sqrt(0.25 * 0.75 / 2000) = 0.0097, so 0.045 is a > 4.5 sigma band."""
    ids = [f"00/{i:06d}" for i in range(20)]
    hits = np.zeros(20)
    for seed in range(2000):
        for sample_id in labeled_split_ids(ids, 0.25, seed):
            hits[int(sample_id[3:])] += 1
    assert np.abs(hits / 2000 - 0.25).max() < 0.045


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        labeled_split_ids(["00/000000"], fraction, 0)


def test_bad_ids():
    with pytest.raises(ValueError, match="no ids"):
        labeled_split_ids([], 0.5, 0)
    with pytest.raises(ValueError, match="duplicates"):
        labeled_split_ids(["00/000000", "00/000000"], 0.5, 0)


def test_round_trip_skips_header(tmp_path):
    path = write_split_file(tmp_path / "s.txt", ["01/000002", "00/000010"], header="made by a test\nline 2")
    assert path.read_text().splitlines() == ["# made by a test", "# line 2", "00/000010", "01/000002"]
    assert read_split_file(path) == ["00/000010", "01/000002"]
    assert [p.name for p in tmp_path.iterdir()] == ["s.txt"]  # atomic: no temporary left
    token = "5f6c1e0a0c3b444b97e78d2aa3fa34d2"
    assert read_split_file(write_split_file(tmp_path / "n.txt", [token])) == [token]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "lists no sample ids"),
        ("# only a header\n\n", "lists no sample ids"),
        ("00/000001\n00/000002\n00/000001\n", "line 3: sample id '00/000001' repeats line 1"),
        ("00/000001\n0/1\n", "line 2: malformed sample id '0/1'"),
        ("# h\n00/000001 00/000002\n", "line 2: malformed sample id"),
        ("00/00000x\n", "line 1: malformed"),
    ],
)
def test_bad_split_files_name_file_and_line(tmp_path, text, problem):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_split_file(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="split file not found"):
        read_split_file(tmp_path / "none.txt")


def test_write_rejects_bad_ids(tmp_path):
    for ids in ([], ["00/000001", "00/000001"], ["a b"]):
        with pytest.raises(ValueError):
            write_split_file(tmp_path / "x.txt", ids)
    assert not (tmp_path / "x.txt").exists()


def test_labeled_positions(tmp_path):
    reader_ids = ["00/000000", "00/000001", "00/000002", "09/000000", "09/000001"]
    path = tmp_path / "s.txt"
    path.write_text("# header\n09/000000\n00/000001\n")
    positions = labeled_positions(reader_ids, path)
    assert positions.dtype == np.int64 and positions.tolist() == [1, 3]
    path.write_text("# header\n00/000001\n08/000000\n")
    with pytest.raises(DataError) as err:
        labeled_positions(reader_ids, path)
    message = str(err.value)
    assert str(path) in message and "line 3" in message and "'08/000000'" in message
    assert "not in the training split" in message


def test_file_names():
    assert split_file_name("semantickitti", 1.0, 0) == "semantickitti_1pct_seed0.txt"
    assert split_file_name("nuscenes", 0.5, 7) == "nuscenes_0.5pct_seed7.txt"


# ------------------------------------------------------------------------------------ committed splits


def _committed() -> dict[int, list[str]]:
    return {pct: read_split_file(SPLITS / f"semantickitti_{pct}pct_seed0.txt") for pct in COMMITTED}


def test_committed_splits_counts_nesting_and_train_only():
    splits = _committed()
    lengths = SEMANTICKITTI_SEQUENCE_LENGTHS
    for pct, ids in splits.items():
        assert len(ids) == COMMITTED[pct]
        assert ids == sorted(ids)
        sequences = np.array([int(i[:2]) for i in ids])
        frames = np.array([int(i[3:]) for i in ids])
        assert set(sequences.tolist()) <= set(SPLIT_SEQUENCES["train"])
        assert (frames < np.array([lengths[s] for s in sequences])).all()
    ordered = [set(splits[p]) for p in sorted(splits)]
    for small, large in zip(ordered, ordered[1:], strict=False):
        assert small < large
    # A uniform 50 % sample holds about half of each sequence (sequence 04: 271 scans, sd ~ 8).
    half = np.array([int(i[:2]) for i in splits[50]])
    for seq in SPLIT_SEQUENCES["train"]:
        assert abs((half == seq).sum() / lengths[seq] - 0.5) < 0.1


def test_committed_splits_equal_regeneration():
    ids = published_semantickitti_ids()
    for pct, committed in _committed().items():
        assert committed == labeled_split_ids(ids, pct / 100, 0)
