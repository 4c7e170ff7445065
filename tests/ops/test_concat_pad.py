"""cat / stack (promotion, legacy empty inputs, out=) and constant_pad_nd."""
import pytest
import torch

from flaggems.testing import poisoned, run_gems

from .conftest import check, rand


def test_cat_stack():
    a = rand((3, 4, 5), torch.float32, "transposed")
    b = rand((3, 2, 5), torch.float32)
    check(torch.cat, [a[:, :2], b], 1, served=["cat.default"])
    check(torch.cat, [a, b.to(torch.bfloat16)[:, :1]], -2, served=["cat.default"])     # promotion
    check(torch.cat, [b.to(torch.int32), b.to(torch.bool)], 0, served=["cat.default"])
    check(torch.cat, [torch.empty(0), b, torch.empty(0)], 1, served=["cat.default"])   # legacy empty inputs
    check(torch.cat, [b, b[:, :0]], 1, served=["cat.default"])
    check(torch.cat, [torch.arange(3)], 0, served=["cat.default"])
    out = poisoned((3, 4, 5), torch.float32)
    run_gems(lambda: torch.cat([b, b], 1, out=out), served=["cat.out"])
    assert torch.equal(out, torch.cat([b, b], 1))
    for d in (0, 2, -1, 3):
        check(torch.stack, [b, b * 2, b.transpose(0, 2).contiguous().transpose(0, 2)], d, served=["stack.default"])
    out = poisoned((2, 3, 2, 5), torch.float32)
    run_gems(lambda: torch.stack([b, b], 0, out=out), served=["stack.out"])
    assert torch.equal(out, torch.stack([b, b]))
    with pytest.raises(RuntimeError):
        run_gems(torch.cat, [a, b], 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
def test_constant_pad(dtype):
    x = rand((3, 4, 5), dtype, "transposed")
    val = True if dtype == torch.bool else 3
    for pad in ([0, 2], [1, 2, 0, 3], [-1, 2, 1, -2], [2, 2, 2, 2, 2, 2], [-5, 1], [0, 0]):
        check(lambda: torch.constant_pad_nd(x, pad, val), served=["constant_pad_nd.default"])
    check(lambda: torch.nn.functional.pad(x, (1, 1), value=-1.5 if dtype.is_floating_point else 0),
          served=["constant_pad_nd.default"])
