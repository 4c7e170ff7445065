"""where with tensor and scalar operands, and out=."""
import pytest
import torch

from flaggems.testing import poisoned, run_gems
from flaggems.testing.strategies import make_tensor


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
