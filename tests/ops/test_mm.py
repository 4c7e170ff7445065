"""mm / bmm / addmm against fp64 references: decode to prefill shapes, layouts, dtypes, edge cases."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flaggems.testing import assert_close, poisoned, run_gems
from flaggems.testing.strategies import make_tensor

FLOATS = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("m,n,k", [(1, 33, 70), (7, 64, 128), (16, 5, 3), (65, 17, 33), (130, 96, 40)])
def test_mm(dtype, m, n, k):
    a, b = make_tensor((m, k), dtype), make_tensor((k, n), dtype)
    got, _ = run_gems(torch.mm, a, b, served=["mm.default"])
    assert got.dtype == dtype and got.shape == (m, n)
    assert_close(got, a.double() @ b.double(), dtype, reduce_len=k)


@pytest.mark.parametrize("la,lb", [("transposed", "contiguous"), ("contiguous", "transposed"),
                                   ("strided", "transposed")])
def test_mm_layouts(la, lb):
    a, b = make_tensor((19, 45), torch.float32, la), make_tensor((45, 23), torch.float32, lb)
    got, _ = run_gems(torch.mm, a, b, served=["mm.default"])
    assert_close(got, a.double() @ b.double(), torch.float32, reduce_len=45)


def test_mm_empty_and_out():
    a, b = torch.empty(4, 0), torch.empty(0, 3)
    got, _ = run_gems(torch.mm, a, b, served=["mm.default"])
    assert torch.equal(got, torch.zeros(4, 3))
    got, _ = run_gems(torch.mm, torch.empty(0, 5), torch.randn(5, 3), served=["mm.default"])
    assert got.shape == (0, 3)
    a, b = make_tensor((9, 12), torch.bfloat16), make_tensor((12, 10), torch.bfloat16)
    out = poisoned((9, 10), torch.bfloat16)
    run_gems(lambda: torch.mm(a, b, out=out), served=["mm.out"])
    assert_close(out, a.double() @ b.double(), torch.bfloat16, reduce_len=12)


def test_mm_errors_like_torch():
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        run_gems(torch.mm, torch.randn(3, 4), torch.randn(5, 2))
    with pytest.raises(RuntimeError):
        run_gems(torch.mm, torch.randn(3, 4), torch.randn(4, 2, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bmm(dtype):
    a, b = make_tensor((3, 17, 30), dtype), make_tensor((3, 30, 9), dtype, "transposed")
    got, _ = run_gems(torch.bmm, a, b, served=["bmm.default"])
    assert_close(got, a.double() @ b.double(), dtype, reduce_len=30)
    out = poisoned((3, 17, 9), dtype)
    run_gems(lambda: torch.bmm(a, b, out=out), served=["bmm.out"])
    assert_close(out, a.double() @ b.double(), dtype, reduce_len=30)


@pytest.mark.parametrize("bias_shape", [(24,), (1, 24), (11, 24), (11, 1)])
@pytest.mark.parametrize("alpha,beta", [(1, 1), (0.5, 2.0), (1.0, 0.0)])
def test_addmm(bias_shape, alpha, beta):
    a, b = make_tensor((11, 40), torch.float32), make_tensor((40, 24), torch.float32)
    bias = make_tensor(bias_shape, torch.float32)
    if beta == 0:
        bias = torch.full(bias_shape, float("nan"))  # torch ignores self entirely when beta == 0
    got, _ = run_gems(torch.addmm, bias, a, b, alpha=alpha, beta=beta, served=["addmm.default"])
    want = alpha * (a.double() @ b.double()) + (beta * bias.double() if beta != 0 else 0)
    assert_close(got, want, torch.float32, reduce_len=40)


def test_linear_and_matmul_reach_our_kernels():
    lin = torch.nn.Linear(48, 20).to(torch.bfloat16)
    x = make_tensor((2, 5, 48), torch.bfloat16)
    with torch.no_grad():
        got, rep = run_gems(lin, x)
    assert rep.served_by("mm") or rep.served_by("addmm")
    want = x.double() @ lin.weight.double().t() + lin.bias.double()
    assert_close(got, want, torch.bfloat16, reduce_len=48)


@given(m=st.integers(1, 70), n=st.integers(1, 70), k=st.integers(1, 90),
       dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
       ta=st.booleans(), tb=st.booleans())
def test_mm_hypothesis(m, n, k, dtype, ta, tb):
    g = torch.Generator().manual_seed(m * 10007 + n * 101 + k)
    a = make_tensor((m, k), dtype, "transposed" if ta else "contiguous", generator=g)
    b = make_tensor((k, n), dtype, "transposed" if tb else "contiguous", generator=g)
    got, _ = run_gems(torch.mm, a, b, served=["mm.default"])
    assert_close(got, a.double() @ b.double(), dtype, reduce_len=k)
