"""C++ grouped ``fp8_gemm`` / ``fp4_gemm`` (csrc/gemm_lowp.cpp ``grouped_lowp``): the MoE experts of a step in one call.

    grouped_fp8_gemm_cpp(a [M, K] e4m3, a_s [M, ceil(K/128)], b [G, N, K] e4m3, b_s [G, ceil(N/128), ceil(K/128)], offs)
    grouped_fp4_gemm_cpp(a [M, K] e4m3, a_s [M, ceil(K/128)], b [G, N, K/2] packed e2m1, b_s [G, N, ceil(K/32)], offs)

Rows offs[e-1]:offs[e] of a (token rows sorted by expert, int32 cumulative ends as for ``torch._grouped_mm``)
are multiplied by expert e's weight with DeepSeek-V4's block-scale semantics (flaggems/ops/gemm/fp8_gemm.py,
fp4_gemm.py); rows past offs[-1] are zero. Scales: a_s fp32 or E8M0, fp8 b_s fp32 or E8M0, fp4 b_s E8M0.
One call streams the weights of every used expert once, split evenly over torch.get_num_threads() threads; at
decode (a few tokens per expert) each expert runs the weight-streaming decode kernel. The dequantised weight is
never materialised.
"""
from __future__ import annotations

import torch

from ._ext import contig, dcode, lib, nthreads, require_cpu

_SCALES = (torch.float32, torch.float8_e8m0fnu)
_FP4 = (torch.float4_e2m1fn_x2, torch.int8, torch.uint8)


def _grouped(op, fp4, a, a_s, b, b_s, offs, out_dtype):
    require_cpu(op, a=a, a_s=a_s, b=b, b_s=b_s, offs=offs)
    if a.dtype != torch.float8_e4m3fn or a.dim() != 2:
        raise TypeError(f"{op} (cpp): a must be a 2-D float8_e4m3fn tensor, got {a.dtype} {tuple(a.shape)}")
    if b.dim() != 3:
        raise ValueError(f"{op} (cpp): b must be [G, N, K{'/2' if fp4 else ''}], got {tuple(b.shape)}")
    M, K = a.shape
    G, N = b.shape[:2]
    if fp4:
        if b.dtype not in _FP4 or b.shape[2] * 2 != K:
            raise ValueError(f"{op} (cpp): b must be packed e2m1 [G, N, K/2] = [{G}, {N}, {K // 2}], got "
                             f"{b.dtype} {tuple(b.shape)}")
        want_b = (G, N, -(-K // 32))
        if b_s.dtype != torch.float8_e8m0fnu:
            raise TypeError(f"{op} (cpp): b_s must be float8_e8m0fnu, got {b_s.dtype}")
    else:
        if b.dtype != torch.float8_e4m3fn or b.shape[2] != K:
            raise ValueError(f"{op} (cpp): b must be float8_e4m3fn [G, N, K] = [{G}, {N}, {K}], got "
                             f"{b.dtype} {tuple(b.shape)}")
        want_b = (G, -(-N // 128), -(-K // 128))
    if tuple(a_s.shape) != (M, -(-K // 128)) or a_s.dtype not in _SCALES:
        raise ValueError(f"{op} (cpp): a_s must be fp32 / e8m0 [{M}, {-(-K // 128)}], got {a_s.dtype} {tuple(a_s.shape)}")
    if tuple(b_s.shape) != want_b or b_s.dtype not in _SCALES:
        raise ValueError(f"{op} (cpp): b_s must be fp32 / e8m0 {list(want_b)}, got {b_s.dtype} {tuple(b_s.shape)}")
    if offs.dtype != torch.int32 or tuple(offs.shape) != (G,):
        raise ValueError(f"{op} (cpp): offs must be int32 [G={G}], got {offs.dtype} {tuple(offs.shape)}")
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    oc = dcode(out_dtype, op, "out_dtype")
    out = torch.empty((M, N), dtype=out_dtype, device=a.device)
    if out.numel() == 0:
        return out
    a, a_s, b, b_s, offs = contig(a), contig(a_s), contig(b), contig(b_s), contig(offs)
    try:
        lib().grouped_lowp(fp4, M, N, K, G, a.data_ptr(), a_s.data_ptr(), int(a_s.dtype == torch.float8_e8m0fnu),
                           b.data_ptr(), b_s.data_ptr(), int(b_s.dtype == torch.float8_e8m0fnu), offs.data_ptr(),
                           out.data_ptr(), oc, nthreads())
    except ValueError as e:   # offs out of order / past M, found by the kernel
        raise RuntimeError(str(e)) from None
    return out


def grouped_fp8_gemm_cpp(a, a_s, b, b_s, offs, out_dtype=None):
    return _grouped("grouped_fp8_gemm", False, a, a_s, b, b_s, offs, out_dtype)


def grouped_fp4_gemm_cpp(a, a_s, b, b_s, offs, out_dtype=None):
    return _grouped("grouped_fp4_gemm", True, a, a_s, b, b_s, offs, out_dtype)
