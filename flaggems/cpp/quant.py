"""C++ ``act_quant`` / ``fp4_act_quant`` (+ in-place variants), csrc/quant.cpp.

Same contract as flaggems/deepseek/quant.py, whose checks run first (as the custom ops' ``check``, or through
the ``*_cpp`` direct entries): the implementations here only lay x out as rows for the kernel.
"""
from __future__ import annotations

import torch

from flaggems.deepseek.checked import checked
from flaggems.deepseek.quant import (act_quant_check, act_quant_inplace_check, fp4_act_quant_check,
                                     fp4_act_quant_inplace_check)
from flaggems.registry import implement

from ._ext import DTYPE_CODES, FLOATS, contig, lib, nthreads, require_cpu


def _rows(op, x):
    """(dtype code, N, M, x contiguous): x as M rows of N elements."""
    require_cpu(op, x=x)
    N = x.shape[-1]
    return DTYPE_CODES[x.dtype], N, (x.numel() // N if N else 0), contig(x)


def _write_back(x, xc):
    if xc.data_ptr() != x.data_ptr():
        x.copy_(xc)


@implement("flaggems::act_quant", kind="cpp", dtypes=FLOATS)
def _act_quant_cpp(x, block_size=128, scale_fmt=None, scale_dtype=None):
    code, N, M, xc = _rows("act_quant", x)
    scale_dtype = torch.float32 if scale_dtype is None else scale_dtype
    y = torch.empty(x.shape, dtype=torch.float8_e4m3fn, device=x.device)
    s = torch.empty((*x.shape[:-1], N // block_size), dtype=scale_dtype, device=x.device)
    if M and N:
        lib().act_quant(xc.data_ptr(), code, M, N, block_size, int(scale_fmt is not None), y.data_ptr(),
                        s.data_ptr(), int(scale_dtype == torch.float8_e8m0fnu), False, nthreads())
    return y, s


@implement("flaggems::act_quant_inplace", kind="cpp", dtypes=FLOATS)
def _act_quant_inplace_cpp(x, block_size=128, scale_fmt=None):
    code, N, M, xc = _rows("act_quant_inplace", x)
    if M and N:
        lib().act_quant(xc.data_ptr(), code, M, N, block_size, int(scale_fmt is not None), 0, 0, 0, True,
                        nthreads())
        _write_back(x, xc)


@implement("flaggems::fp4_act_quant", kind="cpp", dtypes=FLOATS)
def _fp4_act_quant_cpp(x, block_size=32):
    code, N, M, xc = _rows("fp4_act_quant", x)
    y = torch.empty((*x.shape[:-1], N // 2), dtype=torch.float4_e2m1fn_x2, device=x.device)
    s = torch.empty((*x.shape[:-1], N // block_size), dtype=torch.float8_e8m0fnu, device=x.device)
    if M and N:
        lib().fp4_act_quant(xc.data_ptr(), code, M, N, block_size, y.data_ptr(), s.data_ptr(), False,
                            nthreads())
    return y, s


@implement("flaggems::fp4_act_quant_inplace", kind="cpp", dtypes=FLOATS)
def _fp4_act_quant_inplace_cpp(x, block_size=32):
    code, N, M, xc = _rows("fp4_act_quant_inplace", x)
    if M and N:
        lib().fp4_act_quant(xc.data_ptr(), code, M, N, block_size, 0, 0, True, nthreads())
        _write_back(x, xc)


act_quant_cpp = checked(act_quant_check, _act_quant_cpp)
act_quant_inplace_cpp = checked(act_quant_inplace_check, _act_quant_inplace_cpp)
fp4_act_quant_cpp = checked(fp4_act_quant_check, _fp4_act_quant_cpp)
fp4_act_quant_inplace_cpp = checked(fp4_act_quant_inplace_check, _fp4_act_quant_inplace_cpp)
