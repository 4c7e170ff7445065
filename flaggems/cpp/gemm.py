"""C++ ``fp8_gemm`` / ``fp4_gemm`` (csrc/gemm_lowp.cpp): DeepSeek-V4 block-scaled GEMMs, C = A · Bᵀ.

Same contract as flaggems/deepseek/fp8_gemm.py and fp4_gemm.py (shapes checked there by the custom op's
``check``, and again here for what the C++ side relies on). The weight is streamed and decoded per tile
(LUT / F16C for e4m3, a 16-entry permute for e2m1) into a small per-thread fp32 panel; the dequantised
weight is never materialised. Scales are folded into the decoded operands (exact for E8M0 scales), fp32
accumulation. Parallel over N with torch.get_num_threads() threads.
"""
from __future__ import annotations

import math

import torch

from ._ext import contig, dcode, lib, nthreads, require_cpu

_SCALES = (torch.float32, torch.float8_e8m0fnu)


def _scale_arg(op, name, s):
    if s.dtype not in _SCALES:
        raise TypeError(f"{op} (cpp): {name} must be float32 or float8_e8m0fnu, got {s.dtype}")
    s = contig(s)
    return s, int(s.dtype == torch.float8_e8m0fnu)


def _gemm(op, fp4, a, a_s, b, b_s, out_dtype):
    # Decode calls move a few MiB in ~0.1 ms, so this wrapper reads each tensor attribute once and skips the
    # reshape / view round trips for the usual 2-D operands (each costs about a microsecond).
    if not (a.is_cpu and a_s.is_cpu and b.is_cpu and b_s.is_cpu):
        require_cpu(op, a=a, a_s=a_s, b=b, b_s=b_s)
    if a.dtype != torch.float8_e4m3fn:
        raise TypeError(f"{op} (cpp): a must be float8_e4m3fn, got {a.dtype}")
    ash, bsh = tuple(a.shape), tuple(b.shape)
    if len(bsh) != 2:
        raise ValueError(f"{op} (cpp): b must be 2-D, got shape {bsh}")
    N, K = bsh[0], ash[-1]
    if fp4:
        if b.dtype not in (torch.float4_e2m1fn_x2, torch.int8, torch.uint8):
            raise TypeError(f"{op} (cpp): b must be float4_e2m1fn_x2/int8/uint8 (packed e2m1), got {b.dtype}")
        if bsh[1] * 2 != K:
            raise ValueError(f"{op} (cpp): b must be [N, K/2] = [{N}, {K // 2}], got {bsh}")
        want_b = (N, -(-K // 32))
    else:
        if b.dtype != torch.float8_e4m3fn:
            raise TypeError(f"{op} (cpp): b must be float8_e4m3fn, got {b.dtype}")
        if bsh[1] != K:
            raise ValueError(f"{op} (cpp): a.shape[-1] ({K}) must equal b.shape[1] ({bsh[1]})")
        want_b = (-(-N // 128), -(-K // 128))
    want_a = (*ash[:-1], -(-K // 128))
    if tuple(a_s.shape) != want_a:
        raise ValueError(f"{op} (cpp): a_s must have shape {want_a}, got {tuple(a_s.shape)}")
    if tuple(b_s.shape) != want_b:
        raise ValueError(f"{op} (cpp): b_s must have shape {want_b}, got {tuple(b_s.shape)}")
    if fp4 and b_s.dtype != torch.float8_e8m0fnu:
        raise TypeError(f"{op} (cpp): b_s must be float8_e8m0fnu, got {b_s.dtype}")
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    oc = dcode(out_dtype, op, "out_dtype")
    M = math.prod(ash[:-1])
    flat = len(ash) == 2
    a2 = contig(a if flat else a.reshape(M, K))  # reshape(-1, K) is ambiguous for K == 0
    a_s2, ae = _scale_arg(op, "a_s", a_s if flat or not M else a_s.reshape(M, -1))
    b2 = contig(b)
    b_s2, be = _scale_arg(op, "b_s", b_s)
    c = torch.empty((M, N), dtype=out_dtype)
    if M and N:
        lib().lowp_gemm(fp4, M, N, K, a2.data_ptr(), a_s2.data_ptr(), ae, b2.data_ptr(), b_s2.data_ptr(), be,
                        c.data_ptr(), oc, nthreads())
    return c if flat else c.view(*ash[:-1], N)


def fp8_gemm_cpp(a, a_s, b, b_s, out_dtype=None):
    return _gemm("fp8_gemm", False, a, a_s, b, b_s, out_dtype)


def fp4_gemm_cpp(a, a_s, b, b_s, out_dtype=None):
    return _gemm("fp4_gemm", True, a, a_s, b, b_s, out_dtype)
