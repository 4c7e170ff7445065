"""neg on integers, rsub (with alpha), floor_divide (Python floor semantics, signed zeros, division by zero)."""
import pytest
import torch

from flaggems.testing import assert_close, run_gems
from flaggems.testing.strategies import make_tensor


def test_neg_int_and_bool_falls_back():
    i = torch.arange(-3, 4, dtype=torch.int16)
    got, _ = run_gems(torch.neg, i, served=["neg.default"])
    assert torch.equal(got, -i)
    _, rep = run_gems(torch.exp, i)
    assert rep.fallbacks()["aten::exp.default"]


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
def test_rsub(dtype):
    a = make_tensor((4, 5), dtype, low=-5, high=5)
    b = make_tensor((5,), dtype, low=-5, high=5)
    for args, kw, name in (((a, b), {}, "rsub.Tensor"), ((a, b), {"alpha": 3}, "rsub.Tensor"),
                           ((a, 2), {"alpha": 2}, "rsub.Scalar")):
        got, _ = run_gems(torch.rsub, *args, served=[name], **kw)
        want = torch.rsub(*args, **kw)
        assert got.dtype == want.dtype
        if dtype.is_floating_point:
            other = args[1].double() if isinstance(args[1], torch.Tensor) else args[1]
            assert_close(got, other - kw.get("alpha", 1) * a.double(), dtype)
        else:
            assert torch.equal(got, want)
