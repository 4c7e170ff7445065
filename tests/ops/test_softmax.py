"""softmax / log_softmax against fp64 references (one and two passes, strided, infinities)."""
import pytest
import torch

from flaggems.testing import assert_close, poisoned, run_gems
from flaggems.testing.strategies import make_tensor

FLOATS = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax(dtype, dim):
    x = make_tensor((6, 33, 5), dtype) * 4
    got, _ = run_gems(torch.softmax, x, dim, served=["_softmax.default"])
    assert_close(got, torch.softmax(x.double(), dim), dtype, reduce_len=x.shape[dim])
    got, _ = run_gems(torch.log_softmax, x, dim, served=["_log_softmax.default"])
    assert_close(got, torch.log_softmax(x.double(), dim), dtype, reduce_len=x.shape[dim])


def test_softmax_long_rows_two_pass_and_strided():
    x = make_tensor((3, 9000), torch.float32) * 10
    got, _ = run_gems(torch.softmax, x, -1, served=["_softmax.default"])
    assert_close(got, torch.softmax(x.double(), -1), torch.float32, reduce_len=9000)
    xt = make_tensor((40, 7), torch.bfloat16, "transposed")
    got, _ = run_gems(torch.softmax, xt, 0, served=["_softmax.default"])
    assert_close(got, torch.softmax(xt.double(), 0), torch.bfloat16, reduce_len=40)


def test_softmax_infinities_and_half_to_float():
    x = torch.tensor([[0.0, -float("inf"), 1.0], [-float("inf")] * 3, [float("inf"), 0.0, 1.0]])
    got, _ = run_gems(torch.softmax, x, -1, served=["_softmax.default"])
    want = torch.softmax(x, -1)
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert torch.allclose(got[0], want[0])
    h = make_tensor((4, 50), torch.float16)
    got, _ = run_gems(lambda: torch.ops.aten._softmax(h, 1, True), served=["_softmax.default"])
    assert got.dtype == torch.float32
    assert_close(got, torch.softmax(h.double(), 1), torch.float32, reduce_len=50)
    e = torch.empty(0, 5)
    got, _ = run_gems(torch.softmax, e, 1)
    assert got.shape == (0, 5)


def test_softmax_out_poisoned():
    x = make_tensor((5, 70), torch.float32)
    out = poisoned((5, 70), torch.float32)
    run_gems(lambda: torch.ops.aten._softmax.out(x, 1, False, out=out), served=["_softmax.out"])
    assert_close(out, torch.softmax(x.double(), 1), torch.float32, reduce_len=70)
