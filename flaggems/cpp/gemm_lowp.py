"""C++ ``fp8_gemm`` / ``fp4_gemm`` (csrc/gemm_lowp.cpp): DeepSeek-V4 block-scaled GEMMs, C = A · Bᵀ.

Same contract as flaggems/ops/gemm/fp8_gemm.py and fp4_gemm.py, whose custom-op ``check`` validates dtypes and
shapes before either implementation runs. The weight is streamed and decoded per tile (LUT / F16C for e4m3, a
16-entry permute for e2m1) into a small per-thread fp32 panel; the dequantised weight is never materialised.
Scales are folded into the decoded operands (exact for E8M0 scales), fp32 accumulation. Parallel over N with
torch.get_num_threads() threads.
"""
from __future__ import annotations

import math

import torch

from ..formats import E4M3, E8M0, FP4
from ..ops.gemm import fp4_gemm as _fp4, fp8_gemm as _fp8  # noqa: F401  (declare the custom ops)
from ..registry import implement
from ._ext import contig, dcode, lib, nthreads, require_cpu


def _gemm(op, fp4, a, a_s, b, b_s, out_dtype):
    # Decode calls move a few MiB in ~0.1 ms, so this wrapper reads each tensor attribute once and skips the
    # reshape / view round trips for the usual 2-D operands (each costs about a microsecond).
    if not (a.is_cpu and a_s.is_cpu and b.is_cpu and b_s.is_cpu):
        require_cpu(op, a=a, a_s=a_s, b=b, b_s=b_s)  # the C++ kernel reads host memory
    ash = tuple(a.shape)
    N, K = b.shape[0], ash[-1]
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    M = math.prod(ash[:-1])
    flat = len(ash) == 2
    a2 = contig(a if flat else a.reshape(M, K))  # reshape(-1, K) is ambiguous for K == 0
    a_s2 = contig(a_s if flat or not M else a_s.reshape(M, -1))
    b2, b_s2 = contig(b), contig(b_s)
    c = torch.empty((M, N), dtype=out_dtype, device=a.device)
    if M and N:
        lib().lowp_gemm(fp4, M, N, K, a2.data_ptr(), a_s2.data_ptr(), int(a_s.dtype == E8M0), b2.data_ptr(),
                        b_s2.data_ptr(), int(b_s.dtype == E8M0), c.data_ptr(), dcode(out_dtype, op, "out_dtype"),
                        nthreads())
    return c if flat else c.view(*ash[:-1], N)


@implement("flaggems::fp8_gemm", kind="cpp", dtypes={E4M3, E8M0, torch.float32})
def fp8_gemm_cpp(a, a_s, b, b_s, out_dtype=None):
    return _gemm("fp8_gemm", False, a, a_s, b, b_s, out_dtype)


@implement("flaggems::fp4_gemm", kind="cpp", dtypes={E4M3, E8M0, torch.float32, FP4, torch.int8, torch.uint8})
def fp4_gemm_cpp(a, a_s, b, b_s, out_dtype=None):
    return _gemm("fp4_gemm", True, a, a_s, b, b_s, out_dtype)
