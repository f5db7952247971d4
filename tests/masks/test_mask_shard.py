"""Shards of a split: disjoint, covering, fixed by (i, n); --shard parsing errors."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nerfseg.errors import ConfigError
from nerfseg.masks.shard import Shard, parse_shard


@given(count=st.integers(1, 9), total=st.integers(0, 60))
def test_shards_are_disjoint_and_cover_the_split(count, total):
    parts = [list(Shard(i, count).indices(total)) for i in range(count)]
    flat = [k for part in parts for k in part]
    assert sorted(flat) == list(range(total)) and len(flat) == len(set(flat))
    assert all(k % count == i for i, part in enumerate(parts) for k in part)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1  # balanced to one sample


def test_hand_computed_shard():
    assert list(parse_shard("1/3").indices(8)) == [1, 4, 7]
    assert list(parse_shard(" 0 / 1 ").indices(3)) == [0, 1, 2]
    assert list(parse_shard("4/5").indices(3)) == []  # more shards than samples: an empty shard is fine
    assert str(parse_shard("2/4")) == "2/4"


@pytest.mark.parametrize("text", ["2/2", "3/2", "-1/3", "1/0", "0/0", "a/b", "1", "1/2/3", "", "1.0/2"])
def test_bad_shard_is_a_config_error_naming_the_option(text):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)
