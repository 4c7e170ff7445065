"""sum / mean over dims against fp64 references."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flaggems.testing import assert_close, poisoned, run_gems
from flaggems.testing.strategies import make_tensor, shapes

FLOATS = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 2), (1, 2), (0, 1, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean_dims(dtype, dim, keepdim):
    x = make_tensor((5, 37, 9), dtype)
    for op in ("sum", "mean"):
        if dim is None:
            fn = (lambda x: getattr(torch, op)(x)) if not keepdim else None
            if fn is None:
                continue
            name = f"{op}.default"
        else:
            fn = (lambda x: getattr(torch, op)(x, dim, keepdim=keepdim))
            name = "sum.dim_IntList" if op == "sum" else "mean.dim"
        got, _ = run_gems(fn, x, served=[name])
        want = fn(x.double())
        n = x.numel() // max(1, want.numel()) if dim is not None else x.numel()
        assert got.dtype == dtype and got.shape == want.shape
        assert_close(got, want, dtype, reduce_len=n)


@pytest.mark.parametrize("layout", ["transposed", "strided"])
def test_sum_non_contiguous(layout):
    x = make_tensor((6, 40, 3), torch.float32, layout)
    for dim in (0, 1, 2, (0, 2)):
        got, _ = run_gems(torch.sum, x, dim, served=["sum.dim_IntList"])
        assert_close(got, x.double().sum(dim), torch.float32, reduce_len=240)


def test_sum_int_bool_and_dtype_arg():
    i = torch.randint(-100, 100, (7, 13), dtype=torch.int32)
    got, _ = run_gems(torch.sum, i, 1, served=["sum.dim_IntList"])
    assert got.dtype == torch.int64 and torch.equal(got, i.sum(1))
    b = torch.rand(50) > 0.5
    got, _ = run_gems(torch.sum, b, served=["sum.default"])
    assert got.dtype == torch.int64 and got.item() == int(b.sum())
    h = make_tensor((4, 300), torch.bfloat16)
    got, _ = run_gems(lambda: h.sum(1, dtype=torch.float32), served=["sum.dim_IntList"])
    assert got.dtype == torch.float32
    assert_close(got, h.double().sum(1), torch.float32, reduce_len=300)
    got, _ = run_gems(lambda: h.mean(dtype=torch.float64), served=["mean.default"])
    assert_close(got, h.double().mean(), torch.float64, reduce_len=1200)


def test_reduction_edges():
    e = torch.empty(0, 4)
    got, _ = run_gems(torch.sum, e, 0, served=["sum.dim_IntList"])
    assert torch.equal(got, torch.zeros(4))
    got, _ = run_gems(torch.mean, e, 0, served=["mean.dim"])
    assert torch.isnan(got).all()
    got, _ = run_gems(torch.sum, e, 1)
    assert got.shape == (0,)
    z = torch.tensor(3.5)
    got, _ = run_gems(torch.sum, z, served=["sum.default"])
    assert got.item() == 3.5
    one = make_tensor((1, 1, 1), torch.float32)
    got, _ = run_gems(torch.mean, one, (0, 2), served=["mean.dim"])
    assert torch.equal(got, one.mean((0, 2)))
    with pytest.raises(IndexError):
        run_gems(torch.sum, one, 5)
    i = torch.arange(4)
    with pytest.raises(RuntimeError):
        run_gems(torch.mean, i)  # torch: mean of an integer tensor needs a dtype


def test_sum_mean_out():
    x = make_tensor((6, 20), torch.float32)
    out = poisoned((6,), torch.float32)
    run_gems(lambda: torch.sum(x, 1, out=out), served=["sum.IntList_out"])
    assert_close(out, x.double().sum(1), torch.float32, reduce_len=20)
    out = poisoned((1, 20), torch.float32)
    run_gems(lambda: torch.mean(x, 0, keepdim=True, out=out), served=["mean.out"])
    assert_close(out, x.double().mean(0, keepdim=True), torch.float32, reduce_len=6)


def test_sum_out_full_reduction():
    """Issue 13 finding 20: aten::sum.out (the full reduction into out=, which Python's torch.sum does not expose but
    decompositions and compiled graphs call) went to torch; served now, and agrees with the functional sum
    (dtype= included, out resized to 0-dim like torch)."""
    sum_out = torch.ops.aten.sum.out
    x = make_tensor((6, 20), torch.float32)
    out = poisoned((3,), torch.float32)
    got, _ = run_gems(lambda: sum_out(x, out=out), served=["sum.out"])
    functional, _ = run_gems(torch.sum, x, served=["sum.default"])
    assert got is out and out.shape == () and torch.equal(out, functional)
    i = torch.randint(-5, 5, (4, 7), dtype=torch.int32)
    out = poisoned((), torch.int64)
    run_gems(lambda: sum_out(i, out=out), served=["sum.out"])
    assert torch.equal(out, i.sum())
    out = poisoned((), torch.float64)
    run_gems(lambda: sum_out(x, dtype=torch.float64, out=out), served=["sum.out"])
    # dtype=float64 on an fp32 input accumulates in fp64 like torch (it accumulated in fp32 before)
    assert_close(out, x.double().sum(), torch.float64, reduce_len=120)
    got, _ = run_gems(lambda: x.sum(1, dtype=torch.float64), served=["sum.dim_IntList"])
    assert_close(got, x.double().sum(1), torch.float64, reduce_len=20)


@given(shape=shapes(1, 4, 20), data=st.data(), dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
       layout=st.sampled_from(["contiguous", "transposed", "strided"]))
def test_sum_hypothesis(shape, data, dtype, layout):
    dims = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1))
    keep = data.draw(st.booleans())
    x = make_tensor(shape, dtype, layout, generator=torch.Generator().manual_seed(len(shape) * 31 + len(dims)))
    got, _ = run_gems(torch.sum, x, dims, keep, served=["sum.dim_IntList"])
    want = x.double().sum(dims, keepdim=keep)
    assert_close(got, want, dtype, reduce_len=max(1, math.prod(shape[d] for d in dims)))
