"""C++ ``fp4_to_fp8`` / ``fp8_to_bf16`` / ``fp4_to_bf16`` (csrc/convert.cpp).

Same contract as flaggems/deepseek/convert.py, whose checks run first (as the custom ops' ``check``, or through
the ``*_cpp`` direct entries). The kernels read FP4 / FP8 / E8M0 as bytes: they run on any CPU.
"""
from __future__ import annotations

import torch

from flaggems.deepseek.checked import checked
from flaggems.deepseek.convert import (E4M3, E8M0_DTYPES, FP4_DTYPES, fp4_to_bf16_check, fp4_to_fp8_check,
                                       fp4_to_fp8_outputs, fp8_to_bf16_check, to_bf16_outputs)
from flaggems.registry import implement

from ._ext import contig, lib, nthreads, require_cpu


def _dims(w):
    """(matrices, N, last dim) of a [..., N, X] weight."""
    N, X = w.shape[-2:]
    return (w.numel() // (N * X) if N * X else 0), N, X


@implement("flaggems::fp4_to_fp8", kind="cpp", dtypes=FP4_DTYPES | E8M0_DTYPES, decodes=("fp8", "fp4"))
def _fp4_to_fp8_cpp(w, s):
    require_cpu("fp4_to_fp8", w=w, s=s)
    y, bs, cnt = fp4_to_fp8_outputs(w)
    B, N, KH = _dims(w)
    if B and N and KH:
        lib().fp4_to_fp8(contig(w).data_ptr(), contig(s).data_ptr(), y.data_ptr(), bs.data_ptr(), cnt.data_ptr(),
                         B, N, 2 * KH, nthreads())
    else:
        cnt.zero_()
    return y, bs, cnt


@implement("flaggems::fp8_to_bf16", kind="cpp", dtypes={E4M3} | E8M0_DTYPES, decodes=("fp8",))
def _fp8_to_bf16_cpp(w, s):
    require_cpu("fp8_to_bf16", w=w, s=s)
    y, cnt = to_bf16_outputs(w, False)
    B, N, K = _dims(w)
    if B and N and K:
        lib().fp8_to_bf16(contig(w).data_ptr(), contig(s).data_ptr(), y.data_ptr(), cnt.data_ptr(), B, N, K,
                          nthreads())
    else:
        cnt.zero_()
    return y, cnt


@implement("flaggems::fp4_to_bf16", kind="cpp", dtypes=FP4_DTYPES | E8M0_DTYPES, decodes=("fp8", "fp4"))
def _fp4_to_bf16_cpp(w, s):
    require_cpu("fp4_to_bf16", w=w, s=s)
    y, cnt = to_bf16_outputs(w, True)
    B, N, KH = _dims(w)
    if B and N and KH:
        lib().fp4_to_bf16(contig(w).data_ptr(), contig(s).data_ptr(), y.data_ptr(), cnt.data_ptr(), B, N, 2 * KH,
                          nthreads())
    else:
        cnt.zero_()
    return y, cnt


fp4_to_fp8_cpp = checked(fp4_to_fp8_check, _fp4_to_fp8_cpp)
fp8_to_bf16_cpp = checked(fp8_to_bf16_check, _fp8_to_bf16_cpp)
fp4_to_bf16_cpp = checked(fp4_to_bf16_check, _fp4_to_bf16_cpp)
