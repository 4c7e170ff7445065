"""where (tensor and scalar operands, out=) and masked_fill (exact against torch)."""
import pytest
import torch

from flaggems.testing import poisoned, run_gems
from flaggems.testing.strategies import make_tensor

from .conftest import check, rand


@pytest.mark.parametrize("variant", ["self", "ScalarSelf", "ScalarOther", "Scalar"])
def test_where(variant):
    c = torch.rand(4, 1, 5) > 0.5
    a = make_tensor((3, 5), torch.bfloat16)
    b = make_tensor((4, 3, 1), torch.float32)
    args = {"self": (c, a, b), "ScalarSelf": (c, 2.5, b), "ScalarOther": (c, a, -1.0), "Scalar": (c, 1.0, 0.0)}[variant]
    got, _ = run_gems(torch.where, *args, served=[f"where.{variant}"])
    want = torch.where(*args)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got, want)


def test_where_out_and_one_arg_form():
    c = torch.rand(6) > 0.3
    a, b = make_tensor((6,), torch.float32), make_tensor((6,), torch.float32)
    out = poisoned((6,), torch.float32)
    run_gems(lambda: torch.where(c, a, b, out=out), served=["where.self_out"])
    assert torch.equal(out, torch.where(c, a, b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64,
                                   torch.bool])
def test_masked_fill(dtype):
    x = rand((4, 6), dtype)
    m = torch.rand(4, 6) > 0.5
    v = True if dtype == torch.bool else (float("-inf") if dtype.is_floating_point else -7)
    check(torch.masked_fill, x, m, v, served=["masked_fill.Scalar"])
    check(torch.masked_fill, x, m[:1], v, served=["masked_fill.Scalar"])          # broadcast mask
    check(torch.masked_fill, x[:1], m, v, served=["masked_fill.Scalar"])          # broadcast self
    check(torch.masked_fill, x.t(), m.t(), torch.tensor(1), served=["masked_fill.Tensor"])
    check(lambda: x.clone().masked_fill_(m[0], v), served=["masked_fill_.Scalar"])
    check(lambda: x.clone().masked_fill_(m, torch.tensor(0.25)), served=["masked_fill_.Tensor"])
