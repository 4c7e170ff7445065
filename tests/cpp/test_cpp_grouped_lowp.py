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
