"""gather, scatter (src / value / reduce), scatter_add: exact against torch, duplicate-index
accumulation against fp64; the rank-6 limit of the indexing kernels."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flaggems.testing import assert_close, poisoned, run_gems

from .conftest import DTYPES, check, ix, rand, same


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(dtype, dim):
    x = rand((6, 9, 5), dtype)
    idx = torch.randint(0, x.size(dim), (4, 7, 3))
    check(torch.gather, x, dim, idx, served=["gather.default"])


def test_gather_layouts_out_and_errors():
    x = rand((7, 8), torch.float32, "transposed")
    idx = torch.randint(0, 7, (6, 5)).t()   # non-contiguous index, shape (5, 6)
    check(torch.gather, x, 0, idx, served=["gather.default"])
    out = poisoned((5, 6), torch.float32)
    got, _ = run_gems(lambda: torch.gather(x, 0, idx, out=out), served=["gather.out"])
    assert got is out and torch.equal(out, torch.gather(x, 0, idx))
    check(torch.gather, x, 1, torch.empty(0, 3, dtype=torch.long), served=["gather.default"])
    for bad in (8, -1):
        with pytest.raises(RuntimeError, match="out of bounds"):
            run_gems(torch.gather, x, 1, torch.tensor([[0, bad]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
def test_scatter_src_value(dtype):
    x = rand((5, 8), dtype)
    src = rand((5, 8), dtype)
    # unique indices per row so the result does not depend on which duplicate wins
    idx = torch.stack([torch.randperm(8)[:3] for _ in range(5)])
    check(torch.scatter, x, 1, idx, src, served=["scatter.src"])
    check(torch.scatter, x, 1, idx, 1, served=["scatter.value"])
    check(lambda: x.clone().scatter_(1, idx, src), served=["scatter_.src"])
    check(lambda: x.clone().scatter_(-1, idx, 0), served=["scatter_.value"])
    out = poisoned(x.shape, dtype)
    got, _ = run_gems(lambda: torch.scatter(x, 1, idx, src, out=out), served=["scatter.src_out"])
    same(got, torch.scatter(x, 1, idx, src))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32,
                                   torch.int64, torch.int8])
def test_scatter_add_duplicates(dtype):
    x = rand((4, 6), dtype)
    src = rand((4, 10), dtype)
    idx = torch.randint(0, 6, (4, 10))   # many duplicates
    want = torch.scatter_add(x.double(), 1, idx, src.double())
    for fn, name in ((lambda: torch.scatter_add(x, 1, idx, src), "scatter_add.default"),
                     (lambda: x.clone().scatter_add_(1, idx, src), "scatter_add_.default"),
                     (lambda: torch.scatter(x, 1, idx, src, reduce="add"), "scatter.reduce")):
        got, _ = run_gems(fn, served=[name])
        assert got.dtype == dtype
        if dtype.is_floating_point:
            assert_close(got, want, dtype, reduce_len=10)
        else:
            assert torch.equal(got, torch.scatter_add(x, 1, idx, src))  # integer adds wrap the same way


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32,
                                   torch.int64, torch.int8, torch.uint8])
def test_scatter_multiply_duplicates(dtype):
    """Issue 13 finding 20: scatter(reduce="multiply") went to torch. Duplicate indices multiply (compare-and-swap
    loops); the functional, in-place and scalar-value twins agree with torch (floats: against the fp64 products,
    the order of duplicate products being unspecified; integers: exactly, products wrap the same way)."""
    x = rand((4, 6), dtype)
    src = rand((4, 10), dtype)
    idx = torch.randint(0, 6, (4, 10))   # many duplicates
    cases = ((lambda t: torch.scatter(t, 1, idx, src, reduce="multiply"), "scatter.reduce"),
             (lambda t: t.clone().scatter_(1, idx, src, reduce="multiply"), "scatter_.reduce"),
             (lambda t: t.clone().scatter_(1, idx, 3, reduce="multiply"), "scatter_.value_reduce"),
             (lambda t: torch.scatter(t, 1, idx, 3, reduce="multiply"), "scatter.value_reduce"))
    for fn, name in cases:
        got, _ = run_gems(fn, x, served=[name])
        assert got.dtype == dtype
        if dtype.is_floating_point:
            want = fn(x.double()) if "value" in name else torch.scatter(x.double(), 1, idx, src.double(),
                                                                        reduce="multiply")
            assert_close(got, want, dtype, reduce_len=10)
        else:
            assert torch.equal(got, fn(x))
    # NaN / inf in src propagate like torch
    xf = torch.ones(2, 3)
    sf = torch.tensor([[float("nan"), 2.0], [float("inf"), 0.0]])
    i2 = torch.tensor([[0, 0], [1, 1]])
    got, _ = run_gems(lambda: torch.scatter(xf, 1, i2, sf, reduce="multiply"), served=["scatter.reduce"])
    assert torch.equal(got.isnan(), torch.scatter(xf, 1, i2, sf, reduce="multiply").isnan())
    # out-of-range index: torch's error class
    with pytest.raises(RuntimeError, match="out of bounds"):
        run_gems(lambda: torch.ones(3, 4).scatter_(1, torch.tensor([[4]]), 2.0, reduce="multiply"))


def test_scatter_errors_and_noncontiguous():
    x = torch.zeros(6, 5).t()      # (5, 6) non-contiguous destination
    idx = torch.tensor([[0, 5], [2, 2]])
    check(lambda: x.clone().scatter_(1, idx, 2.5), served=["scatter_.value"])
    check(lambda: torch.zeros(5, 6).t().scatter_add_(0, idx.t().contiguous(), torch.ones(2, 2)),
          served=["scatter_add_.default"])
    with pytest.raises(RuntimeError, match="out of bounds"):
        run_gems(lambda: torch.zeros(3, 4).scatter_(1, torch.tensor([[4]]), 1.0))
    with pytest.raises(RuntimeError):
        run_gems(lambda: torch.zeros(3, 4).scatter_(1, torch.tensor([[-1]]), 1.0))


def test_one_hot_goes_through_scatter():
    got, rep = run_gems(torch.nn.functional.one_hot, torch.tensor([[1, 3], [0, 4]]), 6, served=["scatter_.value"])
    assert torch.equal(got, torch.nn.functional.one_hot(torch.tensor([[1, 3], [0, 4]]), 6))


def test_high_rank_goes_native_with_reason():
    x = torch.randn(2, 1, 2, 3, 1, 2, 2)
    idx = torch.zeros(2, 1, 2, 3, 1, 2, 1, dtype=torch.long)
    got, rep = run_gems(torch.gather, x, 6, idx)
    assert torch.equal(got, torch.gather(x, 6, idx))
    assert "rank > 6" in str(dict(rep._find("gather.default")["fallback"]))
    # 7 dims that merge are fine for pointwise-shaped data movement
    check(torch.cat, [x, x], 3, served=["cat.default"])
    got, _ = run_gems(lambda: x[:, :, :, :, :, :, ix(1, 0)])
    assert torch.equal(got, x[:, :, :, :, :, :, ix(1, 0)])


@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.integers(0, 3), st.data())
def test_gather_scatter_add_hypothesis(shape, dim_seed, data):
    dim = dim_seed % len(shape)
    x = torch.randn(shape)
    ishape = [data.draw(st.integers(0 if d == dim else 1, s if d != dim else 7)) for d, s in enumerate(shape)]
    idx = torch.randint(0, shape[dim], ishape)
    check(torch.gather, x, dim, idx, served=["gather.default"])
    src = torch.randint(-5, 5, ishape)
    xi = torch.randint(-5, 5, shape)
    check(torch.scatter_add, xi, dim, idx, src, served=["scatter_add.default"])
