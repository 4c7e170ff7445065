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


# ------------------------------------------------------------------------------------------------------------
# mv / dot / vdot / addmv / baddbmm / addbmm: what matmul, einsum and backward formulas reach besides mm/bmm/addmm

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_mv_dot_vdot(dtype):
    a, v = make_tensor((19, 37), dtype, "transposed"), make_tensor((37,), dtype)
    got, _ = run_gems(torch.mv, a, v, served=["mv.default"])
    assert_close(got, a.double() @ v.double(), dtype, reduce_len=37)
    got, _ = run_gems(torch.matmul, a, v, served=["mv.default"])
    assert_close(got, a.double() @ v.double(), dtype, reduce_len=37)
    w = make_tensor((37,), dtype)
    for fn, name in ((torch.dot, "dot.default"), (torch.vdot, "vdot.default"), (torch.matmul, "dot.default")):
        got, _ = run_gems(fn, v, w, served=[name])
        assert got.shape == () and got.dtype == dtype
        assert_close(got, v.double() @ w.double(), dtype, reduce_len=37)
    out = poisoned((19,), dtype)
    run_gems(lambda: torch.mv(a, v, out=out), served=["mv.out"])
    assert_close(out, a.double() @ v.double(), dtype, reduce_len=37)


@pytest.mark.parametrize("bias_shape", [(13,), (1,)])
@pytest.mark.parametrize("alpha,beta", [(1, 1), (0.5, 2.0), (2.0, 0.0)])
def test_addmv(bias_shape, alpha, beta):
    a, v = make_tensor((13, 40), torch.float32), make_tensor((40,), torch.float32)
    bias = make_tensor(bias_shape, torch.float32) if beta else torch.full(bias_shape, float("nan"))
    got, _ = run_gems(torch.addmv, bias, a, v, alpha=alpha, beta=beta, served=["addmv.default"])
    want = alpha * (a.double() @ v.double()) + (beta * bias.double() if beta else 0)
    assert_close(got, want, torch.float32, reduce_len=40)
    out = poisoned((13,), torch.float32)
    run_gems(lambda: torch.addmv(bias, a, v, alpha=alpha, beta=beta, out=out), served=["addmv.out"])
    assert_close(out, want, torch.float32, reduce_len=40)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias_shape", [(3, 11, 9), (11, 1), (9,)])
def test_baddbmm(dtype, bias_shape):
    b1, b2 = make_tensor((3, 11, 30), dtype), make_tensor((3, 30, 9), dtype, "transposed")
    bias = make_tensor(bias_shape, dtype)
    got, _ = run_gems(torch.baddbmm, bias, b1, b2, alpha=0.5, beta=2.0, served=["baddbmm.default"])
    want = 2.0 * bias.double() + 0.5 * (b1.double() @ b2.double())
    assert_close(got, want, dtype, reduce_len=30)
    out = poisoned((3, 11, 9), dtype)
    run_gems(lambda: torch.baddbmm(bias, b1, b2, alpha=0.5, beta=2.0, out=out), served=["baddbmm.out"])
    assert_close(out, want, dtype, reduce_len=30)


def test_addbmm():
    b1, b2 = make_tensor((4, 7, 12), torch.float32), make_tensor((4, 12, 5), torch.float32)
    bias = make_tensor((7, 5), torch.float32)
    got, _ = run_gems(torch.addbmm, bias, b1, b2, alpha=1.5, beta=0.5, served=["addbmm.default"])
    want = 0.5 * bias.double() + 1.5 * (b1.double() @ b2.double()).sum(0)
    assert_close(got, want, torch.float32, reduce_len=48)
    out = poisoned((7, 5), torch.float32)
    run_gems(lambda: torch.addbmm(bias, b1, b2, alpha=1.5, beta=0.5, out=out), served=["addbmm.out"])
    assert_close(out, want, torch.float32, reduce_len=48)


@pytest.mark.parametrize("eq,shapes", [("bhqd,bhkd->bhqk", [(2, 3, 4, 16), (2, 3, 5, 16)]),
                                       ("bsd,de->bse", [(2, 4, 16), (16, 8)]), ("ij,j->i", [(4, 16), (16,)])])
def test_einsum_and_nd_matmul_reach_our_kernels(eq, shapes):
    ops = [make_tensor(s, torch.float32) for s in shapes]
    got, rep = run_gems(lambda *t: torch.einsum(eq, *t), *ops)
    served = {op for op in ("bmm", "mm", "mv") if op in {k.split("::")[-1].split(".")[0] for k in rep.ops}}
    assert served and all(rep.served_by(op) for op in served)
    assert_close(got, torch.einsum(eq, *[o.double() for o in ops]), torch.float32, reduce_len=16)
    x, w = make_tensor((2, 3, 4, 16), torch.float32), make_tensor((2, 3, 16, 8), torch.float32)
    got, _ = run_gems(torch.matmul, x, w, served=["bmm.default"])
    assert_close(got, x.double() @ w.double(), torch.float32, reduce_len=16)


def test_dense_family_errors_like_torch():
    with pytest.raises(RuntimeError):
        run_gems(torch.mv, torch.randn(3, 4), torch.randn(5))
    with pytest.raises(RuntimeError):
        run_gems(torch.dot, torch.randn(3), torch.randn(4))
    with pytest.raises(RuntimeError):
        run_gems(torch.baddbmm, torch.randn(2, 3, 3), torch.randn(2, 3, 4), torch.randn(2, 5, 3))
