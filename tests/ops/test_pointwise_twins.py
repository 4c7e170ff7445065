"""Pointwise overloads served since issue 13 finding 20 (div with rounding_mode, bitwise_*.Scalar_Tensor, a Python
number as the first operand of add/sub, fill / zero_ variants): each agrees with native torch, and its in-place
and out= twins agree with the functional op bit for bit."""
import pytest
import torch

from flaggems.testing import poisoned, run_gems
from flaggems.testing.strategies import make_tensor


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.is_floating_point():
        assert torch.equal(torch.isnan(a), torch.isnan(b))
        a, b = a.nan_to_num(), b.nan_to_num()
        # signed zeros too
        assert torch.equal(torch.signbit(a), torch.signbit(b))
    assert torch.equal(a, b), (a, b)


def _operands(dtype):
    if dtype.is_floating_point:
        a = make_tensor((96,), dtype, low=-50, high=50)
        b = make_tensor((96,), dtype, low=-7, high=7)
        a[:6] = torch.tensor([5.0, -5.0, 0.0, -0.0, 7.5, float("nan")], dtype=dtype)
        b[:6] = torch.tensor([0.0, 2.5, -3.0, 3.0, -2.5, 1.0], dtype=dtype)
    else:
        a = make_tensor((96,), dtype, low=-100, high=100)
        b = make_tensor((96,), dtype, low=1, high=9)
        b[::2] = -b[::2]
    return a, b


@pytest.mark.parametrize("mode", ["floor", "trunc"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int32, torch.int64])
def test_div_rounding_mode_and_twins(mode, dtype):
    a, b = _operands(dtype)
    if not dtype.is_floating_point:
        # integer division by a divisor only the device sees stays native (torch raises on zero): a Python one
        got, _ = run_gems(torch.div, a, 3, rounding_mode=mode, served=["div.Tensor_mode"])
        _same(got, torch.div(a, 3, rounding_mode=mode))
        return
    got, _ = run_gems(torch.div, a, b, rounding_mode=mode, served=["div.Tensor_mode"])
    _same(got, torch.div(a, b, rounding_mode=mode))
    out = poisoned(a.shape, dtype)
    run_gems(torch.div, a, b, rounding_mode=mode, out=out, served=["div.out_mode"])
    y = a.clone()
    res, _ = run_gems(lambda: y.div_(b, rounding_mode=mode), served=["div_.Tensor_mode"])
    assert res is y
    for twin in (out, y):
        _same(twin, got)
    # a Python divisor
    got, _ = run_gems(torch.div, a, -2.5, rounding_mode=mode, served=["div.Tensor_mode"])
    _same(got, torch.div(a, -2.5, rounding_mode=mode))


def test_div_bad_rounding_mode_raises_like_torch():
    a = torch.ones(3)
    with pytest.raises(RuntimeError):
        torch.div(a, a, rounding_mode="round")
    with pytest.raises(RuntimeError):
        run_gems(torch.div, a, a, rounding_mode="round")


def test_integer_div_mode_by_zero_raises_like_torch():
    a, z = torch.tensor([4, 5]), torch.tensor([2, 0])
    # torch raises RuntimeError("ZeroDivisionError"): the divisor is only seen on the device, so this stays native
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        torch.div(a, z, rounding_mode="trunc")
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        run_gems(torch.div, a, z, rounding_mode="trunc")


@pytest.mark.parametrize("op", ["bitwise_and", "bitwise_or", "bitwise_xor"])
@pytest.mark.parametrize("dtype", [torch.int8, torch.int32, torch.int64, torch.bool])
def test_bitwise_scalar_tensor(op, dtype):
    t = make_tensor((50,), dtype, low=-100, high=100) if dtype != torch.bool else torch.rand(50) > 0.5
    s = True if dtype == torch.bool else 0x5A
    fn = getattr(torch, op)
    got, _ = run_gems(fn, s, t, served=[f"{op}.Scalar_Tensor"])
    _same(got, fn(s, t))
    out = poisoned(t.shape, got.dtype)
    # torch.bitwise_and(number, t, out=) has no Python binding: the ATen overload directly
    run_gems(getattr(torch.ops.aten, op).Scalar_Tensor_out, s, t, out=out, served=[f"{op}.Scalar_Tensor_out"])
    _same(out, got)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int32])
def test_python_number_first_add_sub(dtype):
    t = make_tensor((40,), dtype, low=-9, high=9)
    for fn, kw in ((torch.add, {}), (torch.sub, {}), (torch.add, {"alpha": 3}), (torch.sub, {"alpha": 2})):
        got, _ = run_gems(fn, 2, t, served=[f"{fn.__name__}.Tensor"], **kw)
        _same(got, fn(2, t, **kw))
    got, _ = run_gems(torch.sub, 2.5, t, served=["sub.Tensor"])  # a float number promotes an int tensor
    _same(got, torch.sub(2.5, t))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int16, torch.bool])
def test_fill_and_zero_variants_agree(dtype):
    x = make_tensor((5, 7), dtype, low=-3, high=3) if dtype != torch.bool else torch.rand(5, 7) > 0.5
    value = True if dtype == torch.bool else 3
    want = torch.full_like(x, value)
    got, _ = run_gems(torch.fill, x, value, served=["fill.Scalar"])
    _same(got, want)
    got, _ = run_gems(torch.fill, x, torch.tensor(value), served=["fill.Tensor"])
    _same(got, want)
    y = x.clone()
    run_gems(lambda: y.fill_(value), served=["fill_.Scalar"])
    _same(y, want)
    y = x.clone()
    run_gems(lambda: y.fill_(torch.tensor(value)), served=["fill_.Tensor"])
    _same(y, want)
    # a strided view is filled in place, the rest untouched
    y = x.clone()
    res, _ = run_gems(lambda: y[:, ::2].zero_(), served=["zero_.default"])
    want = x.clone()
    want[:, ::2] = 0
    _same(y, want)
    assert res.data_ptr() == y.data_ptr()
