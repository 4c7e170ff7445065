"""eq/ne/lt/le/gt/ge (promotion, specials, out=) and isin."""
import pytest
import torch

from flaggems.testing import poisoned, run_gems
from flaggems.testing.strategies import make_tensor

from .conftest import check

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


def test_isin():
    e = torch.randint(0, 20, (5, 7))
    t = torch.randint(0, 20, (9,))
    check(torch.isin, e, t, served=["isin.Tensor_Tensor"])
    check(torch.isin, e.t(), t, invert=True, served=["isin.Tensor_Tensor"])
    check(torch.isin, e, 3, served=["isin.Tensor_Scalar"])
    check(torch.isin, 4, t, served=["isin.Scalar_Tensor"])
    check(torch.isin, e, torch.tensor(5), served=["isin.Tensor_Tensor"])
    f = torch.tensor([0.5, float("nan"), -0.0, 1.0, 3.0])
    check(torch.isin, f, torch.tensor([0.0, float("nan"), 3.0], dtype=torch.float64), served=["isin.Tensor_Tensor"])
    check(torch.isin, f.to(torch.bfloat16), e.reshape(-1)[:3].to(torch.int32), served=["isin.Tensor_Tensor"])
    check(torch.isin, e, torch.randint(0, 20, (3000,)), served=["isin.Tensor_Tensor"])   # several test blocks
    check(torch.isin, torch.empty(0, dtype=torch.long), t, served=["isin.Tensor_Tensor"])
