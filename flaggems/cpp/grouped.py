"""C++ ``grouped_mm`` (csrc/grouped_mm.cpp): the MoE cases of ``torch._grouped_mm`` on CPU.

    grouped_mm(a [M, K], b [G, K, N], offs int32 [G]) -> [M, N]     rows offs[g-1]:offs[g] use b[g]
    grouped_mm(a [G, M, K], b [G, K, N])              -> [G, M, N]

b may have any strides (e.g. expert weights stored [G, N, K] and passed as ``w.transpose(-2, -1)``).
Rows past offs[-1] are zero; empty groups are fine. bf16 / fp16 / fp32, fp32 accumulation; out_dtype is
a's dtype (default) or float32. The lead wires this to ``aten::_grouped_mm``.
"""
from __future__ import annotations

import torch

from ._ext import dcode, lib, nthreads, require_cpu


def supports(a, b, offs=None, bias=None, out_dtype=None):
    """None if grouped_mm_cpp handles these arguments, else a short reason (for the registry)."""
    if bias is not None:
        return "bias is not supported"
    if a.dtype not in (torch.bfloat16, torch.float16, torch.float32) or b.dtype != a.dtype:
        return "dtype"
    if out_dtype is not None and out_dtype not in (a.dtype, torch.float32):
        return "out_dtype"
    if a.dim() == 2 and b.dim() == 3 and offs is not None:
        return None
    if a.dim() == 3 and b.dim() == 3 and offs is None:
        return None
    return f"only 2D x 3D with offs and 3D x 3D without offs (got {a.dim()}D x {b.dim()}D)"


def grouped_mm_cpp(a, b, offs=None, bias=None, out_dtype=None):
    op = "grouped_mm"
    require_cpu(op, a=a, b=b, offs=offs)
    r = supports(a, b, offs, bias, out_dtype)
    if r is not None:
        raise ValueError(f"{op} (cpp): unsupported arguments: {r}")
    code = dcode(a.dtype, op, "a")
    out_dtype = a.dtype if out_dtype is None else out_dtype
    G, K, N = b.shape
    if a.shape[-1] != K:
        raise ValueError(f"{op} (cpp): a.shape[-1] ({a.shape[-1]}) must equal b.shape[1] ({K})")
    if a.dim() == 2:
        if offs.dtype != torch.int32 or offs.dim() != 1 or offs.shape[0] != G:
            raise ValueError(f"{op} (cpp): offs must be int32 [G={G}], got {offs.dtype} {tuple(offs.shape)}")
        M = a.shape[0]
        a2 = a if (K <= 1 or a.stride(1) == 1) else a.contiguous()
        out = torch.empty((M, N), dtype=out_dtype)
        rows_per_group, offs_ptr, sam = 0, offs.contiguous().data_ptr(), a2.stride(0)
    else:
        if a.shape[0] != G:
            raise ValueError(f"{op} (cpp): a must be [G={G}, M, K], got {tuple(a.shape)}")
        a2 = a.contiguous()
        M = G * a.shape[1]
        out = torch.empty((G, a.shape[1], N), dtype=out_dtype)
        rows_per_group, offs_ptr, sam = a.shape[1], 0, K
    if out.numel() == 0:
        return out
    if K == 0:
        return out.zero_()
    offs_keep = offs.contiguous() if offs is not None else None  # keep alive during the call
    if offs_keep is not None:
        offs_ptr = offs_keep.data_ptr()
    lib().grouped_mm(a2.data_ptr(), b.data_ptr(), offs_ptr, code, M, K, G, N, rows_per_group, sam,
                     b.stride(0), b.stride(1), b.stride(2), out.data_ptr(), dcode(out_dtype, op, "out"), nthreads())
    return out


def grouped_mm(a, b, offs=None, out_dtype=None):
    """Convenience entry point (see module docstring)."""
    return grouped_mm_cpp(a, b, offs, None, out_dtype)
