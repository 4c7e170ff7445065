"""eq/ne/lt/le/gt/ge (promotion, specials, out=)."""
import pytest
import torch

from flaggems.testing import poisoned, run_gems
from flaggems.testing.strategies import make_tensor

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
