import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.sparse.hashing import VoxelHash, pack_keys, unpack_keys

coord = st.tuples(
    st.integers(0, 7), st.integers(-(2**15), 2**15 - 1), st.integers(-(2**15), 2**15 - 1),
    st.integers(-(2**15), 2**15 - 1),
)


@given(st.lists(coord, min_size=1, max_size=50))
@settings(max_examples=50, deadline=None)
def test_pack_unpack_roundtrip(coords):
    c = torch.tensor(coords, dtype=torch.int64)
    assert torch.equal(unpack_keys(pack_keys(c)), c)


@given(st.lists(coord, min_size=1, max_size=50, unique=True), st.lists(coord, max_size=20))
@settings(max_examples=50, deadline=None)
def test_lookup_finds_present_and_rejects_absent(present, queries):
    c = torch.tensor(present, dtype=torch.int64)
    table = VoxelHash(c)
    assert torch.equal(table.lookup(c), torch.arange(len(present)))
    if queries:
        q = torch.tensor(queries, dtype=torch.int64)
        idx = table.lookup(q)
        expected = [present.index(tuple(x)) if tuple(x) in present else -1 for x in queries]
        assert idx.tolist() == expected


def test_keys_sort_by_batch_first():
    c = torch.tensor([[1, -5, 0, 0], [0, 100, 100, 100], [0, -100, 3, 3]])
    order = torch.argsort(pack_keys(c)).tolist()
    assert order == [2, 1, 0]


def test_empty_table():
    table = VoxelHash(torch.zeros((0, 4), dtype=torch.int64))
    assert table.lookup(torch.tensor([[0, 1, 2, 3]])).tolist() == [-1]


small = st.tuples(st.integers(0, 1), st.integers(-3, 3), st.integers(-3, 3), st.integers(-4, 4))


@given(st.lists(small, min_size=1, max_size=80, unique=True), st.lists(small, min_size=1, max_size=30),
       st.integers(1, 4), st.booleans())
@settings(max_examples=100, deadline=None)
def test_z_runs_equal_one_lookup_per_key(present, starts, length, presorted):
    """Dense little z-columns (gaps and runs) in sorted or shuffled row order."""
    c = torch.tensor(present, dtype=torch.int64)
    if presorted:
        c = c[torch.argsort(pack_keys(c))]
    table = VoxelHash(c)
    start_keys = pack_keys(torch.tensor(starts, dtype=torch.int64))
    runs = table.lookup_z_runs(start_keys, length)
    assert runs.shape == (length, len(starts))
    for j in range(length):
        assert torch.equal(runs[j], table.lookup_keys(start_keys + j))


def test_z_runs_of_an_empty_table():
    table = VoxelHash(torch.zeros((0, 4), dtype=torch.int64))
    assert table.lookup_z_runs(torch.tensor([5, 7]), 3).tolist() == [[-1, -1]] * 3
