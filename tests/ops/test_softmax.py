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


@pytest.mark.parametrize("op", [torch.ops.aten._softmax, torch.ops.aten._log_softmax, torch.ops.aten._safe_softmax])
@pytest.mark.parametrize("shape, dim", [((3, 4), 2), ((3, 4), -3), ((), 1), ((), -2)])
def test_softmax_dim_out_of_range_raises_index_error(op, shape, dim):
    """Issue 13 finding 1: an out-of-range dim used to be taken modulo ndim; torch raises IndexError."""
    x = torch.randn(shape)
    args = (dim,) if op is torch.ops.aten._safe_softmax else (dim, False)
    with pytest.raises(IndexError, match="Dimension out of range"):
        op(x, *args)
    with pytest.raises(IndexError, match="Dimension out of range"):
        run_gems(op, x, *args)


def _autograd_ref(x, g, dim, log):
    """dx of (log_)softmax by autograd in fp64: the reference the backward kernels must match."""
    xd = x.detach().double().requires_grad_(True)
    y = torch.log_softmax(xd, dim) if log else torch.softmax(xd, dim)
    y.backward(g.double())
    return xd.grad


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, dim", [((6, 33, 5), -1), ((6, 33, 5), 1), ((4, 5000), 1), ((7,), 0), ((), 0)])
def test_softmax_backward_data(log, dtype, shape, dim):
    """Issue 13 finding 21: _softmax_backward_data / _log_softmax_backward_data served, against fp64 autograd."""
    x = make_tensor(shape, dtype) * 3
    g = make_tensor(shape, dtype)
    y = (torch.log_softmax if log else torch.softmax)(x, dim)
    op = torch.ops.aten._log_softmax_backward_data if log else torch.ops.aten._softmax_backward_data
    name = ("_log_softmax_backward_data" if log else "_softmax_backward_data") + ".default"
    got, _ = run_gems(op, g, y, dim, dtype, served=[name])
    assert got.dtype == dtype and got.shape == x.shape
    # the kernel sees y rounded to dtype: the reference differentiates at x, so allow the forward's rounding
    n = x.shape[dim] if x.dim() else 1
    assert_close(got, _autograd_ref(x, g, dim, log), dtype, reduce_len=n * 4)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_softmax_backward_through_autograd_and_out(log, dtype):
    """Autograd reaches the served backward ops (fp16 included); the .out twins agree with the functional op."""
    x = make_tensor((5, 40), dtype).requires_grad_(True)
    g = make_tensor((5, 40), dtype)
    fn = torch.log_softmax if log else torch.softmax
    name = "_log_softmax_backward_data" if log else "_softmax_backward_data"

    def run():
        x.grad = None
        fn(x, 1).backward(g)
        return x.grad.clone()
    got, _ = run_gems(run, served=[name + ".default"])
    assert_close(got, _autograd_ref(x, g, 1, log), dtype, reduce_len=160)
    y = fn(x.detach(), 1)
    op = getattr(torch.ops.aten, name)
    want, _ = run_gems(op, g, y, 1, dtype)
    out = poisoned((5, 40), dtype).t()    # strided out=: written through its strides
    kw = {"out": out} if log else {"grad_input": out}
    res, _ = run_gems(lambda: op.out(g, y, 1, dtype, **kw), served=[name + ".out"])
    assert res is out and torch.equal(out, want)


def test_softmax_backward_native_rules_kept():
    """Mixed dtypes and bad dims stay with torch (its CPU rules: an fp32 grad for a bf16 input returns fp32,
    for fp16 it raises); out-of-range dims raise IndexError."""
    g, y = torch.randn(3, 5), torch.softmax(torch.randn(3, 5), -1)
    op = torch.ops.aten._softmax_backward_data
    got, _ = run_gems(op, g, y, -1, torch.bfloat16)
    assert got.dtype == op(g, y, -1, torch.bfloat16).dtype
    with pytest.raises(RuntimeError):
        run_gems(op, g, y, -1, torch.float16)
    with pytest.raises(IndexError, match="Dimension out of range"):
        run_gems(op, g, y, 2, torch.float32)
    with pytest.raises(IndexError, match="Dimension out of range"):
        run_gems(torch.ops.aten._log_softmax_backward_data, g, y, -3, torch.float32)
