"""C++ ``act_quant`` / ``fp4_act_quant`` (+ in-place variants), csrc/quant.cpp.

Same contract as flaggems/deepseek/quant.py (its ``_check`` functions run first, as the custom op's check).
"""
from __future__ import annotations

import torch

from ._ext import contig, dcode, lib, nthreads, require_cpu


def _rows(op, x, block_size, even=False):
    require_cpu(op, x=x)
    code = dcode(x.dtype, op, "x")
    if x.dim() == 0 or not isinstance(block_size, int) or block_size <= 0 or x.shape[-1] % block_size:
        raise ValueError(f"{op} (cpp): x.shape[-1] must be a multiple of a positive block_size, got "
                         f"{tuple(x.shape)} and {block_size!r}")
    if even and block_size % 2:
        raise ValueError(f"{op} (cpp): block_size must be even, got {block_size}")
    N = x.shape[-1]
    return code, N, (x.numel() // N if N else 0)


def act_quant_cpp(x, block_size=128, scale_fmt=None, scale_dtype=None):
    op = "act_quant"
    code, N, M = _rows(op, x, block_size)
    scale_dtype = torch.float32 if scale_dtype is None else scale_dtype
    if scale_fmt not in (None, "ue8m0"):
        raise ValueError(f"{op} (cpp): scale_fmt must be None or 'ue8m0', got {scale_fmt!r}")
    if scale_dtype not in (torch.float32, torch.float8_e8m0fnu):
        raise TypeError(f"{op} (cpp): scale_dtype must be float32 or float8_e8m0fnu, got {scale_dtype}")
    if scale_dtype == torch.float8_e8m0fnu and scale_fmt is None:
        raise ValueError(f"{op} (cpp): float8_e8m0fnu scales need scale_fmt='ue8m0'")
    xc = contig(x)
    y = torch.empty(x.shape, dtype=torch.float8_e4m3fn)
    s = torch.empty((*x.shape[:-1], N // block_size), dtype=scale_dtype)
    if M and N:
        lib().act_quant(xc.data_ptr(), code, M, N, block_size, int(scale_fmt is not None), y.data_ptr(),
                        s.data_ptr(), int(scale_dtype == torch.float8_e8m0fnu), False, nthreads())
    return y, s


def act_quant_inplace_cpp(x, block_size=128, scale_fmt=None):
    op = "act_quant_inplace"
    code, N, M = _rows(op, x, block_size)
    if scale_fmt not in (None, "ue8m0"):
        raise ValueError(f"{op} (cpp): scale_fmt must be None or 'ue8m0', got {scale_fmt!r}")
    if not (M and N):
        return
    xc = contig(x)
    lib().act_quant(xc.data_ptr(), code, M, N, block_size, int(scale_fmt is not None), 0, 0, 0, True,
                    nthreads())
    if xc.data_ptr() != x.data_ptr():
        x.copy_(xc)


def fp4_act_quant_cpp(x, block_size=32):
    op = "fp4_act_quant"
    code, N, M = _rows(op, x, block_size, even=True)
    xc = contig(x)
    y = torch.empty((*x.shape[:-1], N // 2), dtype=torch.float4_e2m1fn_x2)
    s = torch.empty((*x.shape[:-1], N // block_size), dtype=torch.float8_e8m0fnu)
    if M and N:
        lib().fp4_act_quant(xc.data_ptr(), code, M, N, block_size, y.data_ptr(), s.data_ptr(), False,
                            nthreads())
    return y, s


def fp4_act_quant_inplace_cpp(x, block_size=32):
    op = "fp4_act_quant_inplace"
    code, N, M = _rows(op, x, block_size, even=True)
    if not (M and N):
        return
    xc = contig(x)
    lib().fp4_act_quant(xc.data_ptr(), code, M, N, block_size, 0, 0, True, nthreads())
    if xc.data_ptr() != x.data_ptr():
        x.copy_(xc)
