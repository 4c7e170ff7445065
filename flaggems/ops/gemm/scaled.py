"""Scaled (quantised) matmul: ``aten::_scaled_mm`` (+ ``.out``), ``aten::_scaled_mm_v2`` (+ ``.out``) and
``aten::_scaled_grouped_mm`` (+ ``_v2``), whichever of them the installed torch defines.

    C[m, n] = ( sum_k  A[m, k] * sa(m, k) * B[k, n] * sb(n, k) ) * gs + bias[n]        (fp32 accumulation)
    C        = C / scale_result    when the output is float8_e4m3fn / float8_e5m2 and scale_result is given
    C        = C cast to out_dtype (default: mat_a's dtype for _scaled_mm, as torch)

A[M, K] and B[K, N] are fp8 (e4m3fn / e5m2 / fnuz) or packed fp4 (``float4_e2m1fn_x2``: A [M, K/2] and
B [K/2, N], two values per byte along K, element 2j in the low nibble). The scale recipes (TensorWise, RowWise,
BlockWise 1x128 / 128x128, MX 1x32 e8m0, NVFP4 1x16 e4m3) and their shapes are in recipes.py, which turns them
into a plan of the one GEMM kernel; the MX swizzled layout is in flaggems/formats.py.

Allowed pairs (as torch's CUDA kernels): TW x TW, RW x RW, 1x128 x 128x128, 128x128 x 1x128, 1x128 x 1x128,
MXFP8 (fp8 x fp8, 1x32 e8m0), MXFP4 (fp4 x fp4, 1x32 e8m0), NVFP4 (fp4 x fp4, 1x16 e4m3 [+ global]).
torch's CPU kernel runs only TensorWise/RowWise; for the other recipes this module *defines* the result as the
dequantise-then-matmul reference above (docs/scaled_mm.md) and serves it on every device. ``use_fast_accum``
is accepted and ignored (always fp32 accumulation).

``_scaled_grouped_mm``: RowWise fp8 (scale_a per row of A, scale_b per (group, column) of B; 2-D operands take
1-D scales, stacked per group for 2D x 2D) in the four modes of ``_grouped_mm``; bf16 output.
"""
from __future__ import annotations

import torch

from ...formats import E8M0, FP8_VALUES, dequant_ref, is_fp4, unswizzle
from ...registry import aten_op_exists, implement
from . import grouped
from .plan import ON_ACC, Plan, Scale, fp8_dot, launch
from .recipes import (BLOCK_1x16, BLOCK_1x32, BLOCK_1x128, BLOCK_128x128, ROWWISE, TENSORWISE, TILES, _cdiv,
                      _is_f32_scalar, plan_v1, plan_v2)

OUT_DTYPES = frozenset({torch.bfloat16, torch.float16, torch.float32, torch.float8_e4m3fn, torch.float8_e5m2})
_FP8_OUT_SCALED = frozenset({torch.float8_e4m3fn, torch.float8_e5m2})


# ----------------------------------------------------------------------------------------------------------
# references (fp64 dequantise-then-matmul, written independently of the kernel's scale plans)

def _expand(s: torch.Tensor, rows: int, K: int, row_block: int, k_block: int) -> torch.Tensor:
    """[ceil(rows/rb), ceil(K/kb)] block scales -> per element [rows, K]."""
    return s.repeat_interleave(row_block, 0)[:rows].repeat_interleave(k_block, 1)[:, :K]


def dequant_scale_ref(s, recipe: int, rows: int, K: int, *, api: str, operand: str, swizzled: bool = False):
    """Per-element fp64 scales [rows, K] of one operand in its [rows, K] frame (A: [M, K]; B: Bᵀ [N, K])."""
    if recipe == TENSORWISE:
        return dequant_ref(s).reshape(1, 1).expand(rows, K)
    if recipe == ROWWISE:
        return dequant_ref(s).reshape(rows, 1).expand(rows, K)
    if recipe in (BLOCK_1x32, BLOCK_1x16):
        g = 32 if recipe == BLOCK_1x32 else 16
        kg = _cdiv(K, g)
        d = dequant_ref(s)
        d = unswizzle(d, rows, kg) if swizzled else d.reshape(rows, kg)
        return _expand(d, rows, K, 1, g)
    kb = _cdiv(K, 128)
    if recipe == BLOCK_1x128:
        t = s if (api == "v2" or operand == "a") else s.t()        # v1 scale_b is [kb, N]
        return _expand(t.to(torch.float64), rows, K, 1, 128)
    if recipe == BLOCK_128x128:
        t = s if (api == "v1" and operand == "a") else s.t()       # v1 B [kb, nb]; v2 [kb|L4, rb]
        return _expand(t[:, :kb].to(torch.float64), rows, K, 128, 128)
    raise ValueError(f"unknown recipe {recipe}")


def scaled_mm_ref(a, b, scale_a, scale_b, recipe_a: int, recipe_b: int, *, api: str = "v1", swizzle_a=False,
                  swizzle_b=False, bias=None, out_dtype=None, scale_result=None, global_a=None, global_b=None):
    """fp64 dequantise-then-matmul reference for ``_scaled_mm`` (api "v1") / ``_scaled_mm_v2`` (api "v2")."""
    A = dequant_ref(a, 1)                         # [M, K]
    Bt = dequant_ref(b.t(), 1)                    # [N, K]
    M, K = A.shape
    N = Bt.shape[0]
    A = A * dequant_scale_ref(scale_a, recipe_a, M, K, api=api, operand="a", swizzled=swizzle_a)
    Bt = Bt * dequant_scale_ref(scale_b, recipe_b, N, K, api=api, operand="b", swizzled=swizzle_b)
    out = A @ Bt.t()
    if global_a is not None:
        out = out * (global_a.double().reshape(()) * global_b.double().reshape(()))
    if bias is not None:
        out = out + bias.double()
    dt = out_dtype or a.dtype
    if scale_result is not None and dt in _FP8_OUT_SCALED:
        out = out / scale_result.double().reshape(())
    return out


def scaled_grouped_mm_ref(a, b, scale_a, scale_b, offs=None, out_dtype=torch.bfloat16):
    """fp64 reference of rowwise ``_scaled_grouped_mm``: dequantise each operand, then ``grouped_mm_ref``."""
    A, B = a.double(), b.double()
    a2, b2 = a.dim() == 2, b.dim() == 2
    sa, sb = scale_a.double(), scale_b.double()
    if a2 and b2:
        G, M, N = offs.shape[0], a.shape[0], b.shape[1]
        ends = [int(x) for x in offs.tolist()]
        starts = [0] + ends[:-1]
        out = torch.zeros(G, M, N, dtype=torch.float64)
        for g, (s, e) in enumerate(zip(starts, ends)):
            out[g] = (A[:, s:e] @ B[s:e]) * sa[g * M:(g + 1) * M, None] * sb[None, g * N:(g + 1) * N]
        return out
    if a2:
        A = A * sa[:, None]
        B = B * sb[:, None, :]
    elif b2:
        A = A * sa[:, :, None]
        B = B * sb[None, :]
    else:
        A = A * sa[:, :, None]
        B = B * sb[:, None, :]
    return grouped.grouped_mm_ref(A, B, offs, out_dtype=torch.float64)


# ----------------------------------------------------------------------------------------------------------
# aten::_scaled_mm (v1)

def _common_reason(a, b, bias, out_dtype, out=None):
    if a.dim() != 2 or b.dim() != 2:
        return "operands must be matrices"
    if a.shape[1] != b.shape[0]:
        return "shape mismatch"
    if bias is not None and (bias.numel() != b.shape[1] or bias.dtype not in (torch.float32, torch.bfloat16,
                                                                                 torch.float16)):
        return "bias size/dtype"
    if bias is not None and bias.dim() != 1:
        return "bias must be 1-D"
    if out_dtype is not None and out_dtype not in OUT_DTYPES:
        return f"out_dtype {out_dtype}"
    if out is not None:
        if out_dtype is not None and out.dtype != out_dtype:
            return "out_dtype must match out"
        if tuple(out.shape) != (a.shape[0], b.shape[1]) or out.dtype not in OUT_DTYPES:
            return "out shape/dtype"
    return None


def v1_reason(a, b, scale_a, scale_b, bias=None, scale_result=None, out_dtype=None, use_fast_accum=False,
               out=None):
    r = _common_reason(a, b, bias, out_dtype, out)
    if r:
        return r
    dt = out.dtype if out is not None else (out_dtype or a.dtype)
    if dt not in OUT_DTYPES:
        return f"output dtype {dt}"
    if scale_result is not None and not _is_f32_scalar(scale_result):
        return "scale_result must be a float scalar"
    if use_fast_accum and is_fp4(a):
        return "use_fast_accum with fp4"
    if plan_v1(a, b, scale_a, scale_b) is None:
        return "scaling configuration not accepted"
    return None


def _run_v1(a, b, scale_a, scale_b, bias, scale_result, out):
    plan = plan_v1(a, b, scale_a, scale_b)
    # torch's CPU kernel divides an fp8 result by scale_result (other output dtypes ignore it)
    sr = scale_result.reshape(1) if scale_result is not None and out.dtype in _FP8_OUT_SCALED else None
    launch(plan, a.unsqueeze(0), b.unsqueeze(0), out.unsqueeze(0), bias=bias, scale_result=sr)
    return out


@implement("aten::_scaled_mm", kind="triton", requires=("fp8",), supports=v1_reason)
def scaled_mm(a, b, scale_a, scale_b, bias=None, scale_result=None, out_dtype=None, use_fast_accum=False):
    out = torch.empty((a.shape[0], b.shape[1]), dtype=out_dtype or a.dtype, device=a.device)
    return _run_v1(a, b, scale_a, scale_b, bias, scale_result, out)


@implement("aten::_scaled_mm.out", kind="triton", requires=("fp8",), supports=v1_reason)
def scaled_mm_out(a, b, scale_a, scale_b, bias=None, scale_result=None, out_dtype=None, use_fast_accum=False,
                  *, out):
    return _run_v1(a, b, scale_a, scale_b, bias, scale_result, out)


# ----------------------------------------------------------------------------------------------------------
# aten::_scaled_mm_v2 (where this torch defines it)

def _v2_reason(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, bias, out_dtype,
               contraction_dim=(), use_fast_accum=False, out=None):
    r = _common_reason(a, b, bias, out_dtype, out)
    if r:
        return r
    if len(contraction_dim) not in (0, 2) or (len(contraction_dim) == 2 and tuple(contraction_dim) != (1, 0)):
        return "contraction_dim other than (1, 0)"
    dt = out.dtype if out is not None else (out_dtype or a.dtype)
    if dt not in OUT_DTYPES:
        return f"output dtype {dt}"
    if use_fast_accum and is_fp4(a):
        return "use_fast_accum with fp4"
    if plan_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b) is None:
        return "scaling configuration not accepted"
    return None


def _run_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, bias, out):
    plan = plan_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b)
    launch(plan, a.unsqueeze(0), b.unsqueeze(0), out.unsqueeze(0), bias=bias)
    return out


if aten_op_exists("aten::_scaled_mm_v2"):
    @implement("aten::_scaled_mm_v2", kind="triton", requires=("fp8",), supports=_v2_reason)
    def scaled_mm_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, bias, out_dtype,
                     contraction_dim=(), use_fast_accum=False):
        out = torch.empty((a.shape[0], b.shape[1]), dtype=out_dtype or a.dtype, device=a.device)
        return _run_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, bias, out)

if aten_op_exists("aten::_scaled_mm_v2.out"):
    @implement("aten::_scaled_mm_v2.out", kind="triton", requires=("fp8",), supports=_v2_reason)
    def scaled_mm_v2_out(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, bias, out_dtype,
                         contraction_dim=(), use_fast_accum=False, *, out):
        return _run_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, bias, out)


# ----------------------------------------------------------------------------------------------------------
# aten::_scaled_grouped_mm (rowwise fp8), wherever the op exists (the registry serves ops torch has no kernel
# for at the vendor's key, e.g. on CPU)

def _grouped_check(a, b, scale_a, scale_b, offs, bias, scale_result, out_dtype):
    """Raise like torch's CUDA checks for a rowwise _scaled_grouped_mm call."""
    if a.dtype not in FP8_VALUES or b.dtype not in FP8_VALUES or a.dtype != b.dtype:
        raise RuntimeError(f"Expected inputs of E4M3 FP8 type but got mat_a.dtype={a.dtype} and "
                           f"mat_b.dtype={b.dtype}.")
    if a.dim() not in (2, 3) or b.dim() not in (2, 3):
        raise RuntimeError(f"Multiplicands must be 2D or 3D but got mat_a.dim()={a.dim()} and mat_b.dim()={b.dim()}")
    a2, b2 = a.dim() == 2, b.dim() == 2
    if (not a2 or not b2) and a.shape[-1] != b.shape[-2]:
        raise RuntimeError("contraction dimension of mat_a and mat_b must match")
    if a2 and b2 and a.shape[1] != b.shape[0]:
        raise RuntimeError("contraction dimension of mat_a and mat_b must match")
    if (offs is not None) != (a2 or b2):
        raise RuntimeError("Have to provide offsets if there is a 2d matrix, or no offset if both matrices are 3d")
    if offs is not None:
        if offs.dim() != 1 or offs.dtype != torch.int32:
            raise RuntimeError("Offsets tensor must be a 1D int32 tensor")
        G = offs.shape[0]
        if a2 and not b2 and b.shape[0] != G or b2 and not a2 and a.shape[0] != G:
            raise RuntimeError("matrix batch sizes have to match")
    elif a.shape[0] != b.shape[0]:
        raise RuntimeError("batched dimension has to match")
    if bias is not None:
        raise RuntimeError("Bias tensor provided, but it is not supported yet.")
    if scale_result is not None:
        raise RuntimeError("Scale result tensor provided, but it is not supported yet.")
    if out_dtype is not None and out_dtype != torch.bfloat16:
        raise RuntimeError("If output dtype provided, it must be torch.bfloat16.")
    if scale_a.dtype != torch.float32 or scale_b.dtype != torch.float32:
        raise RuntimeError(f"For FP8 rowwise scaling scales must both be float32, got {scale_a.dtype} and "
                           f"{scale_b.dtype}")
    G = offs.shape[0] if offs is not None else a.shape[0]

    def want(name, s, shape):
        if tuple(s.shape) != tuple(shape):
            raise RuntimeError(f"Expected {name} of shape {tuple(shape)}, got {tuple(s.shape)}")

    if a2 and b2:
        want("scale_a", scale_a, (G * a.shape[0],))
        want("scale_b", scale_b, (G * b.shape[1],))
    elif a2:
        want("scale_a", scale_a, (a.shape[0],))
        want("scale_b", scale_b, (G, b.shape[2]))
    elif b2:
        want("scale_a", scale_a, (G, a.shape[1]))
        want("scale_b", scale_b, (b.shape[1],))
    else:
        want("scale_a", scale_a, (G, a.shape[1]))
        want("scale_b", scale_b, (G, b.shape[2]))


def _grouped_reason(a, b, scale_a, scale_b, offs=None, bias=None, scale_result=None, out_dtype=None,
                    use_fast_accum=False):
    if not isinstance(scale_a, torch.Tensor) or not isinstance(scale_b, torch.Tensor):
        return "scales"
    if E8M0 is not None and (scale_a.dtype == E8M0 or scale_b.dtype == E8M0):
        return "MXFP8 grouped recipe not implemented"
    return None


def _batched_rowwise(a, b, sa, sb, out):
    """3D x 3D rowwise: out[g] = (a[g] @ b[g]) * sa[g, m] * sb[g, n] (scales fp32 [G, M] / [G, N])."""
    plan = Plan(TILES, "rowwise_batched", Scale(sa, sa.stride(1), at=ON_ACC, s_batch=sa.stride(0)),
                Scale(sb, sb.stride(1), at=ON_ACC, s_batch=sb.stride(0)), dot=fp8_dot(a, b))
    return launch(plan, a, b, out)


def scaled_grouped_mm_impl(a, b, scale_a, scale_b, offs=None, bias=None, scale_result=None, out_dtype=None,
                           use_fast_accum=False):
    _grouped_check(a, b, scale_a, scale_b, offs, bias, scale_result, out_dtype)
    out = grouped.out_tensor(a, b, offs, torch.bfloat16)
    if a.dim() == 3 and b.dim() == 3:
        _batched_rowwise(a, b, scale_a, scale_b, out)
    else:
        grouped.run_grouped(a, b, offs, out, scales=(scale_a, scale_b), op="scaled_grouped_mm")
    return out


if aten_op_exists("aten::_scaled_grouped_mm"):
    implement("aten::_scaled_grouped_mm", kind="triton", requires=("fp8",), supports=_grouped_reason)(
        scaled_grouped_mm_impl)


def _grouped_v2_reason(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, offs=None, bias=None,
                       out_dtype=None, contraction_dim=(), use_fast_accum=False):
    if len(scale_a) != 1 or len(scale_b) != 1 or list(recipe_a) != [ROWWISE] or list(recipe_b) != [ROWWISE]:
        return "only the RowWise recipe is implemented"
    if len(contraction_dim) not in (0, 2) or (len(contraction_dim) == 2 and tuple(contraction_dim) != (1, 0)
                                              and a.dim() == 2 and b.dim() == 2):
        return "contraction_dim"
    return _grouped_reason(a, b, scale_a[0], scale_b[0], offs, bias)


def scaled_grouped_mm_v2_impl(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, offs=None,
                              bias=None, out_dtype=None, contraction_dim=(), use_fast_accum=False):
    return scaled_grouped_mm_impl(a, b, scale_a[0], scale_b[0], offs, bias, None, out_dtype, use_fast_accum)


if aten_op_exists("aten::_scaled_grouped_mm_v2"):
    implement("aten::_scaled_grouped_mm_v2", kind="triton", requires=("fp8",), supports=_grouped_v2_reason)(
        scaled_grouped_mm_v2_impl)
