"""Comparisons, bitwise/logical ops, clamp, math functions, pow, softplus, gelu, floor_divide, maximum."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from flaggems.testing import assert_close, poisoned, run_gems
from flaggems.testing.strategies import make_tensor, shapes

FLOATS = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
SPECIAL = torch.tensor([0.0, -0.0, 1.0, -1.0, float("inf"), -float("inf"), float("nan"), 3.5, -2.5, 1e-30, 88.0])


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int32, torch.bool])
def test_comparisons(op, dtype):
    a = make_tensor((6, 1, 5), dtype, low=-2, high=2)
    b = make_tensor((4, 5), dtype, low=-2, high=2)
    got, _ = run_gems(getattr(torch, op), a, b, served=[f"{op}.Tensor"])
    assert got.dtype == torch.bool and torch.equal(got, getattr(torch, op)(a, b))
    got, _ = run_gems(getattr(torch, op), a, 1, served=[f"{op}.Scalar"])
    assert torch.equal(got, getattr(torch, op)(a, 1))


def test_comparison_promotion_and_specials():
    x = SPECIAL
    for op in ("eq", "lt", "ge", "ne"):
        got, _ = run_gems(getattr(torch, op), x, x.flip(0), served=[f"{op}.Tensor"])
        assert torch.equal(got, getattr(torch, op)(x, x.flip(0)))
    i = torch.arange(-3, 3, dtype=torch.int32)
    got, _ = run_gems(torch.lt, i, 0.5, served=["lt.Scalar"])
    assert torch.equal(got, i < 0.5)  # compared in float, not truncated to int
    big = torch.tensor([2 ** 40 + 1, 2 ** 40], dtype=torch.int64)
    got, _ = run_gems(torch.eq, big, 2 ** 40 + 1, served=["eq.Scalar"])
    assert got.tolist() == [True, False]
    out = poisoned((11,), torch.bool)
    run_gems(lambda: torch.gt(x, 0.0, out=out), served=["gt.Scalar_out"])
    assert torch.equal(out, x > 0)


@pytest.mark.parametrize("op", ["bitwise_and", "bitwise_or", "bitwise_xor"])
@pytest.mark.parametrize("dtype", [torch.bool, torch.int32, torch.uint8, torch.int64])
def test_bitwise(op, dtype):
    a = make_tensor((3, 9), dtype, low=0, high=200) if dtype != torch.bool else torch.rand(3, 9) > 0.5
    b = make_tensor((9,), dtype, low=0, high=200) if dtype != torch.bool else torch.rand(9) > 0.5
    got, _ = run_gems(getattr(torch, op), a, b, served=[f"{op}.Tensor"])
    assert got.dtype == dtype and torch.equal(got, getattr(torch, op)(a, b))
    got, _ = run_gems(torch.bitwise_not, a, served=["bitwise_not.default"])
    assert torch.equal(got, torch.bitwise_not(a))


def test_logical():
    a, b = make_tensor((7,), torch.float32), torch.tensor([0, 1, 0, 2, 0, 0, 3], dtype=torch.int32)
    a[2] = 0
    for op in ("logical_and", "logical_or"):
        got, _ = run_gems(getattr(torch, op), a, b, served=[f"{op}.default"])
        assert torch.equal(got, getattr(torch, op)(a, b))
    got, _ = run_gems(torch.logical_not, b, served=["logical_not.default"])
    assert torch.equal(got, torch.logical_not(b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int32])
def test_clamp_variants(dtype):
    x = make_tensor((5, 8), dtype, low=-20, high=20)
    for lo, hi in ((-3, 4), (None, 10), (-10, None), (5, -5)):
        got, _ = run_gems(torch.clamp, x, lo, hi, served=["clamp.default"])
        assert torch.equal(got, torch.clamp(x, lo, hi))
    lo_t, hi_t = make_tensor((8,), dtype, low=-5, high=0), make_tensor((5, 1), dtype, low=1, high=5)
    got, _ = run_gems(torch.clamp, x, lo_t, hi_t, served=["clamp.Tensor"])
    assert torch.equal(got, torch.clamp(x, lo_t, hi_t))
    y = x.clone()
    run_gems(lambda: y.clamp_(min=-1), served=["clamp_.default"])
    assert torch.equal(y, x.clamp(min=-1))
    got, _ = run_gems(torch.clamp_max, x, 2, served=["clamp_max.default"])
    assert torch.equal(got, x.clamp(max=2))
    got, _ = run_gems(torch.relu, x, served=["relu.default"])
    assert torch.equal(got, torch.relu(x))


def test_clamp_nan_and_promotion():
    got, _ = run_gems(torch.clamp, SPECIAL, -1.5, 2.0, served=["clamp.default"])
    assert torch.equal(torch.isnan(got), torch.isnan(SPECIAL))
    assert torch.equal(got.nan_to_num(), torch.clamp(SPECIAL, -1.5, 2.0).nan_to_num())
    i = torch.arange(-4, 4, dtype=torch.int32)
    got, _ = run_gems(torch.clamp, i, -1.5, 2.5, served=["clamp.default"])
    assert got.dtype == torch.clamp(i, -1.5, 2.5).dtype and torch.equal(got, torch.clamp(i, -1.5, 2.5))


@pytest.mark.parametrize("op", ["sqrt", "cos", "sin", "tanh", "log", "reciprocal", "abs"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_math(op, dtype):
    x = make_tensor((9, 17), dtype, "strided", low=0.05, high=6.0)
    if op in ("abs", "tanh", "cos", "sin"):
        x = x - 3
    fn = getattr(torch, op)
    got, _ = run_gems(fn, x, served=[f"{op}.default"])
    assert_close(got, fn(x.double()), dtype, rtol=4e-6 if dtype == torch.float32 else None)
    got, _ = run_gems(fn, SPECIAL.to(dtype), served=[f"{op}.default"])
    assert_close(got, fn(SPECIAL.to(dtype).double()), dtype, rtol=4e-6 if dtype == torch.float32 else None)


def test_abs_int_and_inplace_out():
    i = torch.tensor([-5, 0, 7, -2 ** 31 + 1], dtype=torch.int32)
    got, _ = run_gems(torch.abs, i, served=["abs.default"])
    assert torch.equal(got, i.abs())
    x = make_tensor((4, 4), torch.float32, low=0.1, high=3)
    y = x.clone()
    run_gems(lambda: y.sqrt_(), served=["sqrt_.default"])
    assert_close(y, x.double().sqrt(), torch.float32)
    out = poisoned((4, 4), torch.float32)
    run_gems(lambda: torch.cos(x, out=out), served=["cos.out"])
    assert_close(out, x.double().cos(), torch.float32, rtol=4e-6)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gelu(approximate, dtype):
    x = make_tensor((6, 40), dtype, low=-6, high=6)
    got, _ = run_gems(F.gelu, x, approximate=approximate, served=["gelu.default"])
    assert_close(got, F.gelu(x.double(), approximate=approximate), dtype, rtol=4e-6 if dtype == torch.float32 else None)


@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 5.0), (0.5, 1.0)])
def test_softplus(beta, threshold):
    x = torch.cat([make_tensor((50,), torch.float32, low=-30, high=30), SPECIAL])
    got, _ = run_gems(F.softplus, x, beta, threshold, served=["softplus.default"])
    assert_close(got, F.softplus(x.double(), beta, threshold), torch.float32, rtol=4e-6)
    h = make_tensor((64,), torch.bfloat16, low=-10, high=10)
    got, _ = run_gems(F.softplus, h, served=["softplus.default"])
    assert_close(got, F.softplus(h.double()), torch.bfloat16)


@pytest.mark.parametrize("e", [2, 3, 0.5, -1, 0, 1, 2.5, -2, 3.0, -0.5, 7])
def test_pow_tensor_scalar(e):
    x = torch.cat([make_tensor((40,), torch.float32, low=-4, high=4), SPECIAL])
    got, _ = run_gems(torch.pow, x, e, served=["pow.Tensor_Scalar"])
    want = torch.pow(x.double(), e)
    assert_close(got, want, torch.float32, rtol=2e-6 * (1 + abs(e)), atol=1e-5)
    i = torch.arange(-4, 5, dtype=torch.int32)
    if isinstance(e, int) and 0 <= e <= 3:
        got, _ = run_gems(torch.pow, i, e, served=["pow.Tensor_Scalar"])
        assert torch.equal(got, i ** e)


def test_maximum_minimum():
    a, b = SPECIAL, SPECIAL.flip(0)
    for op in ("maximum", "minimum"):
        got, _ = run_gems(getattr(torch, op), a, b, served=[f"{op}.default"])
        want = getattr(torch, op)(a, b)
        assert torch.equal(torch.isnan(got), torch.isnan(want))
        assert torch.equal(got.nan_to_num(), want.nan_to_num())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int32, torch.int64])
def test_floor_divide(dtype):
    if dtype.is_floating_point:
        a = torch.tensor([7.0, -7.0, 7.5, -7.5, 0.0, -0.0, 1e10, 3.0, float("inf"), 5.0], dtype=dtype)
        b = torch.tensor([2.0, 2.0, -2.0, -2.0, 3.0, 3.0, 3.0, 0.1, 2.0, 0.0], dtype=dtype)
        got, _ = run_gems(torch.floor_divide, a, b, served=["floor_divide.default"])
        want = torch.floor_divide(a, b)
        assert torch.equal(torch.isnan(got), torch.isnan(want))
        assert torch.equal(got.nan_to_num(), want.nan_to_num()), (got, want)
        assert torch.equal(torch.signbit(got), torch.signbit(want))
    else:
        a = torch.arange(-9, 10, dtype=dtype)
        for d in (4, -4, 1, 7):
            got, _ = run_gems(torch.floor_divide, a, d, served=["floor_divide.default"])
            assert torch.equal(got, torch.floor_divide(a, d))
        with pytest.raises(RuntimeError, match="ZeroDivision"):
            run_gems(torch.floor_divide, a, torch.zeros_like(a))


@given(shape=shapes(1, 3, 12), dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
       op=st.sampled_from(["sqrt", "sin", "tanh", "relu", "abs", "reciprocal"]),
       layout=st.sampled_from(["contiguous", "transposed", "strided"]))
def test_unary_hypothesis(shape, dtype, op, layout):
    x = make_tensor(shape, dtype, layout, low=0.1, high=5, generator=torch.Generator().manual_seed(len(shape)))
    fn = getattr(torch, op)
    got, _ = run_gems(fn, x, served=[f"{op}.default"])
    assert_close(got, fn(x.double()), dtype, rtol=4e-6 if dtype == torch.float32 else None)
