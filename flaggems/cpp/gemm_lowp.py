"""C++ ``fp8_gemm`` / ``fp4_gemm`` (csrc/gemm_lowp.cpp): DeepSeek-V4 block-scaled GEMMs, C = A · Bᵀ.

Same contract as flaggems/ops/gemm/fp8_gemm.py and fp4_gemm.py, whose custom-op ``check`` validates dtypes and
shapes before either implementation runs. The weight is streamed and decoded per tile (LUT / F16C for e4m3, a
16-entry permute for e2m1) into a small per-thread fp32 panel; the dequantised weight is never materialised.
Scales are folded into the decoded operands (exact for E8M0 scales), fp32 accumulation. Parallel over N with
torch.get_num_threads() threads.
"""
from __future__ import annotations

import torch

from ..formats import E4M3, E8M0, FP4
from ..ops.gemm import fp4_gemm as _fp4, fp8_gemm as _fp8  # noqa: F401  (declare the custom ops)
from ..registry import implement
from ._ext import contig, dcode, lib, nthreads, require_cpu


def _gemm(op, fp4, a, a_s, b, b_s, out_dtype):
    # the C++ kernel reads host memory, row-major operands and scales
    require_cpu(op, a=a, a_s=a_s, b=b, b_s=b_s)
    N = b.shape[0]
    K = a.shape[-1]
    out_dtype = torch.get_default_dtype() if out_dtype is None else out_dtype
    a2 = contig(a.reshape(-1, K))
    M = a2.shape[0]
    a_s2 = contig(a_s.reshape(M, -1) if M else a_s)
    b2, b_s2 = contig(b), contig(b_s)
    c = torch.empty((M, N), dtype=out_dtype, device=a.device)
    if M and N:
        lib().lowp_gemm(fp4, M, N, K, a2.data_ptr(), a_s2.data_ptr(), int(a_s.dtype == E8M0), b2.data_ptr(),
                        b_s2.data_ptr(), int(b_s.dtype == E8M0), c.data_ptr(), dcode(out_dtype, op, "out_dtype"),
                        nthreads())
    return c.view(*a.shape[:-1], N)


@implement("flaggems::fp8_gemm", kind="cpp", dtypes={E4M3, E8M0, torch.float32})
def fp8_gemm_cpp(a, a_s, b, b_s, out_dtype=None):
    return _gemm("fp8_gemm", False, a, a_s, b, b_s, out_dtype)


@implement("flaggems::fp4_gemm", kind="cpp", dtypes={E4M3, E8M0, torch.float32, FP4, torch.int8, torch.uint8})
def fp4_gemm_cpp(a, a_s, b, b_s, out_dtype=None):
    return _gemm("fp4_gemm", True, a, a_s, b, b_s, out_dtype)
