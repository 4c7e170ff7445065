"""_scaled_mm / _scaled_mm_v2 / _scaled_grouped_mm: torch's CPU kernel where it exists (tensorwise, rowwise),
fp64 dequantise-then-matmul references for the recipes torch's CPU rejects (blockwise, MXFP8, MXFP4, NVFP4)."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import flaggems
from flaggems import registry
from flaggems.formats import swizzle_scales, unpack_fp4_ref, unswizzle
from flaggems.ops.gemm import scaled as S
from flaggems.ops.gemm.plan import launch
from flaggems.testing import assert_close, run_gems

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
E8M0 = torch.float8_e8m0fnu
FP4 = torch.float4_e2m1fn_x2
HAS_V2 = registry.aten_op_exists("aten::_scaled_mm_v2")
needs_v2 = pytest.mark.skipif(not HAS_V2, reason="this torch has no aten::_scaled_mm_v2")


def _cdiv(a, b):
    return -(-a // b)


def _fp8(shape, dtype=E4M3, gen=None, scale=2.0):
    return (torch.randn(shape, generator=gen) * scale).to(dtype)


def _e8m0(shape, gen=None, lo=122, hi=133):
    return torch.randint(lo, hi, shape, dtype=torch.uint8, generator=gen).view(E8M0)


def _fp4(shape, gen=None):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen).view(FP4)


def _pos(shape, gen=None):
    return torch.rand(shape, generator=gen) + 0.25


def _close(got, ref, k):
    """Exact products, fp32 sums: allow fp32 rounding of a k-term sum (relative to the largest output)."""
    atol = 1e-6 * (k ** 0.5) * float(ref.abs().max()) + 1e-6 if ref.numel() else 1e-6
    if got.dtype in (torch.bfloat16, torch.float16, E4M3, E5M2):
        # the kernel's fp32 result rounds to the output dtype like the reference does (ties may differ by 1 ulp)
        assert_close(got, ref, got.dtype, reduce_len=k)
    else:
        assert_close(got, ref, torch.float32, rtol=1e-5, atol=atol)


# ------------------------------------------------------------------------------------------------------------
# tensorwise / rowwise: against torch's own CPU kernel

@pytest.mark.parametrize("ta,tb", [(E4M3, E4M3), (E4M3, E5M2), (E5M2, E4M3), (E5M2, E5M2)])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16, torch.float32, None])
def test_tensorwise_matches_torch(ta, tb, out_dtype):
    a, b = _fp8((20, 72), ta), _fp8((24, 72), tb).t()
    sa, sb = torch.tensor(0.75), torch.tensor(1.5)
    got, _ = run_gems(torch._scaled_mm, a, b, sa, sb, out_dtype=out_dtype, served=["_scaled_mm"])
    want = torch._scaled_mm(a, b, sa, sb, out_dtype=out_dtype)
    assert got.dtype == want.dtype
    _close(got, S.scaled_mm_ref(a, b, sa, sb, 0, 0, out_dtype=out_dtype), 72)
    if got.element_size() == 1:
        assert torch.equal(got.float(), want.float())
    else:
        assert_close(got, want.double(), got.dtype, reduce_len=72)


@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float32])
def test_rowwise_bias_matches_torch(out_dtype):
    a, b = _fp8((33, 48)), _fp8((40, 48)).t()
    sa, sb = _pos((33, 1)), _pos((1, 40))
    bias = torch.randn(40, dtype=torch.bfloat16 if out_dtype == torch.bfloat16 else torch.float32)
    got, _ = run_gems(torch._scaled_mm, a, b, sa, sb, bias=bias, out_dtype=out_dtype, served=["_scaled_mm"])
    want = torch._scaled_mm(a, b, sa, sb, bias=bias, out_dtype=out_dtype)
    # scales applied after the fp32 sum (torch scales first): the two may round one output ulp apart
    assert_close(got, want.double(), out_dtype, reduce_len=48)
    _close(got, S.scaled_mm_ref(a, b, sa, sb, S.ROWWISE, S.ROWWISE, bias=bias, out_dtype=out_dtype), 48)


def test_fp8_output_with_scale_result_matches_torch():
    a, b = _fp8((16, 32)), _fp8((24, 32)).t()
    one, sr = torch.tensor(1.0), torch.tensor(4.0)
    for od in (E4M3, E5M2):
        got, _ = run_gems(torch._scaled_mm, a, b, one, one, scale_result=sr, out_dtype=od, served=["_scaled_mm"])
        want = torch._scaled_mm(a, b, one, one, scale_result=sr, out_dtype=od)
        assert torch.equal(got.float(), want.float())


def test_out_overload_and_empty():
    a, b = _fp8((9, 32)), _fp8((12, 32)).t()
    one = torch.tensor(1.0)
    out = torch.full((9, 12), float("nan"), dtype=torch.bfloat16)
    run_gems(lambda: torch._scaled_mm(a, b, one, one, out_dtype=torch.bfloat16, out=out), served=["_scaled_mm.out"])
    _close(out, S.scaled_mm_ref(a, b, one, one, 0, 0), 32)
    z, _ = run_gems(torch._scaled_mm, a[:, :0], b[:0], one, one, out_dtype=torch.float32, served=["_scaled_mm"])
    assert torch.equal(z, torch.zeros(9, 12))


# ------------------------------------------------------------------------------------------------------------
# blockwise (DeepSeek recipes); torch's CPU kernel rejects them

BLOCK_PAIRS = [(S.BLOCK_1x128, S.BLOCK_128x128), (S.BLOCK_128x128, S.BLOCK_1x128), (S.BLOCK_1x128, S.BLOCK_1x128)]


def _block_scales(recipe, rows, K, api, operand, gen=None):
    kb = _cdiv(K, 128)
    if recipe == S.BLOCK_1x128:
        s = _pos((rows, kb), gen)
        s = s.t().contiguous().t()                       # outer-dim-major, as torch's CUDA kernel wants
        return s.t() if (api == "v1" and operand == "b") else s
    s = _pos((_cdiv(rows, 128), kb), gen)
    if api == "v1":
        return s.t() if operand == "b" else s           # v1: A [rb, kb], B [kb, rb]
    padded = torch.zeros(_cdiv(rows, 128), _cdiv(kb, 4) * 4)
    padded[:, :kb] = s
    return padded.t()                                    # v2: [L4, rb]


@pytest.mark.parametrize("ra,rb", BLOCK_PAIRS)
@pytest.mark.parametrize("api", ["v1", pytest.param("v2", marks=needs_v2)])
def test_blockwise(ra, rb, api):
    M, K, N = 150, 300, 136                               # nothing a multiple of 128
    a, b = _fp8((M, K)), _fp8((N, K)).t()
    sa, sb = _block_scales(ra, M, K, api, "a"), _block_scales(rb, N, K, api, "b")
    if api == "v1":
        got, _ = run_gems(torch._scaled_mm, a, b, sa, sb, out_dtype=torch.float32, served=["_scaled_mm"])
    else:
        got, _ = run_gems(F.scaled_mm, a, b, sa, F.ScalingType(ra), sb, F.ScalingType(rb),
                          output_dtype=torch.float32, served=["_scaled_mm_v2"])
    _close(got, S.scaled_mm_ref(a, b, sa, sb, ra, rb, api=api), K)
    # torch's CPU kernel has no blockwise path (the semantics are ours, from its CUDA docs and tests)
    with pytest.raises(ValueError, match="Invalid scaling configuration"):
        torch._scaled_mm(a, b, sa, sb, out_dtype=torch.float32)


def test_blockwise_bias_bf16_and_unit_scales_equal_plain_matmul():
    M, K, N = 40, 256, 48
    a, b = _fp8((M, K)), _fp8((N, K)).t()
    sa = torch.ones(_cdiv(K, 128), M).t()
    sb = torch.ones(_cdiv(K, 128), _cdiv(N, 128))
    bias = torch.randn(N, dtype=torch.bfloat16)
    got, _ = run_gems(torch._scaled_mm, a, b, sa, sb, bias=bias, out_dtype=torch.bfloat16, served=["_scaled_mm"])
    want = torch._scaled_mm(a, b, torch.tensor(1.0), torch.tensor(1.0), bias=bias, out_dtype=torch.bfloat16)
    assert_close(got.float(), want.double(), torch.float32, rtol=8e-3, atol=1e-2)


# ------------------------------------------------------------------------------------------------------------
# MX (e8m0 per 32) and NVFP4

def test_swizzle_layout_roundtrip():
    s = _e8m0((130, 7))
    flat = swizzle_scales(s)
    assert flat.numel() == 256 * 8
    assert torch.equal(unswizzle(flat, 130, 7).view(torch.uint8), s.view(torch.uint8))
    # spot-check cuBLAS's formula: (r, c) = (37, 5) -> tile (0, 1), outer 37, inner 1
    assert flat.view(torch.uint8)[512 + (37 % 32) * 16 + (37 // 32) * 4 + 1] == s.view(torch.uint8)[37, 5]


@pytest.mark.parametrize("fmt", ["mxfp8", "mxfp4"])
@pytest.mark.parametrize("api", ["v1", pytest.param("v2", marks=needs_v2), pytest.param("v2-plain", marks=needs_v2)])
def test_mx(fmt, api):
    M, K, N = 40, 160, 24
    if fmt == "mxfp8":
        a, b = _fp8((M, K)), _fp8((N, K), E4M3).t()
    else:
        a, b = _fp4((M, K // 2)), _fp4((N, K // 2)).t()
    sa, sb = _e8m0((M, K // 32)), _e8m0((N, K // 32))
    swz = api != "v2-plain"
    if swz:
        sa, sb = swizzle_scales(sa), swizzle_scales(sb)
    if api == "v1":
        got, _ = run_gems(torch._scaled_mm, a, b, sa, sb, out_dtype=torch.bfloat16, served=["_scaled_mm"])
    else:
        sw = F.SwizzleType.SWIZZLE_32_4_4 if swz else F.SwizzleType.NO_SWIZZLE
        got, _ = run_gems(F.scaled_mm, a, b, sa, F.ScalingType.BlockWise1x32, sb, F.ScalingType.BlockWise1x32,
                          swizzle_a=sw, swizzle_b=sw, served=["_scaled_mm_v2"])
    _close(got, S.scaled_mm_ref(a, b, sa, sb, S.BLOCK_1x32, S.BLOCK_1x32, swizzle_a=swz, swizzle_b=swz), K)


def test_mxfp4_reference_decodes_like_torch_packing():
    # element 2j in the low nibble (torch's pack_uint4); codes 0x21 -> [0.5, 1.0]; 0x9F -> [-6.0, -0.5]
    x = torch.tensor([[0x21, 0x9F]], dtype=torch.uint8).view(FP4)
    assert unpack_fp4_ref(x).tolist() == [[0.5, 1.0, -6.0, -0.5]]


def test_mxfp4_dot_scaled_path():
    """The tl.dot_scaled path (used on devices with block-scaled MMA) against the same reference."""
    M, K, N = 32, 128, 32
    a, b = _fp4((M, K // 2)), _fp4((N, K // 2)).t()
    sa, sb = swizzle_scales(_e8m0((M, K // 32))), swizzle_scales(_e8m0((N, K // 32)))
    out = torch.empty(M, N, dtype=torch.float32)
    launch(S.plan_v1(a, b, sa, sb)._replace(dot_scaled=True), a.unsqueeze(0), b.unsqueeze(0), out.unsqueeze(0))
    _close(out, S.scaled_mm_ref(a, b, sa, sb, S.BLOCK_1x32, S.BLOCK_1x32, swizzle_a=True, swizzle_b=True), K)


@pytest.mark.parametrize("global_scale", [False, pytest.param(True, marks=needs_v2)])
def test_nvfp4(global_scale):
    M, K, N = 36, 96, 20
    a, b = _fp4((M, K // 2)), _fp4((N, K // 2)).t()
    sa = swizzle_scales(_pos((M, K // 16)).to(E4M3))
    sb = swizzle_scales(_pos((N, K // 16)).to(E4M3))
    if not global_scale:
        got, _ = run_gems(torch._scaled_mm, a, b, sa, sb, out_dtype=torch.float32, served=["_scaled_mm"])
        ga = gb = None
    else:
        ga, gb = torch.tensor(0.5), torch.tensor(3.0)
        rec = [F.ScalingType.BlockWise1x16, F.ScalingType.TensorWise]
        sw = [F.SwizzleType.SWIZZLE_32_4_4, F.SwizzleType.NO_SWIZZLE]
        got, _ = run_gems(F.scaled_mm, a, b, [sa, ga], rec, [sb, gb], rec, swizzle_a=sw, swizzle_b=sw,
                          output_dtype=torch.float32, served=["_scaled_mm_v2"])
    want = S.scaled_mm_ref(a, b, sa, sb, S.BLOCK_1x16, S.BLOCK_1x16, swizzle_a=True, swizzle_b=True,
                           global_a=ga, global_b=gb)
    _close(got, want, K)


# ------------------------------------------------------------------------------------------------------------
# bad input: the error torch raises (our predicate declines, torch's kernel raises)

@pytest.mark.parametrize("case", ["k_mismatch", "wrong_block_scale", "wrong_mx_numel", "bf16_inputs",
                                  "mixed_fp4_fp8", "bad_bias"])
def test_bad_input_raises_like_torch(case):
    M, K, N = 32, 256, 48
    a, b = _fp8((M, K)), _fp8((N, K)).t()
    sa, sb = torch.ones(2, M).t(), torch.ones(2, 1)       # 1x128 x 128x128
    kwargs = {"out_dtype": torch.bfloat16}
    if case == "k_mismatch":
        args, exc = (a[:, :128], b, torch.tensor(1.0), torch.tensor(1.0)), RuntimeError
    elif case == "wrong_block_scale":
        args, exc = (a, b, sa[:, :1], sb), ValueError     # scale_a [M, 1] is neither 1x128 nor rowwise with [2,1]
    elif case == "wrong_mx_numel":
        args, exc = (a, b, _e8m0((M * 8 - 1,)), _e8m0((128 * 8,))), ValueError
    elif case == "bf16_inputs":
        args, exc = (a.float().bfloat16(), b.float().bfloat16(), torch.tensor(1.0), torch.tensor(1.0)), ValueError
    elif case == "mixed_fp4_fp8":
        args, exc = (_fp4((M, K // 2)), b, _e8m0((128 * 8,)), _e8m0((128 * 8,))), (ValueError, RuntimeError)
    else:
        args, exc = (a, b, torch.tensor(1.0), torch.tensor(1.0)), RuntimeError
        kwargs["bias"] = torch.zeros(N + 1, dtype=torch.bfloat16)
    with pytest.raises(exc):
        torch._scaled_mm(*args, **kwargs)
    with pytest.raises(exc):
        with flaggems.use_gems():
            torch._scaled_mm(*args, **kwargs)


# ------------------------------------------------------------------------------------------------------------

@given(m=st.integers(1, 70), n=st.integers(1, 70), kb=st.integers(1, 3), krem=st.sampled_from([0, 32, 77]),
       pair=st.sampled_from(BLOCK_PAIRS), lo=st.floats(2.0 ** -6, 1.0), hi=st.floats(1.0, 2.0 ** 6))
def test_blockwise_hypothesis(m, n, kb, krem, pair, lo, hi):
    K = max(16, (kb - 1) * 128 + krem) if krem else kb * 128
    gen = torch.Generator().manual_seed(m * 997 + n * 31 + K)
    a, b = _fp8((m, K), gen=gen), _fp8((n, K), gen=gen).t()

    def scales(recipe, rows, operand):
        s = _block_scales(recipe, rows, K, "v1", operand, gen)
        return s * (hi - lo) / 1.25 + lo * 0.2                 # scale values across 2^-8 .. 2^6

    sa, sb = scales(pair[0], m, "a"), scales(pair[1], n, "b")
    got, _ = run_gems(torch._scaled_mm, a, b, sa, sb, out_dtype=torch.float32, served=["_scaled_mm"])
    _close(got, S.scaled_mm_ref(a, b, sa, sb, *pair), K)


@given(m=st.integers(1, 50), n=st.integers(1, 50), kg=st.integers(1, 6), fp4=st.booleans(),
       lo=st.integers(100, 127), span=st.integers(1, 30))
def test_mx_hypothesis(m, n, kg, fp4, lo, span):
    K = kg * 32
    gen = torch.Generator().manual_seed(m * 131 + n * 7 + K + fp4)
    if fp4:
        a, b = _fp4((m, K // 2), gen), _fp4((n, K // 2), gen).t()
    else:
        a, b = _fp8((m, K), gen=gen), _fp8((n, K), gen=gen).t()
    sa = swizzle_scales(_e8m0((m, kg), gen, lo, lo + span))
    sb = swizzle_scales(_e8m0((n, kg), gen, 254 - lo - span, 254 - lo))
    got, _ = run_gems(torch._scaled_mm, a, b, sa, sb, out_dtype=torch.float32, served=["_scaled_mm"])
    _close(got, S.scaled_mm_ref(a, b, sa, sb, S.BLOCK_1x32, S.BLOCK_1x32, swizzle_a=True, swizzle_b=True), K)


# ------------------------------------------------------------------------------------------------------------
# _scaled_grouped_mm (rowwise fp8): no CPU kernel in torch; reference = dequantise + per-group matmul

def _grouped_inputs(mode, gen=None):
    G, M, K, N = 4, 24, 48, 40
    if mode == "2d3d":
        offs = torch.tensor([0, 7, 7, 20], dtype=torch.int32)
        return (_fp8((M, K)), _fp8((G, N, K)).transpose(1, 2), _pos((M,)), _pos((G, N)), offs, K)
    if mode == "3d3d":
        return (_fp8((G, M, K)), _fp8((G, N, K)).transpose(1, 2), _pos((G, M)), _pos((G, N)), None, K)
    if mode == "3d2d":
        offs = torch.tensor([5, 5, 30, 40], dtype=torch.int32)
        return (_fp8((G, M, K)), _fp8((N, K)).t(), _pos((G, M)), _pos((N,)), offs, K)
    offs = torch.tensor([10, 10, 33, 50], dtype=torch.int32)
    return (_fp8((M, 50)), _fp8((N, 50)).t(), _pos((G * M,)), _pos((G * N,)), offs, 23)


@pytest.mark.parametrize("mode", ["2d3d", "3d3d", "3d2d", "2d2d"])
def test_scaled_grouped_mm(mode):
    a, b, sa, sb, offs, red = _grouped_inputs(mode)
    want = S.scaled_grouped_mm_ref(a, b, sa, sb, offs)
    # torch has no CPU kernel for this op: flaggems serves it where the registry allows ops without one
    args = (a, b, sa, sb) + ((offs,) if offs is not None else ())
    got, _ = run_gems(torch._scaled_grouped_mm, *args, served=["_scaled_grouped_mm"])
    assert got.dtype == torch.bfloat16
    assert_close(got, want, torch.bfloat16, reduce_len=red)


def test_scaled_grouped_mm_unsupported_inputs_raise_torchs_error():
    a, b, sa, sb, offs, _ = _grouped_inputs("2d3d")
    # MXFP8 grouped scales are not implemented and torch has no CPU kernel: torch's kind of error, not garbage
    with pytest.raises(NotImplementedError, match="Could not run"):
        run_gems(torch._scaled_grouped_mm, a, b, sa.to(torch.float8_e8m0fnu), sb.to(torch.float8_e8m0fnu), offs)


def test_scaled_grouped_mm_bad_input():
    a, b, sa, sb, offs, _ = _grouped_inputs("2d3d")
    for bad in [dict(sb=sb[:, :3]), dict(out_dtype=torch.float32), dict(a=a.float().bfloat16()),
                dict(offs=torch.tensor([9, 3, 20, 24], dtype=torch.int32))]:
        kw = dict(a=a, b=b, sa=sa, sb=sb, offs=offs, out_dtype=None) | bad
        with pytest.raises(RuntimeError):
            S.scaled_grouped_mm_impl(kw["a"], kw["b"], kw["sa"], kw["sb"], kw["offs"], out_dtype=kw["out_dtype"])
