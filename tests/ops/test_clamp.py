"""clamp / clamp_min / clamp_max (scalar and tensor bounds, NaN, promotion), maximum / minimum."""
import pytest
import torch

from flaggems.testing import run_gems
from flaggems.testing.strategies import make_tensor

SPECIAL = torch.tensor([0.0, -0.0, 1.0, -1.0, float("inf"), -float("inf"), float("nan"), 3.5, -2.5, 1e-30, 88.0])


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


def test_maximum_minimum():
    a, b = SPECIAL, SPECIAL.flip(0)
    for op in ("maximum", "minimum"):
        got, _ = run_gems(getattr(torch, op), a, b, served=[f"{op}.default"])
        want = getattr(torch, op)(a, b)
        assert torch.equal(torch.isnan(got), torch.isnan(want))
        assert torch.equal(got.nan_to_num(), want.nan_to_num())
