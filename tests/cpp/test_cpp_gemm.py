"""fp8_gemm / fp4_gemm: C++ (every SIMD path) and Triton against the fp64 references."""
import pytest
import torch

from flaggems.cpp import fp4_gemm_cpp, fp8_gemm_cpp
from flaggems.ops.gemm.fp4_gemm import fp4_gemm_ref
from flaggems.ops.gemm.fp8_gemm import fp8_gemm_ref
from flaggems.testing import assert_close

from .conftest import KINDS, run_op

E8 = torch.float8_e8m0fnu


def _e8m0(shape, g, lo=118, hi=134):
    return torch.randint(lo, hi, shape, generator=g, dtype=torch.uint8).view(E8)


def _fp8(shape, g):
    return (torch.randn(shape, generator=g) * 64).clamp(-448, 448).to(torch.float8_e4m3fn)


def make_fp8(M, N, K, e8m0=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    kb, nb = -(-K // 128), -(-N // 128)
    a, b = _fp8((M, K), g), _fp8((N, K), g)
    if e8m0:
        return a, _e8m0((M, kb), g), b, _e8m0((nb, kb), g)
    return a, torch.rand((M, kb), generator=g) + 0.5, b, torch.rand((nb, kb), generator=g) + 0.5


def make_fp4(M, N, K, e8m0=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = _fp8((M, K), g)
    a_s = _e8m0((M, -(-K // 128)), g) if e8m0 else torch.rand((M, -(-K // 128)), generator=g) + 0.5
    b = torch.randint(0, 256, (N, K // 2), generator=g, dtype=torch.uint8)
    return a, a_s, b, _e8m0((N, -(-K // 32)), g)


def check(out, ref, K):
    # fp32 accumulation in another order than the fp64 reference: error ~ sqrt(K) ulp of the magnitude
    scale = ref.abs().max().item() or 1.0
    assert_close(out.float(), ref.float(), torch.float32, rtol=1e-5, atol=2e-6 * scale * max(1, K) ** 0.5)


SHAPES = [(1, 256, 512), (3, 130, 200), (16, 64, 384), (17, 77, 96), (40, 33, 34)]


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("e8m0", [True, False])
def test_fp8_gemm_cpp(isa, M, N, K, e8m0):
    a, a_s, b, b_s = make_fp8(M, N, K, e8m0)
    check(fp8_gemm_cpp(a, a_s, b, b_s, torch.float32), fp8_gemm_ref(a, a_s, b, b_s, torch.float32), K)


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("e8m0", [True, False])
def test_fp4_gemm_cpp(isa, M, N, K, e8m0):
    a, a_s, b, b_s = make_fp4(M, N, K, e8m0)
    check(fp4_gemm_cpp(a, a_s, b, b_s, torch.float32), fp4_gemm_ref(a, a_s, b, b_s, torch.float32), K)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("out_dtype", [None, torch.float32])
def test_fp8_gemm_kinds(kind, out_dtype):
    a, a_s, b, b_s = make_fp8(5, 144, 256, seed=1)
    a, a_s = a.view(1, 5, 256), a_s.view(1, 5, 2)  # leading dims are kept
    out = run_op("fp8_gemm", kind, a, a_s, b, b_s, out_dtype)
    ref = fp8_gemm_ref(a, a_s, b, b_s, out_dtype)
    assert out.shape == (1, 5, 144) and out.dtype == ref.dtype
    if out.dtype == torch.float32:
        check(out, fp8_gemm_ref(a, a_s, b, b_s, torch.float32), 256)
    else:
        assert_close(out, fp8_gemm_ref(a, a_s, b, b_s, torch.float32))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bdtype", [torch.float4_e2m1fn_x2, torch.int8])
def test_fp4_gemm_kinds(kind, bdtype):
    a, a_s, b, b_s = make_fp4(4, 96, 256, seed=2)
    b = b.view(bdtype)
    out = run_op("fp4_gemm", kind, a, a_s, b, b_s, torch.bfloat16)
    assert_close(out, fp4_gemm_ref(a, a_s, b, b_s, torch.float32), torch.bfloat16)


def test_gemm_nan_scale_and_bf16_out():
    a, a_s, b, b_s = make_fp8(2, 128, 256, seed=3)
    b_s.view(torch.uint8)[0, 1] = 255  # E8M0 NaN
    out = fp8_gemm_cpp(a, a_s, b, b_s, torch.bfloat16)
    assert out.dtype == torch.bfloat16 and torch.isnan(out).all()
    a, a_s, b, b_s = make_fp4(2, 8, 64, seed=3)
    b_s.view(torch.uint8)[3, 0] = 255
    out = fp4_gemm_cpp(a, a_s, b, b_s, torch.float32)
    assert torch.isnan(out[:, 3]).all() and not torch.isnan(out[:, :3]).any()


def test_gemm_decode_shape_threads():
    # a decode-shaped call split over threads (N panels) gives the same result with 1 thread
    a, a_s, b, b_s = make_fp8(1, 1024, 1024, seed=4)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fp8_gemm_cpp(a, a_s, b, b_s, torch.float32)
        torch.set_num_threads(max(2, n))
        many = fp8_gemm_cpp(a, a_s, b, b_s, torch.float32)
    finally:
        torch.set_num_threads(n)
    assert torch.equal(one, many)


def test_gemm_empty():
    a, a_s, b, b_s = make_fp8(0, 128, 128)
    assert fp8_gemm_cpp(a, a_s, b, b_s).shape == (0, 128)


# The decode kernel (csrc/gemm_decode_body.h, M <= 8 on AVX2 / AVX-512) and the panel kernel (M > 8): every
# row count of a decode batch, N not a multiple of the 4-row blocks / 8-row thread units / 128-row scale
# groups, K not a multiple of the 32 / 64 / 128 steps (the zero-padded tail step).
@pytest.mark.parametrize("M", list(range(1, 17)))
@pytest.mark.parametrize("N,K", [(37, 130), (131, 64), (9, 322)])
def test_fp8_gemm_decode_rows(isa, M, N, K):
    for e8m0 in (True, False):
        a, a_s, b, b_s = make_fp8(M, N, K, e8m0, seed=M)
        check(fp8_gemm_cpp(a, a_s, b, b_s, torch.float32), fp8_gemm_ref(a, a_s, b, b_s, torch.float32), K)


@pytest.mark.parametrize("M", list(range(1, 17)))
@pytest.mark.parametrize("N,K", [(37, 130), (131, 64), (9, 322), (6, 2)])
def test_fp4_gemm_decode_rows(isa, M, N, K):
    for e8m0 in (True, False):
        a, a_s, b, b_s = make_fp4(M, N, K, e8m0, seed=M)
        check(fp4_gemm_cpp(a, a_s, b, b_s, torch.float32), fp4_gemm_ref(a, a_s, b, b_s, torch.float32), K)


@pytest.mark.parametrize("M", [1, 3, 8, 12])
def test_gemm_nan_inputs(isa, M):
    # e4m3 NaN bytes (0x7f, 0xff) in the weight make their whole output column NaN, in A their row; e2m1 has no
    # NaN; an E8M0 NaN weight scale poisons its column. Everything else stays finite.
    a, a_s, b, b_s = make_fp8(M, 70, 300, seed=5)
    b.view(torch.uint8)[3, 299] = 0x7F     # in the zero-padded tail step
    b.view(torch.uint8)[64, 5] = 0xFF
    out = fp8_gemm_cpp(a, a_s, b, b_s, torch.float32)
    nan_cols = torch.zeros(70, dtype=torch.bool)
    nan_cols[[3, 64]] = True
    assert torch.isnan(out[:, nan_cols]).all() and not torch.isnan(out[:, ~nan_cols]).any()
    ref = fp8_gemm_ref(a, a_s, b, b_s, torch.float32)
    assert torch.isnan(ref[:, nan_cols]).all()
    check(out[:, ~nan_cols], ref[:, ~nan_cols], 300)
    a.view(torch.uint8)[M - 1, 7] = 0x7F
    out = fp8_gemm_cpp(a, a_s, b, b_s, torch.float32)
    assert torch.isnan(out[M - 1]).all() and not torch.isnan(out[: M - 1, ~nan_cols]).any()
    a, a_s, b, b_s = make_fp4(M, 40, 200, seed=6)
    b_s.view(torch.uint8)[17, 6] = 255      # the last, partial 32-block
    a.view(torch.uint8)[0, 150] = 0xFF
    out = fp4_gemm_cpp(a, a_s, b, b_s, torch.float32)
    assert torch.isnan(out[:, 17]).all() and torch.isnan(out[0]).all()
    rest = out[1:, torch.arange(40) != 17]
    assert not torch.isnan(rest).any()


@pytest.mark.parametrize("fp4", [False, True])
def test_gemm_decode_threads(fp4):
    # the decode kernel splits N over threads in 8-row units (fp8: across 128-row scale groups): one thread and
    # many give the same bits
    make = make_fp4 if fp4 else make_fp8
    fn = fp4_gemm_cpp if fp4 else fp8_gemm_cpp
    a, a_s, b, b_s = make(3, 1000, 512, seed=7)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fn(a, a_s, b, b_s, torch.float32)
        torch.set_num_threads(max(3, n))
        many = fn(a, a_s, b, b_s, torch.float32)
    finally:
        torch.set_num_threads(n)
    assert torch.equal(one, many)


def test_gemm_k_zero():
    for M in (1, 12):
        a = torch.zeros(M, 0, dtype=torch.float8_e4m3fn)
        a_s = torch.zeros(M, 0)
        out = fp8_gemm_cpp(a, a_s, torch.zeros(5, 0, dtype=torch.float8_e4m3fn), torch.zeros(1, 0), torch.float32)
        assert out.shape == (M, 5) and (out == 0).all()
        out = fp4_gemm_cpp(a, a_s, torch.zeros(5, 0, dtype=torch.uint8), torch.zeros(5, 0, dtype=E8), torch.bfloat16)
        assert out.shape == (M, 5) and (out == 0).all()


# fp4 with bf16 dot products (csrc/gemm_bf16_body.h): e2m1 and a * a_s (E8M0) are exact bf16, so only the fp32
# summation order changes -> the fp32 tolerance of `check` still holds.
@pytest.mark.parametrize("M", list(range(1, 10)))
@pytest.mark.parametrize("N,K", [(37, 130), (131, 64), (9, 322), (6, 2), (20, 1024)])
def test_fp4_gemm_bf16_dot(bf16_dot, M, N, K):
    from flaggems.cpp import lib

    assert lib().lowp_path(True, M, 1, 1) == ("decode-bf16" if M <= 8 else "panel")
    a, a_s, b, b_s = make_fp4(M, N, K, True, seed=M)
    check(fp4_gemm_cpp(a, a_s, b, b_s, torch.float32), fp4_gemm_ref(a, a_s, b, b_s, torch.float32), K)
    # fp32 activation scales keep the fp32 kernel (a * a_s is not a bf16 in general)
    assert lib().lowp_path(True, M, 0, 1) == ("decode" if M <= 8 else "panel")
    a, a_s, b, b_s = make_fp4(M, N, K, False, seed=M)
    check(fp4_gemm_cpp(a, a_s, b, b_s, torch.float32), fp4_gemm_ref(a, a_s, b, b_s, torch.float32), K)


def test_fp4_gemm_bf16_dot_denormal_and_nan(bf16_dot):
    # a * a_s below the smallest normal float: vdpbf16ps would flush it to zero, so the call must fall back to
    # the fp32 kernel. Made significant by the largest weight scale on that block: a lost term shows.
    a, a_s, b, b_s = make_fp4(2, 24, 256, True, seed=8)
    a_s.view(torch.uint8)[:, 1] = 1                 # 2^-126
    a[:, 128:].fill_(0.5)                            # a * a_s = 2^-127
    a[:, :128].fill_(0.0)                            # the output is that block alone: a flushed term shows
    b_s.view(torch.uint8)[:, 4:8] = 254             # 2^127 on the same 128 columns of K
    out = fp4_gemm_cpp(a, a_s, b, b_s, torch.float32)
    ref = fp4_gemm_ref(a, a_s, b, b_s, torch.float32)
    check(out, ref, 256)
    a_s.view(torch.uint8)[1, 1] = 255               # NaN activation scale: row 1 NaN, row 0 finite
    out = fp4_gemm_cpp(a, a_s, b, b_s, torch.float32)
    assert torch.isnan(out[1]).all() and not torch.isnan(out[0]).any()


# fp8 with bf16 dot products: e4m3 and a * a_s * b_s (E8M0 both) are exact bf16 -> the fp32 tolerance holds
@pytest.mark.parametrize("M", list(range(1, 10)))
@pytest.mark.parametrize("N,K", [(37, 130), (131, 64), (9, 322), (300, 1024)])
def test_fp8_gemm_bf16_dot(bf16_dot, M, N, K):
    from flaggems.cpp import lib

    assert lib().lowp_path(False, M, 1, 1) == ("decode-bf16" if M <= 8 else "panel")
    a, a_s, b, b_s = make_fp8(M, N, K, True, seed=M)
    check(fp8_gemm_cpp(a, a_s, b, b_s, torch.float32), fp8_gemm_ref(a, a_s, b, b_s, torch.float32), K)
    assert lib().lowp_path(False, M, 1, 0) == ("decode" if M <= 8 else "panel")   # fp32 scales: fp32 kernel
    a, a_s, b, b_s = make_fp8(M, N, K, False, seed=M)
    check(fp8_gemm_cpp(a, a_s, b, b_s, torch.float32), fp8_gemm_ref(a, a_s, b, b_s, torch.float32), K)


def test_fp8_gemm_bf16_dot_nan_and_denormal(bf16_dot):
    # NaN weight bytes decode to bf16 NaN (no scan on this path): their columns, and only those, are NaN
    a, a_s, b, b_s = make_fp8(3, 140, 300, True, seed=9)
    b.view(torch.uint8)[5, 7] = 0x7F
    b.view(torch.uint8)[139, 299] = 0xFF
    out = fp8_gemm_cpp(a, a_s, b, b_s, torch.float32)
    nan_cols = torch.zeros(140, dtype=torch.bool)
    nan_cols[[5, 139]] = True
    assert torch.isnan(out[:, nan_cols]).all() and not torch.isnan(out[:, ~nan_cols]).any()
    check(out[:, ~nan_cols], fp8_gemm_ref(a, a_s, b, b_s, torch.float32)[:, ~nan_cols], 300)
    # a * a_s * b_s below the smallest normal float everywhere (vdpbf16ps would flush all of it): the groups
    # fall back to the fp32 tiles and the (tiny) result is still right
    a, a_s, b, b_s = make_fp8(2, 130, 256, True, seed=10)
    a_s.view(torch.uint8).fill_(1)                  # 2^-126
    b_s.view(torch.uint8).fill_(126)                # 2^-1
    out = fp8_gemm_cpp(a, a_s, b, b_s, torch.float32)
    ref = fp8_gemm_ref(a, a_s, b, b_s, torch.float32)
    assert ref.abs().max() > 0
    check(out, ref, 256)
