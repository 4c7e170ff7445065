"""Scaled (quantised) matmul: ``aten::_scaled_mm`` (+ ``.out``), ``aten::_scaled_mm_v2`` (+ ``.out``) and
``aten::_scaled_grouped_mm`` (+ ``_v2``), whichever of them the installed torch defines.

    C[m, n] = ( sum_k  A[m, k] * sa(m, k) * B[k, n] * sb(n, k) ) * gs + bias[n]        (fp32 accumulation)
    C        = C / scale_result    when the output is float8_e4m3fn / float8_e5m2 and scale_result is given
    C        = C cast to out_dtype (default: mat_a's dtype for _scaled_mm, as torch)

A[M, K] and B[K, N] are fp8 (e4m3fn / e5m2 / fnuz) or packed fp4 (``float4_e2m1fn_x2``: A [M, K/2] and
B [K/2, N], two values per byte along K, element 2j in the low nibble). ``sa(m, k)`` / ``sb(n, k)`` by recipe
(scale frames: A as [M, K], B as Bᵀ [N, K]; "kb" = ceil(K/128), "L4" = round_up(kb, 4)):

    recipe               scale dtype   _scaled_mm (v1) shape        _scaled_mm_v2 shape
    TensorWise           fp32          numel 1                      numel 1
    RowWise              fp32          A [M, 1], B [1, N]           numel M / numel N
    BlockWise1x128       fp32          A [M, kb], B [kb, N]         A [M, kb], B [N, kb]
    BlockWise128x128     fp32          A [ceil(M/128), kb],         A [kb or L4, ceil(M/128)],
                                       B [kb, ceil(N/128)]          B [kb or L4, ceil(N/128)]
    BlockWise1x32  (MX)  e8m0          swizzled, numel              SWIZZLE_32_4_4: as v1; NO_SWIZZLE:
                                       round_up(R,128)*round_up(ceil(K/32),4)    [R, ceil(K/32)] row-major
    BlockWise1x16 (NVFP4) e4m3fn       swizzled as above (per 16)   + optional fp32 global scale each

Allowed pairs (as torch's CUDA kernels): TW x TW, RW x RW, 1x128 x 128x128, 128x128 x 1x128, 1x128 x 1x128,
MXFP8 (fp8 x fp8, 1x32 e8m0), MXFP4 (fp4 x fp4, 1x32 e8m0), NVFP4 (fp4 x fp4, 1x16 e4m3 [+ global]).
The swizzled layout is cuBLAS's 128x4 block-scaling layout (torch.testing's ``to_blocked``):
``offset(r, c) = ((r//128)*ceil(C/4) + c//4)*512 + (r%32)*16 + ((r%128)//32)*4 + c%4``.
torch's CPU kernel runs only TensorWise/RowWise; for the other recipes this module *defines* the result as the
dequantise-then-matmul reference above (docs/scaled_mm.md) and serves it on every device.

Kernel: one tiled Triton GEMM, constexpr-specialised by scale mode:
  * KMODE 0 (TensorWise/RowWise): plain fp8 dot loop, scales applied once to the fp32 accumulator;
  * KMODE 1 (BlockWise 128): per 128-block partial dot, ``acc += P * sa[m, kb] * sb[n, kb]``;
  * KMODE 2 (MX / NVFP4): operands decoded and multiplied by their (power-of-two / e4m3) block scales in
    registers (exact in bf16), bf16 dot with fp32 accumulation; or ``tl.dot_scaled`` where the vendor has it.
fp8 operands of different types (or on a vendor without fp8 dot) go through bf16 (exact). ``use_fast_accum``
is accepted and ignored (always fp32 accumulation).

``_scaled_grouped_mm``: RowWise fp8 (scale_a per row of A, scale_b per (group, column) of B; 2-D operands take
1-D scales, stacked per group for 2D x 2D) in the four modes of ``_grouped_mm``; bf16 output.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import triton
import triton.language as tl

from ... import registry, runtime
from ...registry import implement
from ...runtime import autotune
from . import grouped as _gmm
from ...formats import (DOT_SCALED_FORMAT, E4M3, E8M0, FP4, FP8_VALUES, decode_scale, dequant_ref, e2m1_to_f32,
                       swizzled_offset, unswizzle)

FP8 = FP8_VALUES
OUT_DTYPES = frozenset({torch.bfloat16, torch.float16, torch.float32, torch.float8_e4m3fn, torch.float8_e5m2})
_FP8_OUT_SCALED = frozenset({torch.float8_e4m3fn, torch.float8_e5m2})

# torch.nn.functional.ScalingType / SwizzleType values
TENSORWISE, ROWWISE, BLOCK_1x16, BLOCK_1x32, BLOCK_1x128, BLOCK_128x128 = range(6)
NO_SWIZZLE, SWIZZLE_32_4_4 = 0, 1
_RECIPE_NAMES = {TENSORWISE: "TensorWise", ROWWISE: "RowWise", BLOCK_1x16: "BlockWise1x16",
                 BLOCK_1x32: "BlockWise1x32", BLOCK_1x128: "BlockWise1x128", BLOCK_128x128: "BlockWise128x128"}


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _cdiv(a, b) * b


# ----------------------------------------------------------------------------------------------------------
# kernel

@triton.jit
def _scale_off(r, c, s_row, s_k, NCB, SWZ: tl.constexpr):
    """Offset of scale (row unit r, k group c): strided, or cuBLAS's 128x4 block-swizzled layout."""
    if SWZ:
        off = swizzled_offset(r, c, NCB)
    else:
        off = r.to(tl.int64) * s_row + c.to(tl.int64) * s_k
    return off


@triton.jit
def _load_a(a_base, s_ak, k0, K, mmask, FP4: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """A tile [BLOCK_M, BLOCK_K]: raw fp8 values, or packed fp4 bytes [BLOCK_M, BLOCK_K // 2]."""
    if FP4:
        kh = k0 // 2 + tl.arange(0, BLOCK_K // 2)
        t = tl.load(a_base + kh[None, :].to(tl.int64) * s_ak, mask=mmask[:, None] & (kh[None, :] < K // 2), other=0)
    else:
        kk = k0 + tl.arange(0, BLOCK_K)
        t = tl.load(a_base + kk[None, :].to(tl.int64) * s_ak, mask=mmask[:, None] & (kk[None, :] < K), other=0.0)
    return t


@triton.jit
def _load_b(b_base, s_bk, k0, K, nmask, FP4: tl.constexpr, BLOCK_K: tl.constexpr):
    if FP4:
        kh = k0 // 2 + tl.arange(0, BLOCK_K // 2)
        t = tl.load(b_base + kh[:, None].to(tl.int64) * s_bk, mask=(kh[:, None] < K // 2) & nmask[None, :], other=0)
    else:
        kk = k0 + tl.arange(0, BLOCK_K)
        t = tl.load(b_base + kk[:, None].to(tl.int64) * s_bk, mask=(kk[:, None] < K) & nmask[None, :], other=0.0)
    return t


@triton.jit
def _a_f32(t, FP4: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    if FP4:
        code = t.to(tl.int32)
        v = tl.reshape(tl.join(e2m1_to_f32(code & 0xF), e2m1_to_f32((code >> 4) & 0xF)), (BLOCK_M, BLOCK_K))
    else:
        v = t.to(tl.float32)
    return v


@triton.jit
def _b_f32(t, FP4: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr):
    if FP4:
        code = t.to(tl.int32)
        w = tl.join(e2m1_to_f32(code & 0xF), e2m1_to_f32((code >> 4) & 0xF))      # [BK/2, BN, 2]
        v = tl.reshape(tl.permute(w, (0, 2, 1)), (BLOCK_K, BLOCK_N))
    else:
        v = t.to(tl.float32)
    return v


@triton.jit
def _scaled_mm_kernel(
        a_ptr, b_ptr, c_ptr, sa_ptr, sb_ptr, bias_ptr, gs_ptr, sr_ptr,
        M, N, K, KG,
        s_ab, s_am, s_ak, s_bb, s_bk, s_bn, s_cb, s_cm, s_cn,
        s_sab, s_sar, s_sak, s_sbb, s_sbr, s_sbk, s_bias,
        A_FP4: tl.constexpr, B_FP4: tl.constexpr, CAST: tl.constexpr,
        KMODE: tl.constexpr, GROUP: tl.constexpr, SA_DIV: tl.constexpr, SB_DIV: tl.constexpr,
        SA_SWZ: tl.constexpr, SB_SWZ: tl.constexpr, S_FMT: tl.constexpr, S_ONE: tl.constexpr,
        DOT_SCALED: tl.constexpr, A_FMT: tl.constexpr, B_FMT: tl.constexpr,
        HAS_BIAS: tl.constexpr, HAS_GS: tl.constexpr, OUT_DIV: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    pid = tl.program_id(0)
    bt = tl.program_id(1).to(tl.int64)
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    group = GROUP_M * num_n
    first_m = (pid // group) * GROUP_M
    size_m = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % size_m
    pid_n = (pid % group) // size_m
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mmask = rm < M
    nmask = rn < N
    rm64 = rm.to(tl.int64)
    rn64 = rn.to(tl.int64)
    a_base = a_ptr + bt * s_ab + rm64[:, None] * s_am
    b_base = b_ptr + bt * s_bb + rn64[None, :] * s_bn
    sa_base = sa_ptr + bt * s_sab
    sb_base = sb_ptr + bt * s_sbb
    ra = rm // SA_DIV
    rb = rn // SB_DIV
    ncb = (KG + 3) // 4
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        a = _load_a(a_base, s_ak, k0, K, mmask, A_FP4, BLOCK_M, BLOCK_K)
        b = _load_b(b_base, s_bk, k0, K, nmask, B_FP4, BLOCK_K)
        if KMODE == 2:
            kg = k0 // GROUP + tl.arange(0, BLOCK_K // GROUP)
            gmask = kg < KG
            sa = tl.load(sa_base + _scale_off(ra[:, None], kg[None, :], s_sar, s_sak, ncb, SA_SWZ),
                         mask=mmask[:, None] & gmask[None, :], other=S_ONE)                  # [BM, BK/G]
            sb = tl.load(sb_base + _scale_off(rb[:, None], kg[None, :], s_sbr, s_sbk, ncb, SB_SWZ),
                         mask=nmask[:, None] & gmask[None, :], other=S_ONE)                    # [BN, BK/G]
            if DOT_SCALED:
                acc += tl.dot_scaled(a, sa, A_FMT, b, sb, B_FMT)
            else:
                af = tl.reshape(_a_f32(a, A_FP4, BLOCK_M, BLOCK_K), (BLOCK_M, BLOCK_K // GROUP, GROUP))
                af = tl.reshape(af * decode_scale(sa, S_FMT)[:, :, None], (BLOCK_M, BLOCK_K))
                bf = tl.reshape(_b_f32(b, B_FP4, BLOCK_K, BLOCK_N), (BLOCK_K // GROUP, GROUP, BLOCK_N))
                bf = tl.reshape(bf * tl.trans(decode_scale(sb, S_FMT))[:, None, :], (BLOCK_K, BLOCK_N))
                acc = tl.dot(af.to(tl.bfloat16), bf.to(tl.bfloat16), acc, out_dtype=tl.float32)
        else:
            if A_FP4 or CAST:
                a = _a_f32(a, A_FP4, BLOCK_M, BLOCK_K).to(tl.bfloat16)
            if B_FP4 or CAST:
                b = _b_f32(b, B_FP4, BLOCK_K, BLOCK_N).to(tl.bfloat16)
            if KMODE == 1:
                kg = k0 // GROUP
                sa = decode_scale(tl.load(sa_base + _scale_off(ra, kg, s_sar, s_sak, ncb, False),
                                           mask=mmask, other=0.0), S_FMT)
                sb = decode_scale(tl.load(sb_base + _scale_off(rb, kg, s_sbr, s_sbk, ncb, False),
                                           mask=nmask, other=0.0), S_FMT)
                p = tl.dot(a, b, out_dtype=tl.float32)
                acc += p * sa[:, None] * sb[None, :]
            else:
                acc = tl.dot(a, b, acc, out_dtype=tl.float32)
    if KMODE == 0:
        sa = decode_scale(tl.load(sa_base + ra.to(tl.int64) * s_sar, mask=mmask, other=0.0), S_FMT)
        sb = decode_scale(tl.load(sb_base + rb.to(tl.int64) * s_sbr, mask=nmask, other=0.0), S_FMT)
        acc = acc * sa[:, None] * sb[None, :]
    if HAS_GS:
        acc = acc * tl.load(gs_ptr)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn64 * s_bias, mask=nmask, other=0.0).to(tl.float32)[None, :]
    if OUT_DIV:
        acc = acc / tl.load(sr_ptr)
    c = c_ptr + bt * s_cb + rm64[:, None] * s_cm + rn64[None, :] * s_cn
    tl.store(c, acc.to(c_ptr.dtype.element_ty), mask=mmask[:, None] & nmask[None, :])


# ----------------------------------------------------------------------------------------------------------
# scale specifications

class Scale(NamedTuple):
    """How the kernel reads one operand's scales: value(r, c) at ``t[off(r // div, c)]``."""
    t: torch.Tensor          # fp32 tensor or uint8 view (e8m0 / e4m3 bytes)
    s_row: int               # stride per row unit
    s_k: int                 # stride per K group
    div: int = 1             # rows per scale row (1, or 128 for 128x128 blocks)
    swz: bool = False        # cuBLAS 128x4 swizzled layout
    fmt: int = 0             # 0 fp32, 1 e8m0, 2 e4m3


class Plan(NamedTuple):
    kmode: int               # 0 tensor/row-wise, 1 blockwise (post-scale), 2 MX/NVFP4 (pre-scale)
    group: int               # K elements per scale group (0 for kmode 0)
    sa: Scale
    sb: Scale
    gs: Optional[torch.Tensor] = None   # fp32 scalar product of NVFP4 global scales
    name: str = ""


def _is_f32_scalar(s) -> bool:
    return isinstance(s, torch.Tensor) and s.dtype == torch.float32 and s.numel() == 1


def _fp32_2d(s, shape) -> bool:
    return isinstance(s, torch.Tensor) and s.dtype == torch.float32 and s.dim() == 2 and tuple(s.shape) == tuple(shape)


def _tensorwise(s) -> Scale:
    return Scale(s.reshape(()) if s.dim() else s, 0, 0)


def _swizzled(s, rows: int, kg: int, fmt_dtype) -> Optional[Scale]:
    if s.dtype != fmt_dtype or s.numel() != _round_up(rows, 128) * _round_up(kg, 4) or not s.is_contiguous():
        return None
    return Scale(s.view(torch.uint8), 0, 0, 1, True, 1 if fmt_dtype == E8M0 else 2)


def _plain_groups(s, rows: int, kg: int, fmt_dtype) -> Optional[Scale]:
    """NO_SWIZZLE block scales: a [rows, kg] tensor (any strides) or a contiguous one with rows*kg elements."""
    if s.dtype != fmt_dtype:
        return None
    fmt = 1 if fmt_dtype == E8M0 else 2
    u = s.view(torch.uint8)
    if s.dim() == 2 and tuple(s.shape) == (rows, kg):
        return Scale(u, u.stride(0), u.stride(1), 1, False, fmt)
    if s.numel() == rows * kg and s.is_contiguous():
        return Scale(u.reshape(-1), kg, 1, 1, False, fmt)
    return None


def _operand_kind(t: torch.Tensor) -> Optional[str]:
    if t.dtype in FP8:
        return "fp8"
    if FP4 is not None and t.dtype == FP4:
        return "fp4"
    return None


def plan_v1(a, b, scale_a, scale_b) -> Optional[Plan]:
    """Recipe of a ``_scaled_mm`` call from its scale tensors (torch's CUDA priority order), or None."""
    ka, kb_ = _operand_kind(a), _operand_kind(b)
    if ka is None or ka != kb_ or not isinstance(scale_a, torch.Tensor) or not isinstance(scale_b, torch.Tensor):
        return None
    M, N = a.shape[0], b.shape[1]
    K = a.shape[1] * (2 if ka == "fp4" else 1)
    if ka == "fp8":
        if _is_f32_scalar(scale_a) and _is_f32_scalar(scale_b):
            return Plan(0, 0, _tensorwise(scale_a), _tensorwise(scale_b), name="tensorwise")
        if _fp32_2d(scale_a, (M, 1)) and _fp32_2d(scale_b, (1, N)):
            return Plan(0, 0, Scale(scale_a, scale_a.stride(0), 0), Scale(scale_b, scale_b.stride(1), 0), name="rowwise")
        kb = _cdiv(K, 128)
        a_1x128 = _fp32_2d(scale_a, (M, kb))
        a_128 = _fp32_2d(scale_a, (_cdiv(M, 128), kb))
        b_1x128 = _fp32_2d(scale_b, (kb, N))
        b_128 = _fp32_2d(scale_b, (kb, _cdiv(N, 128)))

        def sa_(div):
            return Scale(scale_a, scale_a.stride(0), scale_a.stride(1), div)

        def sb_(div):                        # v1 scale_b is [kb, N] / [kb, nb]: rows along dim 1
            return Scale(scale_b, scale_b.stride(1), scale_b.stride(0), div)

        if a_128 and b_1x128:
            return Plan(1, 128, sa_(128), sb_(1), name="block_128x128_1x128")
        if a_1x128 and b_128:
            return Plan(1, 128, sa_(1), sb_(128), name="block_1x128_128x128")
        if a_1x128 and b_1x128:
            return Plan(1, 128, sa_(1), sb_(1), name="block_1x128_1x128")
        if E8M0 is not None:
            kg = _cdiv(K, 32)
            sa, sb = _swizzled(scale_a, M, kg, E8M0), _swizzled(scale_b, N, kg, E8M0)
            if sa is not None and sb is not None:
                return Plan(2, 32, sa, sb, name="mxfp8")
        return None
    # fp4
    if E8M0 is not None:
        kg = _cdiv(K, 32)
        sa, sb = _swizzled(scale_a, M, kg, E8M0), _swizzled(scale_b, N, kg, E8M0)
        if sa is not None and sb is not None:
            return Plan(2, 32, sa, sb, name="mxfp4")
    kg = _cdiv(K, 16)
    sa, sb = _swizzled(scale_a, M, kg, E4M3), _swizzled(scale_b, N, kg, E4M3)
    if sa is not None and sb is not None:
        return Plan(2, 16, sa, sb, name="nvfp4")
    return None


def plan_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b) -> Optional[Plan]:
    """Recipe of a ``_scaled_mm_v2`` call (explicit ScalingType / SwizzleType lists), or None."""
    ka, kb_ = _operand_kind(a), _operand_kind(b)
    if ka is None or ka != kb_ or not scale_a or not scale_b or not recipe_a or not recipe_b:
        return None
    ra, rb = int(recipe_a[0]), int(recipe_b[0])
    swa = int(swizzle_a[0]) if len(swizzle_a) else NO_SWIZZLE
    swb = int(swizzle_b[0]) if len(swizzle_b) else NO_SWIZZLE
    sa_t, sb_t = scale_a[0], scale_b[0]
    M, N = a.shape[0], b.shape[1]
    K = a.shape[1] * (2 if ka == "fp4" else 1)
    if ra == BLOCK_1x16 and rb == BLOCK_1x16 and ka == "fp4":
        if len(scale_a) not in (1, 2) or len(scale_a) != len(scale_b):
            return None
        gs = None
        if len(scale_a) == 2:
            if not (_is_f32_scalar(scale_a[1]) and _is_f32_scalar(scale_b[1])):
                return None
            gs = (scale_a[1].reshape(()) * scale_b[1].reshape(())).reshape(1)
        kg = _cdiv(K, 16)
        mk = _swizzled if swa == SWIZZLE_32_4_4 else _plain_groups
        mkb = _swizzled if swb == SWIZZLE_32_4_4 else _plain_groups
        sa, sb = mk(sa_t, M, kg, E4M3), mkb(sb_t, N, kg, E4M3)
        if sa is None or sb is None:
            return None
        return Plan(2, 16, sa, sb, gs, name="nvfp4")
    if len(scale_a) != 1 or len(scale_b) != 1:
        return None
    if ra == BLOCK_1x32 and rb == BLOCK_1x32 and E8M0 is not None:
        kg = _cdiv(K, 32)
        mk = _swizzled if swa == SWIZZLE_32_4_4 else _plain_groups
        mkb = _swizzled if swb == SWIZZLE_32_4_4 else _plain_groups
        sa, sb = mk(sa_t, M, kg, E8M0), mkb(sb_t, N, kg, E8M0)
        if sa is None or sb is None:
            return None
        return Plan(2, 32, sa, sb, name="mxfp8" if ka == "fp8" else "mxfp4")
    if ka != "fp8":
        return None
    if ra == TENSORWISE and rb == TENSORWISE:
        if _is_f32_scalar(sa_t) and _is_f32_scalar(sb_t):
            return Plan(0, 0, _tensorwise(sa_t), _tensorwise(sb_t), name="tensorwise")
        return None
    if ra == ROWWISE and rb == ROWWISE:
        ok = (isinstance(sa_t, torch.Tensor) and isinstance(sb_t, torch.Tensor) and sa_t.dtype == torch.float32
              and sb_t.dtype == torch.float32 and sa_t.numel() == M and sb_t.numel() == N)
        if not ok:
            return None
        sa_flat, sb_flat = sa_t.reshape(-1), sb_t.reshape(-1)
        return Plan(0, 0, Scale(sa_flat, sa_flat.stride(0), 0), Scale(sb_flat, sb_flat.stride(0), 0), name="rowwise")
    kb = _cdiv(K, 128)

    def side(s, rec, rows):
        if rec == BLOCK_1x128 and _fp32_2d(s, (rows, kb)):
            return Scale(s, s.stride(0), s.stride(1), 1)
        if rec == BLOCK_128x128 and isinstance(s, torch.Tensor) and s.dtype == torch.float32 and s.dim() == 2 \
                and s.shape[0] in (kb, _round_up(kb, 4)) and s.shape[1] == _cdiv(rows, 128):
            return Scale(s, s.stride(1), s.stride(0), 128)
        return None

    if (ra, rb) not in ((BLOCK_1x128, BLOCK_128x128), (BLOCK_128x128, BLOCK_1x128), (BLOCK_1x128, BLOCK_1x128)):
        return None
    sa, sb = side(sa_t, ra, M), side(sb_t, rb, N)
    if sa is None or sb is None:
        return None
    return Plan(1, 128, sa, sb, name=f"block_{'1x128' if ra == BLOCK_1x128 else '128x128'}_"
                                     f"{'1x128' if rb == BLOCK_1x128 else '128x128'}")


# ----------------------------------------------------------------------------------------------------------
# launcher

def _p2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


_GPU_DEFAULTS = [
    {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8, "num_warps": 8, "num_stages": 3},
    {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8, "num_warps": 4, "num_stages": 3},
    {"BLOCK_M": 16, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 1, "num_warps": 4, "num_stages": 4},
]


def _use_dot_scaled(plan: Plan, a, b) -> bool:
    from ...vendors import active as vendor

    if plan.kmode != 2 or plan.sa.fmt != 1 or runtime.interpreting():
        return False
    return bool(vendor().capabilities.dot_scaled)


_TL_FMT = DOT_SCALED_FORMAT


def launch(a3, b3, out3, plan: Plan, *, bias=None, scale_result=None, batch_strides=(0, 0),
           dot_scaled: Optional[bool] = None):
    """out3[bt] = scaled(a3[bt] @ b3[bt]) with ``plan``; a3 [B, M, K(/2)], b3 [B, K(/2), N], out3 [B, M, N].

    ``batch_strides``: per-batch strides of (scale_a, scale_b) tensors. fp4 operands are packed along K.
    """
    B, M, KA = a3.shape
    N = b3.shape[2]
    a_fp4 = FP4 is not None and a3.dtype == FP4
    b_fp4 = FP4 is not None and b3.dtype == FP4
    K = KA * (2 if a_fp4 else 1)
    if out3.numel() == 0:
        return out3
    if K == 0:
        out3.zero_()
        if bias is not None:
            t = bias.float() if scale_result is None else bias.float() / scale_result.float().reshape(())
            out3.copy_(t.expand(out3.shape))
        return out3
    use_ds = _use_dot_scaled(plan, a3, b3) if dot_scaled is None else dot_scaled
    a_k = a3.view(torch.uint8) if a_fp4 else a3
    b_k = b3.view(torch.uint8) if b_fp4 else b3
    from ...vendors import active as vendor

    cast = (not a_fp4) and (a3.dtype != b3.dtype or not vendor().capabilities.fp8)
    group = plan.group if plan.kmode else 0
    kg = _cdiv(K, group) if group else 1
    sa, sb = plan.sa, plan.sb
    has_bias = bias is not None
    key = (autotune.bucket(M), autotune.bucket(N), autotune.bucket(K), plan.name, str(a3.dtype), str(out3.dtype))

    def run(cfg):
        meta, opts = autotune.split_launch_options(cfg)
        bk = meta["BLOCK_K"]
        if plan.kmode == 1:
            bk = min(bk, 128)                 # one 128-block scale per partial product
        elif plan.kmode == 2:
            bk = max(bk, group, 64 if (a_fp4 or use_ds) else group)
        meta = dict(meta, BLOCK_K=bk)
        if runtime.interpreting():
            meta = dict(meta, BLOCK_M=min(meta["BLOCK_M"], max(16, _p2(M))),
                        BLOCK_N=min(meta["BLOCK_N"], max(16, _p2(N))))
        grid = (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]), B)
        with runtime.device_guard(a3):
            _scaled_mm_kernel[grid](
                a_k, b_k, out3, sa.t, sb.t, bias if has_bias else out3, plan.gs if plan.gs is not None else sa.t,
                scale_result if scale_result is not None else sa.t,
                M, N, K, kg,
                a_k.stride(0), a_k.stride(1), a_k.stride(2), b_k.stride(0), b_k.stride(1), b_k.stride(2),
                out3.stride(0), out3.stride(1), out3.stride(2),
                batch_strides[0], sa.s_row, sa.s_k, batch_strides[1], sb.s_row, sb.s_k,
                bias.stride(0) if has_bias else 0,
                A_FP4=a_fp4, B_FP4=b_fp4, CAST=cast, KMODE=plan.kmode, GROUP=max(group, 1),
                SA_DIV=sa.div, SB_DIV=sb.div, SA_SWZ=sa.swz, SB_SWZ=sb.swz, S_FMT=sa.fmt,
                S_ONE=(127 if sa.fmt == 1 else 56 if sa.fmt == 2 else 1.0),
                DOT_SCALED=use_ds, A_FMT="e2m1" if a_fp4 else _TL_FMT.get(a3.dtype, "e4m3"),
                B_FMT="e2m1" if b_fp4 else _TL_FMT.get(b3.dtype, "e4m3"),
                HAS_BIAS=has_bias, HAS_GS=plan.gs is not None, OUT_DIV=scale_result is not None, **meta, **opts)

    if runtime.interpreting():
        cfgs = [{"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8}]
    else:
        cfgs = autotune.candidates("scaled_mm", _GPU_DEFAULTS)
    run(autotune.choose("scaled_mm", key, cfgs, run))
    return out3


def launch_batched_rowwise(a, b, sa, sb, out):
    """3D x 3D rowwise: out[g] = (a[g] @ b[g]) * sa[g, m] * sb[g, n] (scales fp32 [G, M] / [G, N])."""
    plan = Plan(0, 0, Scale(sa, sa.stride(1), 0), Scale(sb, sb.stride(1), 0), name="rowwise_batched")
    return launch(a, b, out, plan, batch_strides=(sa.stride(0), sb.stride(0)))


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
    return _gmm.grouped_mm_ref(A, B, offs, out_dtype=torch.float64)


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


def _v1_reason(a, b, scale_a, scale_b, bias=None, scale_result=None, out_dtype=None, use_fast_accum=False,
               out=None):
    r = _common_reason(a, b, bias, out_dtype, out)
    if r:
        return r
    dt = out.dtype if out is not None else (out_dtype or a.dtype)
    if dt not in OUT_DTYPES:
        return f"output dtype {dt}"
    if scale_result is not None and not _is_f32_scalar(scale_result):
        return "scale_result must be a float scalar"
    if use_fast_accum and FP4 is not None and a.dtype == FP4:
        return "use_fast_accum with fp4"
    if plan_v1(a, b, scale_a, scale_b) is None:
        return "scaling configuration not accepted"
    return None


def _run_v1(a, b, scale_a, scale_b, bias, scale_result, out):
    plan = plan_v1(a, b, scale_a, scale_b)
    # torch's CPU kernel divides an fp8 result by scale_result (other output dtypes ignore it)
    sr = scale_result.reshape(1) if scale_result is not None and out.dtype in _FP8_OUT_SCALED else None
    launch(a.unsqueeze(0), b.unsqueeze(0), out.unsqueeze(0), plan, bias=bias, scale_result=sr)
    return out


@implement("aten::_scaled_mm", kind="triton", requires=("fp8",), supports=_v1_reason)
def scaled_mm(a, b, scale_a, scale_b, bias=None, scale_result=None, out_dtype=None, use_fast_accum=False):
    out = torch.empty((a.shape[0], b.shape[1]), dtype=out_dtype or a.dtype, device=a.device)
    return _run_v1(a, b, scale_a, scale_b, bias, scale_result, out)


@implement("aten::_scaled_mm.out", kind="triton", requires=("fp8",), supports=_v1_reason)
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
    if use_fast_accum and FP4 is not None and a.dtype == FP4:
        return "use_fast_accum with fp4"
    if plan_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b) is None:
        return "scaling configuration not accepted"
    return None


def _run_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, bias, out):
    plan = plan_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b)
    launch(a.unsqueeze(0), b.unsqueeze(0), out.unsqueeze(0), plan, bias=bias)
    return out


if registry.aten_op_exists("aten::_scaled_mm_v2"):
    @implement("aten::_scaled_mm_v2", kind="triton", requires=("fp8",), supports=_v2_reason)
    def scaled_mm_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, bias, out_dtype,
                     contraction_dim=(), use_fast_accum=False):
        out = torch.empty((a.shape[0], b.shape[1]), dtype=out_dtype or a.dtype, device=a.device)
        return _run_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, bias, out)

if registry.aten_op_exists("aten::_scaled_mm_v2.out"):
    @implement("aten::_scaled_mm_v2.out", kind="triton", requires=("fp8",), supports=_v2_reason)
    def scaled_mm_v2_out(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, bias, out_dtype,
                         contraction_dim=(), use_fast_accum=False, *, out):
        return _run_v2(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, bias, out)


# ----------------------------------------------------------------------------------------------------------
# aten::_scaled_grouped_mm (rowwise fp8), where the op exists and a native kernel (or the registry's
# missing-kernel support) lets us register it at the vendor's dispatch key

def _grouped_check(a, b, scale_a, scale_b, offs, bias, scale_result, out_dtype):
    """Raise like torch's CUDA checks for a rowwise _scaled_grouped_mm call."""
    if a.dtype not in FP8 or b.dtype not in FP8 or a.dtype != b.dtype:
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


def scaled_grouped_mm_impl(a, b, scale_a, scale_b, offs=None, bias=None, scale_result=None, out_dtype=None,
                           use_fast_accum=False):
    _grouped_check(a, b, scale_a, scale_b, offs, bias, scale_result, out_dtype)
    out = _gmm.out_tensor(a, b, offs, torch.bfloat16)
    _gmm.run_grouped(a, b, offs, out, scales=(scale_a, scale_b), op="scaled_grouped_mm")
    return out


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


def _registrable(name: str) -> bool:
    """Op exists here and either has a kernel at the vendor's key or the registry can patch ops without one."""
    if not registry.aten_op_exists(name):
        return False
    if getattr(registry, "MISSING_NATIVE_OK", False):
        return True
    from ...vendors import active as vendor

    return torch._C._dispatch_has_kernel_for_dispatch_key(name, vendor().dispatch_key)


if _registrable("aten::_scaled_grouped_mm"):
    implement("aten::_scaled_grouped_mm", kind="triton", requires=("fp8",), supports=_grouped_reason)(
        scaled_grouped_mm_impl)
if _registrable("aten::_scaled_grouped_mm_v2"):
    implement("aten::_scaled_grouped_mm_v2", kind="triton", requires=("fp8",), supports=_grouped_v2_reason)(
        scaled_grouped_mm_v2_impl)
