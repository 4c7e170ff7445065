"""C++ ``aten::_scaled_mm`` (+ ``.out``) for the block-scaled recipes (csrc/scaled_mm.cpp), CPU tensors.

Served (recipe detection and scale-shape rules are flaggems/ops/gemm/recipes.py's ``plan_v1``, shared, so the
semantics are the Triton implementation's / docs/scaled_mm.md's):

    BlockWise 1x128 x 128x128, 128x128 x 1x128, 1x128 x 1x128    e4m3fn x e4m3fn, fp32 scales (any strides)
    MXFP8                                                         e4m3fn x e4m3fn, e8m0 per 32, swizzled
    MXFP4                                                         float4_e2m1fn_x2 x same, e8m0 per 32, swizzled

with K a positive multiple of 32, output bf16 / fp16 / fp32 (``out_dtype``, or the ``out`` tensor), optional
1-D fp32 / bf16 / fp16 bias (added in fp32). Everything else (TensorWise / RowWise, NVFP4, e5m2 operands, fp8
outputs, K % 32 != 0, empty K) is left to the next implementation (Triton) by :func:`supports`.

A is decoded once (times its scales) to fp32; the weight Bᵀ is streamed and decoded per tile into a small
per-thread panel (never materialised), fp32 accumulation, parallel over N. B is read as Bᵀ [N, K(/2)]
row-major: the column-major mat2 torch's CUDA kernel requires is used as is, any other layout is copied.
"""
from __future__ import annotations

import torch

from ..formats import AS_LOADED, E4M3, E8M0_BYTES, FP4, is_fp4
from ..ops.gemm.recipes import plan_v1
from ..ops.gemm.scaled import v1_reason
from ..registry import implement
from ._ext import DTYPE_CODES, contig, host_addressable, lib, nthreads

SERVED = frozenset({"block_1x128_128x128", "block_128x128_1x128", "block_1x128_1x128", "mxfp8", "mxfp4"})
_OUT = (torch.float32, torch.bfloat16, torch.float16)


def supports(a, b, scale_a, scale_b, bias=None, scale_result=None, out_dtype=None, use_fast_accum=False,
             out=None):
    """Registry predicate: None if the C++ kernel serves this call exactly, else a short reason."""
    r = v1_reason(a, b, scale_a, scale_b, bias, scale_result, out_dtype, use_fast_accum, out)
    if r is not None:
        return r
    ts = [a, b, scale_a, scale_b, bias, scale_result, out]
    if not all(t is None or host_addressable(t) for t in ts):
        return "cpp scaled_mm runs on host memory (cpu / fgsim tensors) only"
    if not ((a.dtype == b.dtype == E4M3) or (FP4 is not None and a.dtype == b.dtype == FP4)):
        return "operands must both be float8_e4m3fn or both float4_e2m1fn_x2"
    dt = out.dtype if out is not None else (out_dtype or a.dtype)
    if dt not in _OUT:
        return f"output dtype {dt} (cpp serves fp32 / bf16 / fp16)"
    K = a.shape[1] * (2 if is_fp4(a) else 1)
    if K == 0 or K % 32:
        return "K must be a positive multiple of 32"
    plan = plan_v1(a, b, scale_a, scale_b)
    if plan.name not in SERVED:
        return f"recipe {plan.name} not in the cpp kernel"
    if plan.sa.fmt not in (AS_LOADED, E8M0_BYTES) or plan.sb.fmt not in (AS_LOADED, E8M0_BYTES):
        return "scale format"
    return None


def _spec(sc):
    return (sc.t.data_ptr(), int(sc.fmt == E8M0_BYTES), sc.s_row, sc.s_k, sc.div, sc.group, int(sc.swz))


def _run(a, b, scale_a, scale_b, bias, out):
    """out[M, N] (contiguous) = scaled(a @ b) [+ bias]; arguments accepted by :func:`supports`."""
    plan = plan_v1(a, b, scale_a, scale_b)
    fp4 = is_fp4(a)
    M, N = a.shape[0], b.shape[1]
    K = a.shape[1] * (2 if fp4 else 1)
    if M == 0 or N == 0:
        return out
    # the C++ kernel reads A and Bᵀ row-major and a contiguous 1-D bias
    a2 = contig(a.view(torch.uint8) if fp4 else a)
    bt = contig((b.view(torch.uint8) if fp4 else b).t())
    if bias is not None:
        bias = contig(bias.reshape(-1))
    lib().scaled_mm_block(fp4, M, N, K, a2.data_ptr(), bt.data_ptr(), *_spec(plan.sa), *_spec(plan.sb),
                          bias.data_ptr() if bias is not None else 0,
                          DTYPE_CODES[bias.dtype] if bias is not None else 0, int(bias is not None),
                          out.data_ptr(), DTYPE_CODES[out.dtype], nthreads())
    return out


# blockwise (1x128 / 128x128, fp32 scales) and MXFP8 / MXFP4 recipes; the rest goes on to Triton
@implement("aten::_scaled_mm", kind="cpp", decodes=("fp8", "fp4"), supports=supports)
def scaled_mm_cpp(a, b, scale_a, scale_b, bias=None, scale_result=None, out_dtype=None, use_fast_accum=False):
    """``aten::_scaled_mm`` (cpp kind); scale_result only applies to fp8 outputs, which supports() excludes."""
    out = torch.empty((a.shape[0], b.shape[1]), dtype=out_dtype or a.dtype, device=a.device)
    return _run(a, b, scale_a, scale_b, bias, out)


@implement("aten::_scaled_mm.out", kind="cpp", decodes=("fp8", "fp4"), supports=supports)
def scaled_mm_out_cpp(a, b, scale_a, scale_b, bias=None, scale_result=None, out_dtype=None, use_fast_accum=False,
                      *, out):
    if out.is_contiguous():
        return _run(a, b, scale_a, scale_b, bias, out)
    out.copy_(_run(a, b, scale_a, scale_b, bias, torch.empty(out.shape, dtype=out.dtype, device=out.device)))
    return out
