"""topk / sort / argsort against torch's CPU kernels.

topk on the CPU device reproduces torch's CPU tie-breaking (libstdc++ nth_element / partial_sort / sort), so
values *and* indices must be identical even when values tie. sort is always stable: indices must equal torch's
stable sort. The bitonic (accelerator) topk path is tested directly: ties go to the lower index.
"""
import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flaggems import runtime
from flaggems.ops import sort as sort_mod
from flaggems.ops.sort import sort_rows
from flaggems.testing import poisoned, run_gems
from flaggems.testing.strategies import make_tensor

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64, torch.uint8]


def tie_heavy(shape, dtype, seed=0):
    """Values drawn from a tiny pool (plus NaN, +-0, -inf for floats): every row has ties."""
    g = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        pool = torch.tensor([0.0, -0.0, 1.0, -1.0, 2.5, float("nan"), float("-inf"), 0.125])
    else:
        pool = torch.tensor([0, 1, 2, 3, 7])
    return pool[torch.randint(0, len(pool), shape, generator=g)].to(dtype)


def same(got, want):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.shape, w.shape)
        if g.is_floating_point():
            assert torch.equal(torch.isnan(g), torch.isnan(w))
            g, w = g.nan_to_num(), w.nan_to_num()
        assert torch.equal(g, w), f"mismatch at {(g != w).nonzero()[:4].tolist()}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(1, 1), (5, 4), (8, 2), (20, 20), (33, 7), (130, 2), (300, 4), (64, 1)])
def test_topk_ties_match_torch(dtype, n, k):
    x = tie_heavy((3, n), dtype, seed=n * 31 + k)
    for largest in (True, False):
        for sorted_ in (True, False):
            got, _ = run_gems(torch.topk, x, k, -1, largest, sorted_, served=["topk.default"])
            same(got, torch.topk(x, k, -1, largest, sorted_))


def test_topk_layouts_dims_and_out():
    x = tie_heavy((6, 9, 5), torch.float32, seed=3)
    for dim in (0, 1, -1):
        got, _ = run_gems(torch.topk, x, 3, dim, served=["topk.default"])
        same(got, torch.topk(x, 3, dim))
    xt = x.transpose(0, 2)
    got, _ = run_gems(torch.topk, xt, 2, 1, False, served=["topk.default"])
    same(got, torch.topk(xt, 2, 1, False))
    assert got.values.is_contiguous() and got.indices.is_contiguous()
    vals, idx = poisoned((6, 9, 4), torch.float32), poisoned((6, 9, 4), torch.int64)
    run_gems(lambda: torch.topk(x, 4, out=(vals, idx)), served=["topk.values"])
    same((vals, idx), torch.topk(x, 4))
    got, _ = run_gems(torch.topk, x, 0, served=["topk.default"])
    assert got.values.shape == (6, 9, 0)
    with pytest.raises(RuntimeError):
        run_gems(torch.topk, x, 6)
    # the model's pattern: ReLU scores with many exact zeros, and MoE routing rows
    s = torch.relu(make_tensor((20, 8), torch.float32))
    got, _ = run_gems(torch.topk, s, 2, -1, True, False, served=["topk.default"])
    same(got, torch.topk(s, 2, -1, True, False))


def test_topk_random_rows_match_torch():
    rng = random.Random(1)
    for _ in range(25):
        n = rng.choice([2, 3, 6, 9, 17, 40, 200])
        k = rng.randint(1, n)
        x = tie_heavy((2, n), torch.float32, seed=rng.randint(0, 10**6))
        largest, sorted_ = rng.random() < 0.6, rng.random() < 0.7
        got, _ = run_gems(torch.topk, x, k, -1, largest, sorted_, served=["topk.default"])
        same(got, torch.topk(x, k, -1, largest, sorted_))


def _stable_topk(x, k, dim, largest):
    v, i = torch.sort(x, dim=dim, descending=largest, stable=True)
    return v.narrow(dim, 0, k), i.narrow(dim, 0, k)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64, torch.int64, torch.int8])
def test_bitonic_topk_ties_lowest_index(dtype):
    x = tie_heavy((5, 37), dtype, seed=9)
    for k in (1, 5, 37):
        for largest in (True, False):
            same(sort_rows(x, 1, k, largest), _stable_topk(x, k, 1, largest))
    x = tie_heavy((4, 7, 3), dtype, seed=2)
    same(sort_rows(x, 1, 3, True), _stable_topk(x, 3, 1, True))


@pytest.mark.parametrize("dtype", DTYPES + [torch.bool])
@pytest.mark.parametrize("dim", [0, -1])
def test_sort_stable(dtype, dim):
    x = tie_heavy((7, 45), dtype, seed=5) if dtype != torch.bool else torch.rand(7, 45) > 0.5
    for desc in (False, True):
        want = torch.sort(x, dim=dim, descending=desc, stable=True)
        got, _ = run_gems(torch.sort, x, dim, desc, served=["sort.default"])
        same(got, want)
        got, _ = run_gems(lambda: torch.sort(x, stable=True, dim=dim, descending=desc), served=["sort.stable"])
        same(got, want)
        got, _ = run_gems(lambda: torch.argsort(x, dim=dim, descending=desc, stable=True), served=["sort.stable"])
        assert torch.equal(got, want.indices)


def test_sort_edges_and_out():
    x = tie_heavy((4, 6, 5), torch.float32, seed=11)
    got, _ = run_gems(torch.sort, x.transpose(0, 1), 0, served=["sort.default"])
    same(got, torch.sort(x.transpose(0, 1), dim=0, stable=True))
    got, _ = run_gems(torch.sort, torch.tensor([3.0]), served=["sort.default"])
    same(got, torch.sort(torch.tensor([3.0])))
    got, _ = run_gems(torch.sort, torch.empty(3, 0), served=["sort.default"])
    assert got.values.shape == (3, 0)
    v, i = poisoned((4, 6, 5), torch.float32), poisoned((4, 6, 5), torch.int64)
    run_gems(lambda: torch.sort(x, 1, out=(v, i)), served=["sort.values"])
    same((v, i), torch.sort(x, dim=1, stable=True))
    ids = torch.randint(0, 8, (40,))        # grouped-MoE pattern: argsort of expert ids
    got, _ = run_gems(torch.sort, ids, served=["sort.default"])
    same(got, torch.sort(ids, stable=True))


@given(st.lists(st.integers(1, 24), min_size=1, max_size=3).filter(lambda s: len(s) < 3 or s[0] * s[1] * s[2] <= 400),
       st.integers(0, 2), st.booleans(), st.integers(0, 99))
def test_sort_topk_hypothesis(shape, dim_seed, desc, seed):
    dim = dim_seed % len(shape)
    x = tie_heavy(tuple(shape), torch.float32, seed=seed)
    got, _ = run_gems(torch.sort, x, dim, desc, served=["sort.default"])
    same(got, torch.sort(x, dim=dim, descending=desc, stable=True))
    k = 1 + seed % shape[dim]
    got, _ = run_gems(torch.topk, x, k, dim, desc, served=["topk.default"])
    same(got, torch.topk(x, k, dim, desc))


def test_sort_rows_longer_than_a_tile():
    """Issue 13 finding 20: sort along a dim longer than 16384 went to torch. Rows of any length now merge sorted
    tiles in global memory; stable like the one-tile path (indices equal torch's stable sort)."""
    x = tie_heavy((2, 20000), torch.float32, seed=3)
    x[0, 123] = float("nan")
    for desc in (False, True):
        got, _ = run_gems(torch.sort, x, -1, desc, served=["sort.default"])
        same(got, torch.sort(x, dim=-1, descending=desc, stable=True))
    got, _ = run_gems(lambda: torch.sort(x.t(), dim=0, stable=True), served=["sort.stable"])
    same(got, torch.sort(x.t(), dim=0, stable=True))


# one case per dtype, each with a tile small enough for several merge rounds: the interpreter runs every tile
# program in Python, so larger shapes or the full cross product cost minutes
@pytest.mark.parametrize("dtype,n,tile,shape", [
    (torch.float32, 17, 16, (3, 17, 2)),        # middle dim, padding tail, one round
    (torch.bfloat16, 300, 64, (1, 300, 1)),     # three rounds with a half-cleaner across tiles
    (torch.float64, 1024, 128, (1, 1024, 1)),   # no padding
    (torch.int64, 1500, 128, (2, 1500, 1)),     # four rounds, two rows
    (torch.int16, 300, 32, (1, 300, 2)),        # inner dim
])
def test_long_row_merge_steps(monkeypatch, dtype, n, tile, shape):
    """The long-row path with a small tile: several merge rounds (flip, half-cleaners across tiles, in-tile
    cascade), middle dims, padding tails, descending and topk-sized outputs."""
    monkeypatch.setattr(sort_mod, "_tile", lambda dtype: {"TILE": tile, "BLOCK": 128})
    x = tie_heavy(shape, dtype, seed=n) if n != 1024 else make_tensor(shape, dtype)
    for desc in (False, True):
        same(sort_rows(x, 1, n, desc), torch.sort(x, dim=1, descending=desc, stable=True))
    same(sort_rows(x, 1, 5, True), _stable_topk(x, 5, 1, True))


def test_topk_long_rows_on_a_device_plan():
    """topk on a device (GPU planning) takes the bitonic path for rows longer than a tile too; ties to the lower
    index."""
    x = tie_heavy((2, 5000), torch.float32, seed=4)
    with runtime.planning_as_device():
        got, _ = run_gems(torch.topk, x, 7, -1, True, served=["topk.default"])
    same(got, _stable_topk(x, 7, -1, True))


def test_topk_bool_raises_like_torch():
    """Adversarial sibling S11: topk on bool returned a value; torch raises."""
    x = torch.rand(3, 8) > 0.5
    with pytest.raises(RuntimeError, match="bool"):
        torch.topk(x, 2)
    with pytest.raises(RuntimeError, match="bool"):
        run_gems(torch.topk, x, 2)
