"""aten::_grouped_mm in its four modes against an fp64 reference and torch's CPU kernel; bad input raises."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import flaggems
from flaggems.ops.gemm import grouped as G  # noqa: F401  (declares the op)
from flaggems.testing import assert_close, run_gems
from flaggems.testing.strategies import make_tensor

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _offs(sizes, device="cpu"):
    return torch.tensor(sizes, dtype=torch.int32, device=device).cumsum(0, dtype=torch.int32)


def _weights(g, k, n, dtype, transposed, gen=None):
    """[g, k, n] expert weights, optionally column-major (a transposed view of [g, n, k], as transformers uses)."""
    if transposed:
        return make_tensor((g, n, k), dtype, generator=gen).transpose(1, 2)
    return make_tensor((g, k, n), dtype, generator=gen)


def _call(a, b, offs=None):
    return torch._grouped_mm(a, b, offs) if offs is not None else torch._grouped_mm(a, b)


def _check(a, b, offs, dtype, k):
    got, _ = run_gems(_call, a, b, offs, served=["_grouped_mm"])
    want = G.grouped_mm_ref(a, b, offs).double()
    assert got.dtype == dtype
    assert_close(got, want, dtype, reduce_len=k)
    return got


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transposed", [False, True])
def test_2d_3d_moe_forward(dtype, transposed):
    # empty groups (first, middle, last), a group of one row, K and N not multiples of any tile
    sizes = [0, 5, 1, 0, 19, 0]
    offs = _offs(sizes)
    a = make_tensor((25, 72), dtype)
    b = _weights(len(sizes), 72, 40, dtype, transposed)
    got = _check(a, b, offs, dtype, 72)
    # torch's own CPU kernel on the rows it defines
    native = torch._grouped_mm(a, b, offs)
    assert_close(got, native.double(), dtype, reduce_len=72)


def test_2d_3d_rows_past_last_offset_are_zero():
    a = make_tensor((30, 24), torch.float32)
    b = make_tensor((3, 24, 16), torch.float32)
    offs = _offs([4, 0, 9])                       # 13 of 30 rows grouped (EP sentinel / padding rows)
    got, _ = run_gems(_call, a, b, offs, served=["_grouped_mm"])
    assert torch.equal(got[13:], torch.zeros(17, 16))
    assert_close(got[:13], G.grouped_mm_ref(a, b, offs)[:13].double(), torch.float32, reduce_len=24)


@pytest.mark.parametrize("dtype", DTYPES)
def test_2d_2d_weight_gradient(dtype):
    # A [M, K_total] (column-major, as x.t() in the backward), B [K_total, N]; groups split K
    sizes = [6, 0, 1, 23]
    offs = _offs(sizes)
    a = make_tensor((30, 24), dtype).t()
    b = make_tensor((30, 40), dtype)
    got = _check(a, b, offs, dtype, 23)
    assert torch.equal(got[1], torch.zeros(24, 40, dtype=dtype))      # empty group -> zero matrix
    assert_close(got, torch._grouped_mm(a, b, offs).double(), dtype, reduce_len=23)


@pytest.mark.parametrize("dtype", DTYPES)
def test_3d_2d(dtype):
    sizes = [9, 0, 1, 30]
    offs = _offs(sizes)
    a = make_tensor((4, 17, 40), dtype)
    b = make_tensor((48, 40), dtype).t()          # [K, N_total], column-major
    got = _check(a, b, offs, dtype, 40)
    assert torch.equal(got[:, 40:], torch.zeros(17, 8, dtype=dtype))   # columns past offs[-1]
    assert_close(got[:, :40], torch._grouped_mm(a, b, offs)[:, :40].double(), dtype, reduce_len=40)


@pytest.mark.parametrize("dtype", DTYPES)
def test_3d_3d_batched(dtype):
    a = make_tensor((3, 13, 40), dtype)
    b = _weights(3, 40, 24, dtype, True)
    got = _check(a, b, None, dtype, 40)
    assert got.shape == (3, 13, 24)


def test_output_layout_matches_torch():
    a, b = make_tensor((10, 16), torch.bfloat16), make_tensor((2, 7, 16), torch.bfloat16).transpose(1, 2)
    offs = _offs([4, 6])
    got, _ = run_gems(_call, a, b, offs, served=["_grouped_mm"])
    assert got.stride() == torch._grouped_mm(a, b, offs).stride()


def test_autograd_through_grouped_mm():
    """Forward and both backward products (2Dx3D for dA, 2Dx2D for dB) are served and match torch."""
    a = make_tensor((21, 32), torch.float32).requires_grad_()
    b = make_tensor((3, 32, 24), torch.float32).requires_grad_()
    offs = _offs([8, 0, 13])
    grad = make_tensor((21, 24), torch.float32)

    def fwd_bwd():
        out = torch._grouped_mm(a, b, offs)
        out.backward(grad)
        return out

    out, rep = run_gems(fwd_bwd, served=["_grouped_mm"])
    ga, gb = a.grad.clone(), b.grad.clone()
    assert rep._find("_grouped_mm")["served"]
    a.grad = b.grad = None
    fwd_bwd()
    assert_close(ga, a.grad.double(), torch.float32, reduce_len=24)
    assert_close(gb, b.grad.double(), torch.float32, reduce_len=21)


def test_device_offsets_are_not_read_on_host(monkeypatch):
    """The launcher never syncs on offs: with the host check bypassed, offsets past M are clamped in-kernel."""
    monkeypatch.setattr(G, "_host_checkable", lambda t: False)
    a, b = make_tensor((8, 16), torch.float32), make_tensor((2, 16, 8), torch.float32)
    offs = torch.tensor([5, 1000], dtype=torch.int32)
    got, _ = run_gems(_call, a, b, offs, served=["_grouped_mm"])
    assert_close(got, G.grouped_mm_ref(a, b, torch.tensor([5, 8], dtype=torch.int32)).double(), torch.float32,
                 reduce_len=16)
    offs = torch.tensor([6, 2], dtype=torch.int32)          # decreasing: defined, finite, in bounds
    got, _ = run_gems(_call, a, b, offs, served=["_grouped_mm"])
    assert torch.isfinite(got).all()


# ------------------------------------------------------------------------------------------------------------
# bad input -> the error torch raises (its kernel raises it: our predicate declines) or, for offsets torch does
# not check, a RuntimeError from us

@pytest.mark.parametrize("case", ["k_mismatch", "offs_int64", "bias", "out_dtype", "batch", "fp64", "mixed",
                                  "no_offs", "offs_3d3d"])
def test_bad_input_raises_like_torch(case):
    a, b = torch.randn(8, 16, dtype=torch.bfloat16), torch.randn(2, 16, 8, dtype=torch.bfloat16)
    offs = _offs([3, 5])
    args = {
        "k_mismatch": (a[:, :8], b, offs), "offs_int64": (a, b, offs.long()),
        "batch": (a, b[:1], offs), "fp64": (a.double(), b.double(), offs),
        "mixed": (a.half(), b, offs), "no_offs": (a, b, None), "offs_3d3d": (a.view(2, 4, 16), b, offs),
    }
    kwargs = {}
    if case == "bias":
        args[case], kwargs = (a, b, offs), {"bias": torch.zeros(2, 8, dtype=torch.bfloat16)}
    if case == "out_dtype":
        args[case], kwargs = (a, b, offs), {"out_dtype": torch.float32}
    with pytest.raises(RuntimeError):
        torch._grouped_mm(*args[case], **kwargs)           # torch raises ...
    with pytest.raises(RuntimeError):
        with flaggems.use_gems():                           # ... and so does flaggems
            torch._grouped_mm(*args[case], **kwargs)


@pytest.mark.parametrize("offs", [[5, 3], [3, 9], [-1, 8]])
def test_invalid_offsets_raise(offs):
    a, b = torch.randn(8, 16), torch.randn(2, 16, 8)
    with pytest.raises(RuntimeError, match="offs"):
        with flaggems.use_gems():
            torch._grouped_mm(a, b, torch.tensor(offs, dtype=torch.int32))
    with pytest.raises(RuntimeError, match="offs"):
        with flaggems.use_gems():
            torch._grouped_mm(torch.randn(8, 4).t(), torch.randn(8, 4), torch.tensor(offs, dtype=torch.int32))


# ------------------------------------------------------------------------------------------------------------

@given(sizes=st.lists(st.integers(0, 9), min_size=1, max_size=5), extra=st.integers(0, 3),
       k=st.integers(1, 70), n=st.integers(1, 40), dtype=st.sampled_from(DTYPES),
       mode=st.sampled_from(["2d3d", "2d2d", "3d2d"]), transposed=st.booleans())
def test_grouped_mm_hypothesis(sizes, extra, k, n, dtype, mode, transposed):
    gen = torch.Generator().manual_seed(sum(sizes) * 1009 + k * 31 + n)
    g = len(sizes)
    offs = _offs(sizes)
    total = int(offs[-1]) + extra
    if mode == "2d3d":
        a = make_tensor((total, k), dtype, generator=gen)
        b = _weights(g, k, n, dtype, transposed, gen)
        red = k
    elif mode == "2d2d":
        a = make_tensor((total, k), dtype, generator=gen).t()          # [k, total]: K grouped
        b = make_tensor((total, n), dtype, generator=gen)
        red = max(sizes + [1])
    else:
        a = make_tensor((g, n, k), dtype, generator=gen)
        b = make_tensor((total, k), dtype, generator=gen).t() if transposed else make_tensor((k, total), dtype, generator=gen)
        red = k
    got, _ = run_gems(_call, a, b, offs, served=["_grouped_mm"])
    assert_close(got, G.grouped_mm_ref(a, b, offs).double(), dtype, reduce_len=red)
