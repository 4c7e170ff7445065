"""sqrt, cos, sin, tanh, log, reciprocal, abs (specials, in-place, out=) and pow(Tensor, Scalar)."""
import pytest
import torch

from flaggems.testing import assert_close, poisoned, run_gems
from flaggems.testing.strategies import make_tensor

FLOATS = [torch.float32, torch.float16, torch.bfloat16, torch.float64]

SPECIAL = torch.tensor([0.0, -0.0, 1.0, -1.0, float("inf"), -float("inf"), float("nan"), 3.5, -2.5, 1e-30, 88.0])


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
