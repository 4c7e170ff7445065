"""aten::_scaled_mm, cpp kind (csrc/scaled_mm.cpp): blockwise 1x128 / 128x128 and MXFP8 / MXFP4 recipes against
the fp64 references of flaggems/ops/gemm/scaled.py and against the Triton implementation; every SIMD path."""
import pytest
import torch

import flaggems
from flaggems.formats import swizzle_scales
from flaggems.ops.gemm import scaled as S
from flaggems.testing import assert_close, run_gems

E4M3, E8M0, FP4 = torch.float8_e4m3fn, torch.float8_e8m0fnu, torch.float4_e2m1fn_x2
OUTS = [torch.bfloat16, torch.float32]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _fp8(shape, g):
    return (torch.randn(shape, generator=g) * 2.0).to(E4M3)


def _e8m0(shape, g, lo=122, hi=133):
    return torch.randint(lo, hi, shape, dtype=torch.uint8, generator=g).view(E8M0)


def _close(got, ref, k):
    if got.dtype == torch.float32:
        atol = 1e-6 * (k ** 0.5) * float(ref.abs().max()) + 1e-6
        assert_close(got, ref, torch.float32, rtol=1e-5, atol=atol)
    else:
        assert_close(got, ref, got.dtype, reduce_len=k)


def _cpp(*args, **kw):
    got, _ = run_gems(torch._scaled_mm, *args, served=["_scaled_mm"], kind="cpp", **kw)
    return got


def _triton(*args, **kw):
    with flaggems.prefer_impl("triton"):
        got, _ = run_gems(torch._scaled_mm, *args, served=["_scaled_mm"], kind="triton", **kw)
    return got


def _block_inputs(M, N, K, ra, rb, g):
    kb = -(-K // 128)
    a, b = _fp8((M, K), g), _fp8((N, K), g).t()          # b column-major [K, N], as torch expects
    sa = torch.rand((M, kb) if ra == S.BLOCK_1x128 else (-(-M // 128), kb), generator=g) + 0.25
    if rb == S.BLOCK_1x128:
        sb = (torch.rand((N, kb), generator=g) + 0.25).t()       # v1 1x128 scale_b [kb, N]
    else:
        sb = torch.rand((kb, -(-N // 128)), generator=g) + 0.25
    return a, b, sa, sb


def _mx_inputs(M, N, K, fp4, g):
    kg = K // 32
    if fp4:
        a = torch.randint(0, 256, (M, K // 2), dtype=torch.uint8, generator=g).view(FP4)
        b = torch.randint(0, 256, (N, K // 2), dtype=torch.uint8, generator=g).view(FP4).t()
    else:
        a, b = _fp8((M, K), g), _fp8((N, K), g).t()
    sa, sb = swizzle_scales(_e8m0((M, kg), g)), swizzle_scales(_e8m0((N, kg), g))
    return a, b, sa, sb


BLOCK_CASES = [(1, 257, 512, S.BLOCK_1x128, S.BLOCK_128x128), (5, 131, 256, S.BLOCK_1x128, S.BLOCK_128x128),
               (17, 70, 384, S.BLOCK_1x128, S.BLOCK_128x128), (3, 65, 256, S.BLOCK_1x128, S.BLOCK_1x128),
               (130, 33, 128, S.BLOCK_128x128, S.BLOCK_1x128)]


@pytest.mark.parametrize("M,N,K,ra,rb", BLOCK_CASES)
@pytest.mark.parametrize("out_dtype", OUTS)
def test_blockwise(isa, M, N, K, ra, rb, out_dtype):
    a, b, sa, sb = _block_inputs(M, N, K, ra, rb, _gen(M * 7 + N))
    bias = torch.randn(N, dtype=out_dtype, generator=_gen(1)) if M % 2 else None
    got = _cpp(a, b, sa, sb, bias=bias, out_dtype=out_dtype)
    assert got.dtype == out_dtype and got.shape == (M, N)
    _close(got, S.scaled_mm_ref(a, b, sa, sb, ra, rb, bias=bias, out_dtype=out_dtype), K)


@pytest.mark.parametrize("M,N,K,fp4", [(1, 33, 64, True), (1, 257, 512, True), (9, 45, 96, True),
                                       (1, 129, 256, False), (7, 31, 160, False), (130, 17, 64, True)])
@pytest.mark.parametrize("out_dtype", OUTS)
def test_mx(isa, M, N, K, fp4, out_dtype):
    a, b, sa, sb = _mx_inputs(M, N, K, fp4, _gen(M + N + K))
    bias = torch.randn(N, generator=_gen(2)) if N % 2 else None
    got = _cpp(a, b, sa, sb, bias=bias, out_dtype=out_dtype)
    ref = S.scaled_mm_ref(a, b, sa, sb, S.BLOCK_1x32, S.BLOCK_1x32, swizzle_a=True, swizzle_b=True, bias=bias,
                          out_dtype=out_dtype)
    _close(got, ref, K)


@pytest.mark.parametrize("kind", ["block", "mxfp4", "mxfp8"])
def test_matches_triton(kind):
    M, N, K = 3, 37, 256
    g = _gen(5)
    if kind == "block":
        a, b, sa, sb = _block_inputs(M, N, K, S.BLOCK_1x128, S.BLOCK_128x128, g)
    else:
        a, b, sa, sb = _mx_inputs(M, N, K, kind == "mxfp4", g)
    bias = torch.randn(N, generator=g)
    got = _cpp(a, b, sa, sb, bias=bias, out_dtype=torch.float32)
    want = _triton(a, b, sa, sb, bias=bias, out_dtype=torch.float32)
    _close(got, want.double(), K)


def test_out_overload_strided_b_and_nan_scale():
    g = _gen(9)
    a, b, sa, sb = _block_inputs(4, 40, 256, S.BLOCK_1x128, S.BLOCK_128x128, g)
    b_rowmajor = b.contiguous()                                   # any layout of mat2 is read correctly
    out = torch.full((4, 40), float("nan"), dtype=torch.bfloat16)
    run_gems(lambda: torch._scaled_mm(a, b_rowmajor, sa, sb, out_dtype=torch.bfloat16, out=out),
             served=["_scaled_mm.out"], kind="cpp")
    _close(out, S.scaled_mm_ref(a, b, sa, sb, S.BLOCK_1x128, S.BLOCK_128x128, out_dtype=torch.bfloat16), 256)
    a, b, sa, sb = _mx_inputs(2, 8, 64, True, g)
    sa.view(torch.uint8)[0] = 255                                 # e8m0 NaN scale -> NaN row, like the reference
    got = _cpp(a, b, sa, sb, out_dtype=torch.float32)
    assert torch.isnan(got[0]).all() and not torch.isnan(got[1]).any()


def test_unsupported_go_to_triton():
    """RowWise, K % 32 != 0 and fp8 outputs are not the cpp kernel's: the registry serves them with Triton."""
    g = _gen(3)
    a, b = _fp8((4, 48), g), _fp8((8, 48), g).t()
    sa, sb = torch.rand((4, 1), generator=g) + 0.5, torch.rand((1, 8), generator=g) + 0.5
    run_gems(torch._scaled_mm, a, b, sa, sb, out_dtype=torch.float32, served=["_scaled_mm"], kind="triton")
    kb = 1
    sa, sb = torch.rand((4, kb), generator=g) + 0.5, torch.rand((kb, 1), generator=g) + 0.5
    got, _ = run_gems(torch._scaled_mm, a, b, sa, sb, out_dtype=torch.float32, served=["_scaled_mm"], kind="triton")
    _close(got, S.scaled_mm_ref(a, b, sa, sb, S.BLOCK_1x128, S.BLOCK_128x128), 48)
    a, b, sa, sb = _block_inputs(2, 8, 128, S.BLOCK_1x128, S.BLOCK_128x128, g)
    run_gems(torch._scaled_mm, a, b, sa, sb, out_dtype=E4M3, served=["_scaled_mm"], kind="triton")
