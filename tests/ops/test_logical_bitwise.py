"""bitwise_and/or/xor/not and logical_and/or/not."""
import pytest
import torch

from flaggems.testing import run_gems
from flaggems.testing.strategies import make_tensor


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
