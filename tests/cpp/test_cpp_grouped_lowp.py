"""Grouped fp8_gemm / fp4_gemm (MoE experts in one call): C++ (every SIMD path) against the per-expert fp64
references on the row groups."""
import pytest
import torch

from flaggems.cpp.grouped_lowp import grouped_fp4_gemm_cpp, grouped_fp8_gemm_cpp
from flaggems.ops.gemm.fp4_gemm import fp4_gemm_ref
from flaggems.ops.gemm.fp8_gemm import fp8_gemm_ref

from .test_cpp_gemm import check, make_fp4, make_fp8


def _experts(fp4, G, N, K, seed):
    ws = [(make_fp4 if fp4 else make_fp8)(1, N, K, seed=seed + e)[2:] for e in range(G)]
    return torch.stack([w for w, _ in ws]), torch.stack([s for _, s in ws])


def _ref(fp4, a, a_s, b, b_s, offs):
    out = torch.zeros(a.shape[0], b.shape[1])
    prev = 0
    ref = fp4_gemm_ref if fp4 else fp8_gemm_ref
    for e, end in enumerate(offs.tolist()):
        if end > prev:
            out[prev:end] = ref(a[prev:end], a_s[prev:end], b[e], b_s[e], torch.float32)
        prev = end
    return out


# decode-like counts (0-3 tokens per expert, empty experts, rows past offs[-1]) and a prefill-like group (> 8
# rows: the panel kernel); N / K off the block sizes
@pytest.mark.parametrize("fp4", [False, True])
@pytest.mark.parametrize("counts,N,K", [([1, 0, 2, 1, 3], 70, 256), ([0, 1, 0], 131, 130), ([2, 11, 1], 40, 322),
                                        ([1, 1], 16, 64)])
@pytest.mark.parametrize("e8m0", [True, False])
def test_grouped_lowp(isa, fp4, counts, N, K, e8m0):
    G = len(counts)
    M = sum(counts) + 2                               # two trailing rows belong to no expert
    a, a_s, _, _ = (make_fp4 if fp4 else make_fp8)(M, 1, K, e8m0, seed=11)
    b, b_s = _experts(fp4, G, N, K, seed=20)
    offs = torch.tensor(counts, dtype=torch.int32).cumsum(0).to(torch.int32)
    fn = grouped_fp4_gemm_cpp if fp4 else grouped_fp8_gemm_cpp
    out = fn(a, a_s, b, b_s, offs, torch.float32)
    ref = _ref(fp4, a, a_s, b, b_s, offs)
    check(out, ref, K)
    assert (out[-2:] == 0).all()


def test_grouped_lowp_threads_and_dtype():
    a, a_s, _, _ = make_fp8(9, 1, 512, seed=3)
    b, b_s = _experts(False, 4, 300, 512, seed=4)
    offs = torch.tensor([2, 2, 5, 9], dtype=torch.int32)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = grouped_fp8_gemm_cpp(a, a_s, b, b_s, offs, torch.float32)
        torch.set_num_threads(max(3, n))
        many = grouped_fp8_gemm_cpp(a, a_s, b, b_s, offs, torch.float32)
    finally:
        torch.set_num_threads(n)
    assert torch.equal(one, many)
    bf = grouped_fp8_gemm_cpp(a, a_s, b, b_s, offs, torch.bfloat16)
    assert bf.dtype == torch.bfloat16 and torch.equal(bf, one.bfloat16())


def test_grouped_lowp_bad_offs():
    a, a_s, _, _ = make_fp8(4, 1, 128, seed=5)
    b, b_s = _experts(False, 2, 8, 128, seed=6)
    for offs in ([3, 2], [2, 5]):
        with pytest.raises(RuntimeError, match="offs"):
            grouped_fp8_gemm_cpp(a, a_s, b, b_s, torch.tensor(offs, dtype=torch.int32))
    with pytest.raises(ValueError, match="b_s"):
        grouped_fp8_gemm_cpp(a, a_s, b, b_s[:, :, :0], torch.tensor([1, 4], dtype=torch.int32))


@pytest.mark.parametrize("fp4", [False, True])
def test_grouped_lowp_bf16_dot(bf16_dot, fp4):
    counts, N, K = [1, 0, 3, 2, 9], 137, 322
    a, a_s, _, _ = (make_fp4 if fp4 else make_fp8)(sum(counts), 1, K, True, seed=12)
    b, b_s = _experts(fp4, len(counts), N, K, seed=30)
    offs = torch.tensor(counts, dtype=torch.int32).cumsum(0).to(torch.int32)
    fn = grouped_fp4_gemm_cpp if fp4 else grouped_fp8_gemm_cpp
    check(fn(a, a_s, b, b_s, offs, torch.float32), _ref(fp4, a, a_s, b, b_s, offs), K)


@pytest.mark.parametrize("fp4", [False, True])
def test_grouped_lowp_inf_scale_like_reference(fp4):
    # issue 13 #9 for the grouped kernel: an Inf activation scale gives +-Inf (per-block product), not NaN
    from .test_cpp_gemm import _same_specials

    counts, N, K = [1, 0, 12, 2], 70, 256
    G, M = len(counts), sum(counts)
    a, a_s, _, _ = (make_fp4 if fp4 else make_fp8)(M, 1, K, False, seed=3)
    a_s[0, 1] = float("inf")
    a_s[5, 0] = float("-inf")
    b, b_s = _experts(fp4, G, N, K, seed=4)
    offs = torch.tensor(counts, dtype=torch.int32).cumsum(0).to(torch.int32)
    got = (grouped_fp4_gemm_cpp if fp4 else grouped_fp8_gemm_cpp)(a, a_s, b, b_s, offs, torch.float32)
    ref = _ref(fp4, a, a_s, b, b_s, offs)
    assert ref.isinf().any()
    _same_specials(got, ref)


# ------------------------------------------------------------------------------------------------------------
# registered as the cpp implementation of aten::_scaled_grouped_mm (+ _v2) for the block recipes

def _aten_case(fp4, e8m0, counts=(2, 0, 9, 1), N=70, K=256):
    G, M = len(counts), sum(counts) + 1                       # one row past offs[-1]
    a, a_s, _, _ = (make_fp4 if fp4 else make_fp8)(M, 1, K, e8m0, seed=5)
    w, w_s = _experts(fp4, G, N, K, seed=6)                   # weights as stored: [G, N, K(/2)]
    if fp4:
        w = w.view(torch.float4_e2m1fn_x2)
        b, scale_b = w.transpose(-2, -1), w_s                 # [G, K/2, N], scales [G, N, K/32]
    else:
        b, scale_b = w.transpose(-2, -1), w_s.transpose(-2, -1)   # [G, K, N], scales [G, kb, ceil(N/128)]
    offs = torch.tensor(counts, dtype=torch.int32).cumsum(0).to(torch.int32)
    want = _ref(fp4, a, a_s, w.view(torch.uint8) if fp4 else w, w_s, offs)
    return a, a_s, b, scale_b, offs, want


@pytest.mark.parametrize("fp4,e8m0", [(False, False), (False, True), (True, True), (True, False)])
def test_scaled_grouped_mm_block_recipes_served_by_cpp(fp4, e8m0):
    import flaggems
    from flaggems.testing import assert_close, run_gems

    a, a_s, b, scale_b, offs, want = _aten_case(fp4, e8m0)
    got, _ = run_gems(torch._scaled_grouped_mm, a, b, a_s, scale_b, offs, served=["_scaled_grouped_mm"], kind="cpp")
    assert got.dtype == torch.bfloat16 and got.shape == want.shape
    assert_close(got, want.double(), torch.bfloat16, reduce_len=256)
    assert not got[-1].any()                                    # the row past offs[-1]
    with flaggems.prefer_impl("triton"):                        # Triton declines: the cpp kernel still serves it
        got2, _ = run_gems(torch._scaled_grouped_mm, a, b, a_s, scale_b, offs, served=["_scaled_grouped_mm"],
                           kind="cpp")
    assert torch.equal(got, got2)
    if hasattr(torch.ops.aten, "_scaled_grouped_mm_v2"):
        recipe_b = [3] if fp4 else [5]                          # BlockWise1x32 / BlockWise128x128
        got3, _ = run_gems(torch.ops.aten._scaled_grouped_mm_v2, a, b, [a_s], [4], [0], [scale_b], recipe_b, [0],
                           offs, served=["_scaled_grouped_mm_v2"], kind="cpp")
        assert torch.equal(got, got3)


def test_scaled_grouped_mm_other_recipes_not_taken_by_cpp():
    # RowWise stays with Triton; a wrong block-scale shape is not served by the cpp kernel
    from flaggems.cpp.grouped_lowp import scaled_grouped_supports

    a, a_s, b, scale_b, offs, _ = _aten_case(False, False)
    assert scaled_grouped_supports(a, b, a_s, scale_b, offs) is None
    assert scaled_grouped_supports(a, b, torch.ones(a.shape[0]), torch.ones(b.shape[0], b.shape[2]), offs)
    assert scaled_grouped_supports(a, b, a_s, scale_b[:, :1], offs)
    assert scaled_grouped_supports(a, b, a_s, scale_b, offs, out_dtype=torch.float32)
    assert scaled_grouped_supports(a.view(1, *a.shape), b, a_s, scale_b, None)
