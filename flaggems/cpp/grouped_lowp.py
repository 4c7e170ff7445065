"""C++ grouped ``fp8_gemm`` / ``fp4_gemm`` (csrc/gemm_lowp.cpp ``grouped_lowp``): the MoE experts of a step in one call.

    grouped_fp8_gemm_cpp(a [M, K] e4m3, a_s [M, ceil(K/128)], b [G, N, K] e4m3, b_s [G, ceil(N/128), ceil(K/128)], offs)
    grouped_fp4_gemm_cpp(a [M, K] e4m3, a_s [M, ceil(K/128)], b [G, N, K/2] packed e2m1, b_s [G, N, ceil(K/32)], offs)

Rows offs[e-1]:offs[e] of a (token rows sorted by expert, int32 cumulative ends as for ``torch._grouped_mm``)
are multiplied by expert e's weight with DeepSeek-V4's block-scale semantics (flaggems/ops/gemm/fp8_gemm.py,
fp4_gemm.py); rows past offs[-1] are zero. Scales: a_s fp32 or E8M0, fp8 b_s fp32 or E8M0, fp4 b_s E8M0.
One call streams the weights of every used expert once, split evenly over torch.get_num_threads() threads; at
decode (a few tokens per expert) each expert runs the weight-streaming decode kernel. The dequantised weight is
never materialised.

Registered as the ``cpp`` implementation of ``aten::_scaled_grouped_mm`` (and ``_scaled_grouped_mm_v2``) for the
block recipes :func:`flaggems.ops.gemm.scaled.grouped_block_recipe` recognises (v2: recipe_a [BlockWise1x128],
recipe_b [BlockWise128x128] (fp8) or [BlockWise1x32] not swizzled (fp4)); other calls go to Triton / native.
"""
from __future__ import annotations

import torch

from ..ops.gemm.recipes import BLOCK_1x32, BLOCK_1x128, BLOCK_128x128, NO_SWIZZLE
from ..ops.gemm.scaled import grouped_block_recipe
from ..registry import aten_op_exists, implement
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


# ----------------------------------------------------------------------------------------------------------
# aten::_scaled_grouped_mm (+ _v2): the block-scaled MoE recipes (layouts: grouped_block_recipe)

def _cpu(*ts):
    return all(t.is_cpu for t in ts if isinstance(t, torch.Tensor))


def scaled_grouped_supports(a, b, scale_a, scale_b, offs=None, bias=None, scale_result=None, out_dtype=None,
                            use_fast_accum=False):
    """Registry predicate: None when the call is a block recipe this kernel runs (CPU tensors), else why."""
    if not _cpu(a, b, scale_a, scale_b, offs):
        return "CPU tensors only"
    if scale_result is not None:
        return "scale_result"
    if grouped_block_recipe(a, b, scale_a, scale_b, offs, bias, out_dtype) is None:
        return "not a 2D x 3D block-scaled (1x128 x 128x128 fp8 / 1x128 x 1x32 fp4) call"
    return None


def scaled_grouped_mm_cpp(a, b, scale_a, scale_b, offs=None, bias=None, scale_result=None, out_dtype=None,
                          use_fast_accum=False):
    # the kernel's frame is the weight as stored, [G, N, K(/2)], with its scales [G, ceil(N/128), kb] (fp8)
    fp4 = grouped_block_recipe(a, b, scale_a, scale_b, offs, bias, out_dtype) == "fp4"
    w = b.transpose(-2, -1)
    if fp4:
        return grouped_fp4_gemm_cpp(a, scale_a, w, scale_b, offs, torch.bfloat16)
    return grouped_fp8_gemm_cpp(a, scale_a, w, scale_b.transpose(-2, -1), offs, torch.bfloat16)


def _v2_recipe_ok(scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, b) -> bool:
    if len(scale_a) != 1 or len(scale_b) != 1 or list(recipe_a) != [BLOCK_1x128]:
        return False
    if list(swizzle_a) not in ([], [NO_SWIZZLE]) or list(swizzle_b) not in ([], [NO_SWIZZLE]):
        return False
    return list(recipe_b) == ([BLOCK_1x32] if b.dtype != torch.float8_e4m3fn else [BLOCK_128x128])


def scaled_grouped_v2_supports(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, offs=None,
                               bias=None, out_dtype=None, contraction_dim=(), use_fast_accum=False):
    if not _v2_recipe_ok(scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, b):
        return "recipes other than 1x128 x 128x128 (fp8) / 1x128 x 1x32 (fp4)"
    if len(contraction_dim):
        return "contraction_dim"
    return scaled_grouped_supports(a, b, scale_a[0], scale_b[0], offs, bias, None, out_dtype)


def scaled_grouped_mm_v2_cpp(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, offs=None,
                             bias=None, out_dtype=None, contraction_dim=(), use_fast_accum=False):
    return scaled_grouped_mm_cpp(a, b, scale_a[0], scale_b[0], offs, bias, None, out_dtype)


_GROUPED_DTYPES = {torch.float8_e4m3fn, torch.float8_e8m0fnu, torch.float32, torch.int32, torch.float4_e2m1fn_x2}
if aten_op_exists("aten::_scaled_grouped_mm"):
    implement("aten::_scaled_grouped_mm", kind="cpp", dtypes=_GROUPED_DTYPES, supports=scaled_grouped_supports)(
        scaled_grouped_mm_cpp)
if aten_op_exists("aten::_scaled_grouped_mm_v2"):
    implement("aten::_scaled_grouped_mm_v2", kind="cpp", dtypes=_GROUPED_DTYPES,
              supports=scaled_grouped_v2_supports)(scaled_grouped_mm_v2_cpp)
