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


@pytest.mark.parametrize("n", [7, 9000])   # one pass and two passes
def test_safe_softmax_fully_masked_rows_give_zeros(n):
    """aten::_safe_softmax (SDPA's math path): rows of all -inf give 0 (softmax gives NaN), others as softmax;
    NaN rows stay NaN."""
    x = make_tensor((5, n), torch.float32) * 4
    x[1] = -float("inf")
    x[2, : n // 2] = -float("inf")
    x[3, 0] = float("nan")
    got, _ = run_gems(lambda: torch.ops.aten._safe_softmax(x, -1), served=["_safe_softmax.default"])
    want = torch.ops.aten._safe_softmax(x, -1)
    assert torch.equal(got[1], torch.zeros(n)) and torch.isnan(got[3]).all() and torch.isnan(want[3]).all()
    keep = torch.tensor([0, 2, 4])
    assert_close(got[keep], torch.softmax(x[keep].double(), -1), torch.float32, reduce_len=n)


@pytest.mark.parametrize("dtype,to", [(torch.bfloat16, None), (torch.bfloat16, torch.float32),
                                      (torch.float32, torch.bfloat16)])
def test_safe_softmax_dtype(dtype, to):
    x = make_tensor((3, 4, 20), dtype) * 3
    x[0, 1] = -float("inf")
    got, _ = run_gems(lambda: torch.ops.aten._safe_softmax(x, 2, to), served=["_safe_softmax.default"])
    want = torch.ops.aten._safe_softmax(x, 2, to)
    assert got.dtype == want.dtype
    assert torch.equal(got[0, 1], torch.zeros(20, dtype=got.dtype))
    assert_close(got, torch.softmax(x.to(to or dtype).double(), 2).nan_to_num(0.0), got.dtype, reduce_len=20)
