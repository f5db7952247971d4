"""Sparse convolutions against dense torch convolutions on densified small grids (forward and gradients)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfseg.sparse import (
    DownConv3d,
    SparseTensor,
    SubmanifoldConv3d,
    UpConv3d,
    cube_offsets,
    sparse_conv,
    submanifold_map,
)
from nerfseg.sparse.conv import padded_rows
from nerfseg.sparse.kernel_map import downsampling_map

GRID = (8, 8, 8)
BATCH = 2


def random_coords(occupancy: float, seed: int) -> torch.Tensor:
    """Unique (M, 4) int64 coordinates inside [0, 8)^3 for 2 scans, about `occupancy` of the cells."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand((BATCH, *GRID), generator=g) < occupancy
    return torch.nonzero(mask).to(torch.int64)


def dense_of(coords: torch.Tensor, feats: torch.Tensor, shape=GRID) -> torch.Tensor:
    return SparseTensor(coords, feats).to_dense(shape, BATCH)


def read_at(dense: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """(B, C, X, Y, Z) dense -> (M, C) values at coords."""
    return dense.permute(0, 2, 3, 4, 1)[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]]


def submanifold_dense_weight(w: torch.Tensor) -> torch.Tensor:
    """(27, Cin, Cout) sparse weight -> (Cout, Cin, 3, 3, 3) conv3d weight."""
    return w.permute(2, 1, 0).reshape(w.shape[2], w.shape[1], 3, 3, 3)


def down_dense_weight(w: torch.Tensor) -> torch.Tensor:
    """(8, Cin, Cout) -> (Cout, Cin, 2, 2, 2) conv3d weight."""
    return w.permute(2, 1, 0).reshape(w.shape[2], w.shape[1], 2, 2, 2)


def up_dense_weight(w: torch.Tensor) -> torch.Tensor:
    """(8, Cin, Cout) -> (Cin, Cout, 2, 2, 2) conv_transpose3d weight."""
    return w.permute(1, 2, 0).reshape(w.shape[1], w.shape[2], 2, 2, 2)


@pytest.mark.parametrize(
    "occupancy,chunk_rows,block_rows", [(0.3, 16384, None), (0.6, 7, None), (0.05, 3, 4), (0.3, 50, 9)]
)
def test_submanifold_conv_matches_dense_conv3d(occupancy, chunk_rows, block_rows):
    torch.manual_seed(0)
    coords = random_coords(occupancy, seed=int(occupancy * 100))
    feats = torch.randn(len(coords), 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(27, 5, 3, dtype=torch.float64, requires_grad=True)
    kmap = submanifold_map(coords, block_rows=block_rows)
    out = sparse_conv(feats, weight, kmap, chunk_rows=chunk_rows)

    dense_in = dense_of(coords, feats.detach()).requires_grad_(True)
    dense_w = submanifold_dense_weight(weight.detach()).requires_grad_(True)
    ref = read_at(F.conv3d(dense_in, dense_w, padding=1), coords)
    torch.testing.assert_close(out, ref)

    upstream = torch.randn_like(ref)
    (out * upstream).sum().backward()
    (ref * upstream).sum().backward()
    torch.testing.assert_close(feats.grad, read_at(dense_in.grad, coords))
    torch.testing.assert_close(submanifold_dense_weight(weight.grad), dense_w.grad)


@pytest.mark.parametrize("chunk_rows", [16384, 5])
def test_strided_conv_matches_dense_conv3d(chunk_rows):
    torch.manual_seed(1)
    coords = random_coords(0.3, seed=3)
    feats = torch.randn(len(coords), 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(8, 4, 6, dtype=torch.float64, requires_grad=True)
    down = downsampling_map(coords)
    out = sparse_conv(feats, weight, down.kernel_map, chunk_rows=chunk_rows)

    dense_in = dense_of(coords, feats.detach()).requires_grad_(True)
    dense_w = down_dense_weight(weight.detach()).requires_grad_(True)
    dense_out = F.conv3d(dense_in, dense_w, stride=2)
    ref = read_at(dense_out, down.coarse_coords)
    torch.testing.assert_close(out, ref)
    # the coarse voxels are exactly the 2x2x2 blocks holding an input voxel
    occupied = dense_of(coords, torch.ones(len(coords), 1, dtype=torch.float64))
    blocks = F.max_pool3d(occupied, 2)[:, 0]
    assert torch.equal(torch.nonzero(blocks > 0), down.coarse_coords)

    upstream = torch.randn_like(ref)
    (out * upstream).sum().backward()
    (ref * upstream).sum().backward()
    torch.testing.assert_close(feats.grad, read_at(dense_in.grad, coords))
    torch.testing.assert_close(down_dense_weight(weight.grad), dense_w.grad)


@pytest.mark.parametrize("chunk_rows", [16384, 4])
def test_transposed_conv_matches_dense_conv_transpose3d(chunk_rows):
    torch.manual_seed(2)
    fine = random_coords(0.25, seed=4)
    down = downsampling_map(fine)
    coarse = down.coarse_coords
    feats = torch.randn(len(coarse), 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(8, 6, 3, dtype=torch.float64, requires_grad=True)
    out = sparse_conv(feats, weight, down.kernel_map.transposed(len(fine)), chunk_rows=chunk_rows)

    dense_in = dense_of(coarse, feats.detach(), shape=(4, 4, 4)).requires_grad_(True)
    dense_w = up_dense_weight(weight.detach()).requires_grad_(True)
    ref = read_at(F.conv_transpose3d(dense_in, dense_w, stride=2), fine)
    torch.testing.assert_close(out, ref)

    upstream = torch.randn_like(ref)
    (out * upstream).sum().backward()
    (ref * upstream).sum().backward()
    torch.testing.assert_close(feats.grad, read_at(dense_in.grad, coarse))
    torch.testing.assert_close(up_dense_weight(weight.grad), dense_w.grad)


def test_modules_chain_down_and_up_back_onto_the_same_voxels():
    torch.manual_seed(3)
    coords = random_coords(0.3, seed=5)
    x = SparseTensor(coords, torch.randn(len(coords), 4))
    sub, down, up = SubmanifoldConv3d(4, 8), DownConv3d(8, 16), UpConv3d(16, 4)
    y = sub(x)
    z = down(y)
    assert z.stride == 2 and z.num_channels == 16
    back = up(z)
    assert back.stride == 1 and torch.equal(back.coords, coords) and back.num_channels == 4
    # the modules compute the functional result
    dense = F.conv3d(dense_of(coords, x.feats), submanifold_dense_weight(sub.weight), padding=1)
    ref = read_at(dense, coords)
    torch.testing.assert_close(y.feats, ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="no finer voxel set"):
        up(SparseTensor(coords, torch.randn(len(coords), 16), stride=2))


def test_gradcheck_submanifold_and_strided():
    torch.manual_seed(4)
    coords = random_coords(0.06, seed=6)
    kmap = submanifold_map(coords, block_rows=8)
    assert kmap.in_rows.numel() > 10  # enough neighbour pairs to exercise the gathers
    feats = torch.randn(len(coords), 2, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(27, 2, 2, dtype=torch.float64, requires_grad=True)
    conv = lambda f, w: sparse_conv(f, w, kmap, chunk_rows=5)  # noqa: E731
    assert torch.autograd.gradcheck(conv, (feats, weight), fast_mode=True)
    down = downsampling_map(coords).kernel_map
    w8 = torch.randn(8, 2, 3, dtype=torch.float64, requires_grad=True)
    strided = lambda f, w: sparse_conv(f, w, down, chunk_rows=5)  # noqa: E731
    assert torch.autograd.gradcheck(strided, (feats, w8), fast_mode=True)


def test_bf16_autocast_gives_bf16_close_to_float32():
    torch.manual_seed(5)
    coords = random_coords(0.3, seed=7)
    feats = torch.randn(len(coords), 8)
    weight = torch.randn(27, 8, 8) * 0.1
    kmap = submanifold_map(coords)
    ref = sparse_conv(feats, weight, kmap)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sparse_conv(feats, weight, kmap)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)


@given(st.integers(1, 1 << 20))
def test_padded_rows_add_at_most_an_eighth_and_are_multiples_of_16(rows):
    padded = padded_rows(rows)
    assert padded >= rows and padded % 16 == 0
    assert padded - rows < max(16, rows / 8)


def test_padded_rows_take_at_most_8_sizes_per_octave():
    sizes = {padded_rows(r) for r in range(1, 1 << 14)}
    assert len(sizes) <= 8 * 10 + 1  # 16 (r <= 16), then 8 sizes in each octave 2^4 .. 2^14


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("chunk_rows,block_rows", [(16384, None), (50, 9), (7, None), (333, 64)])
def test_half_precision_conv_with_padded_matmuls_matches_float32(dtype, chunk_rows, block_rows):
    """Half-precision matmuls on the CPU compute rows past each segment (padded_rows); the next segment
    must overwrite them before they are scattered, whatever the chunk and block sizes."""
    torch.manual_seed(11)
    coords = random_coords(0.4, seed=12)
    kmap = submanifold_map(coords, block_rows=block_rows)
    feats = torch.randn(len(coords), 8).to(dtype)
    weight = (torch.randn(27, 8, 8) * 0.3).to(dtype)
    ref = sparse_conv(feats.float(), weight.float(), kmap, chunk_rows=chunk_rows)
    out = sparse_conv(feats, weight, kmap, chunk_rows=chunk_rows)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, rtol=0.02, atol=0.08)
    # gradients: the symmetric backward pass is the same padded forward pass with flipped weights
    f32 = feats.float().requires_grad_(True)
    f16 = feats.clone().requires_grad_(True)
    upstream = torch.randn(len(coords), 8)
    sparse_conv(f32, weight.float(), kmap, chunk_rows=chunk_rows).backward(upstream)
    sparse_conv(f16, weight, kmap, chunk_rows=chunk_rows).backward(upstream.to(dtype))
    torch.testing.assert_close(f16.grad.float(), f32.grad, rtol=0.02, atol=0.08)


def test_weight_shape_mismatch_is_rejected():
    coords = random_coords(0.1, seed=8)
    with pytest.raises(ValueError, match="does not fit 27 offsets"):
        sparse_conv(torch.randn(len(coords), 3), torch.randn(8, 3, 3), submanifold_map(coords))


coord_lists = st.lists(
    st.tuples(st.integers(0, 1), st.integers(-4, 4), st.integers(-4, 4), st.integers(-4, 4)),
    min_size=1, max_size=60, unique=True,
)


@given(coord_lists)
@settings(max_examples=40, deadline=None)
def test_submanifold_map_pairs_are_exactly_the_neighbours(coords_list):
    coords = torch.tensor(coords_list, dtype=torch.int64)
    kmap = submanifold_map(coords, block_rows=7)
    offsets = cube_offsets(3)
    found = set()
    for k in range(27):
        ins, outs = kmap.pairs_of(k)
        for i, o in zip(ins.tolist(), outs.tolist(), strict=True):
            assert coords[i, 0] == coords[o, 0]
            assert torch.equal(coords[i, 1:] - coords[o, 1:], offsets[k])
            found.add((i, o))
    # brute force: every ordered pair of distinct voxels of one scan within the 3x3x3 cube
    expected = {
        (i, o)
        for i, ci in enumerate(coords_list)
        for o, co in enumerate(coords_list)
        if i != o and ci[0] == co[0] and max(abs(ci[j] - co[j]) for j in (1, 2, 3)) <= 1
    }
    assert found == expected
    assert kmap.identity_offset == 13 and kmap.pairs_of(13)[0].numel() == 0
    # blocks: consecutive output rows, each block's pairs write only its rows
    assert kmap.blocks[0].row_start == 0 and kmap.blocks[-1].row_end == len(coords_list)
    for blk in kmap.blocks:
        outs = kmap.out_rows[blk.pair_start:blk.pair_end]
        assert bool(((outs >= blk.row_start) & (outs < blk.row_end)).all())
        assert torch.equal(kmap.out_local[blk.pair_start:blk.pair_end], outs - blk.row_start)


@given(coord_lists)
@settings(max_examples=40, deadline=None)
def test_downsampling_map_parents_are_floor_halves(coords_list):
    coords = torch.tensor(coords_list, dtype=torch.int64)
    down = downsampling_map(coords)
    km = down.kernel_map
    offsets = cube_offsets(2)
    assert km.in_rows.sort().values.tolist() == list(range(len(coords)))  # every fine voxel once
    for k in range(8):
        ins, outs = km.pairs_of(k)
        fine, parent = coords[ins], down.coarse_coords[outs]
        assert torch.equal(fine[:, 0], parent[:, 0])
        assert torch.equal(fine[:, 1:] - 2 * parent[:, 1:], offsets[k].expand(len(ins), 3))
    expected = {(c[0], c[1] // 2, c[2] // 2, c[3] // 2) for c in coords_list}
    assert sorted(expected) == [tuple(c) for c in down.coarse_coords.tolist()]
