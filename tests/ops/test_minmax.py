"""amax/amin, max/min (all and dim, with indices), argmax/argmin, aminmax."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flaggems.testing import run_gems
from flaggems.testing.strategies import make_tensor, shapes


DTYPES = [torch.float32, torch.bfloat16, torch.float64, torch.int32, torch.int64, torch.uint8]


def _same(a, b):
    return torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(), b.nan_to_num()) \
        if a.is_floating_point() else torch.equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1, (0, 2)])
def test_amax_amin(dtype, dim):
    x = make_tensor((4, 1500, 3), dtype, low=0 if dtype == torch.uint8 else -50, high=50)
    for op in ("amax", "amin"):
        got, _ = run_gems(getattr(torch, op), x, dim, served=[f"{op}.default"])
        assert _same(got, getattr(torch, op)(x, dim))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_min_dim_first_index_and_nan(dtype):
    x = make_tensor((5, 2100), dtype, low=0, high=9)  # many ties: index must be the first one
    if dtype.is_floating_point:
        x[2, 1700] = float("nan")
        x[2, 1900] = float("nan")
        x[3, :] = -float("inf")
    for op in ("max", "min"):
        (v, i), _ = run_gems(getattr(torch, op), x, 1, served=[f"{op}.dim"])
        wv, wi = getattr(torch, op)(x, 1)
        assert _same(v, wv) and torch.equal(i, wi), (i, wi)
        got, _ = run_gems(getattr(torch, op), x, served=[f"{op}.default"])
        assert _same(got, getattr(torch, op)(x))
    for op in ("argmax", "argmin"):
        got, _ = run_gems(getattr(torch, op), x, 1, True, served=[f"{op}.default"])
        assert torch.equal(got, getattr(torch, op)(x, 1, True))
        got, _ = run_gems(getattr(torch, op), x, served=[f"{op}.default"])
        assert torch.equal(got, getattr(torch, op)(x))


def test_aminmax_and_errors():
    x = make_tensor((6, 7), torch.float32)
    (lo, hi), _ = run_gems(torch.aminmax, x, served=["aminmax.default"])
    assert torch.equal(lo, x.min()) and torch.equal(hi, x.max())
    (lo, hi), _ = run_gems(lambda: torch.aminmax(x, dim=0, keepdim=True), served=["aminmax.default"])
    assert torch.equal(lo, x.amin(0, True)) and torch.equal(hi, x.amax(0, True))
    with pytest.raises((RuntimeError, IndexError)):
        run_gems(torch.max, torch.empty(0, 3), 0)
    with pytest.raises(RuntimeError):
        run_gems(torch.amax, torch.empty(0))


@given(shape=shapes(1, 4, 20), data=st.data(), dtype=st.sampled_from([torch.float32, torch.int32, torch.bfloat16]),
       layout=st.sampled_from(["contiguous", "transposed", "strided"]))
def test_max_dim_hypothesis(shape, data, dtype, layout):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = make_tensor(shape, dtype, layout, low=-3, high=3, generator=torch.Generator().manual_seed(len(shape) + dim))
    (v, i), _ = run_gems(torch.max, x, dim, served=["max.dim"])
    wv, wi = torch.max(x, dim)
    assert torch.equal(v, wv) and torch.equal(i, wi)
