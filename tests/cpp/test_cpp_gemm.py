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
