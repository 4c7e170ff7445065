"""How ``_scaled_mm`` / ``_scaled_mm_v2`` scale tensors map onto the GEMM plan (flaggems/ops/gemm/plan.py).

Scale frames: A as [M, K], B as Bᵀ [N, K]; "kb" = ceil(K/128), "L4" = round_up(kb, 4)::

    recipe               scale dtype   _scaled_mm (v1) shape        _scaled_mm_v2 shape             applied
    TensorWise           fp32          numel 1                      numel 1                         on acc
    RowWise              fp32          A [M, 1], B [1, N]           numel M / numel N               on acc
    BlockWise1x128       fp32          A [M, kb], B [kb, N]         A [M, kb], B [N, kb]            per block
    BlockWise128x128     fp32          A [ceil(M/128), kb],         A [kb or L4, ceil(M/128)],      per block
                                       B [kb, ceil(N/128)]          B [kb or L4, ceil(N/128)]
    BlockWise1x32  (MX)  e8m0          swizzled, numel              SWIZZLE_32_4_4: as v1; NO_SWIZZLE:  pre-dot
                                       round_up(R,128)*round_up(ceil(K/32),4)    [R, ceil(K/32)] row-major
    BlockWise1x16 (NVFP4) e4m3fn       swizzled as above (per 16)   + optional fp32 global scale each   pre-dot

"on acc": once on the fp32 accumulator; "per block": on each 128-block partial product (``acc += P * sa * sb``);
"pre-dot": the operands are decoded and multiplied by their (power-of-two / e4m3) block scales in registers
(exact in bf16), bf16 dot with fp32 accumulation, or ``tl.dot_scaled`` with e8m0 scales where the vendor has it.
fp8 operands of different types (or on a vendor without fp8 dot) go through bf16 (exact).
"""
from __future__ import annotations

from typing import Optional

import torch

from ... import runtime
from ...formats import AS_LOADED, E2M1_PAIRS, E4M3, E8M0, E8M0_BYTES, FP8_VALUES, is_fp4, scale_format
from .plan import ON_ACC, PER_BLOCK, PRE_DOT, Plan, Scale, Tiles, fp8_dot

# torch.nn.functional.ScalingType / SwizzleType values
TENSORWISE, ROWWISE, BLOCK_1x16, BLOCK_1x32, BLOCK_1x128, BLOCK_128x128 = range(6)
NO_SWIZZLE, SWIZZLE_32_4_4 = 0, 1

TILES = Tiles("scaled_mm", {"": [
    {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8, "num_warps": 8, "num_stages": 3},
    {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8, "num_warps": 4, "num_stages": 3},
    {"BLOCK_M": 16, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 1, "num_warps": 4, "num_stages": 4},
]}, [{"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8}], shrink="MN")


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _cdiv(a, b) * b


def _use_dot_scaled(sa: Scale) -> bool:
    """tl.dot_scaled for pre-dot e8m0 (MX) scales where the vendor has block-scaled MMA (the interpreter's
    emulation is exact but no faster than decoding)."""
    from ...vendors import active

    if sa.at != PRE_DOT or sa.fmt != E8M0_BYTES or runtime.interpreting():
        return False
    return bool(active().capabilities.dot_scaled)


def _plan(name: str, a, b, sa: Scale, sb: Scale, gs=None) -> Plan:
    fmt = E2M1_PAIRS if is_fp4(a) else AS_LOADED
    dot = torch.bfloat16 if (sa.at == PRE_DOT or fmt == E2M1_PAIRS) else fp8_dot(a, b)
    return Plan(TILES, name, sa, sb, gs, fmt, fmt, dot, _use_dot_scaled(sa))


def _is_f32_scalar(s) -> bool:
    return isinstance(s, torch.Tensor) and s.dtype == torch.float32 and s.numel() == 1


def _fp32_2d(s, shape) -> bool:
    return isinstance(s, torch.Tensor) and s.dtype == torch.float32 and s.dim() == 2 and tuple(s.shape) == tuple(shape)


def _tensorwise(s) -> Scale:
    return Scale(s.reshape(()) if s.dim() else s, 0, 0, at=ON_ACC)


def _rowwise(s, stride: int) -> Scale:
    return Scale(s, stride, 0, at=ON_ACC)


def _block(s, s_row: int, s_k: int, div: int) -> Scale:
    """fp32 scales per 128 elements of K (and per 128 rows with div=128): applied per 128-block partial product."""
    return Scale(s, s_row, s_k, div, group=128, at=PER_BLOCK)


def _swizzled(s, rows: int, kg: int, fmt_dtype, group: int) -> Optional[Scale]:
    if s.dtype != fmt_dtype or s.numel() != _round_up(rows, 128) * _round_up(kg, 4) or not s.is_contiguous():
        return None
    return Scale(s.view(torch.uint8), 0, 0, 1, True, scale_format(fmt_dtype), group, PRE_DOT)


def _plain_groups(s, rows: int, kg: int, fmt_dtype, group: int) -> Optional[Scale]:
    """NO_SWIZZLE block scales: a [rows, kg] tensor (any strides) or a contiguous one with rows*kg elements."""
    if s.dtype != fmt_dtype:
        return None
    fmt = scale_format(fmt_dtype)
    u = s.view(torch.uint8)
    if s.dim() == 2 and tuple(s.shape) == (rows, kg):
        return Scale(u, u.stride(0), u.stride(1), 1, False, fmt, group, PRE_DOT)
    if s.numel() == rows * kg and s.is_contiguous():
        return Scale(u.reshape(-1), kg, 1, 1, False, fmt, group, PRE_DOT)
    return None


def _v2_groups(s, swizzle: int, rows: int, K: int, fmt_dtype, group: int) -> Optional[Scale]:
    """One operand's v2 block scales (MX / NVFP4): swizzled or plain [rows, ceil(K / group)]."""
    make = _swizzled if swizzle == SWIZZLE_32_4_4 else _plain_groups
    return make(s, rows, _cdiv(K, group), fmt_dtype, group)


def _operand_kind(t: torch.Tensor) -> Optional[str]:
    if t.dtype in FP8_VALUES:
        return "fp8"
    if is_fp4(t):
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
            return _plan("tensorwise", a, b, _tensorwise(scale_a), _tensorwise(scale_b))
        if _fp32_2d(scale_a, (M, 1)) and _fp32_2d(scale_b, (1, N)):
            return _plan("rowwise", a, b, _rowwise(scale_a, scale_a.stride(0)), _rowwise(scale_b, scale_b.stride(1)))
        kb = _cdiv(K, 128)
        a_1x128 = _fp32_2d(scale_a, (M, kb))
        a_128 = _fp32_2d(scale_a, (_cdiv(M, 128), kb))
        b_1x128 = _fp32_2d(scale_b, (kb, N))
        b_128 = _fp32_2d(scale_b, (kb, _cdiv(N, 128)))

        def sa_(div):
            return _block(scale_a, scale_a.stride(0), scale_a.stride(1), div)

        def sb_(div):                        # v1 scale_b is [kb, N] / [kb, nb]: rows along dim 1
            return _block(scale_b, scale_b.stride(1), scale_b.stride(0), div)

        if a_128 and b_1x128:
            return _plan("block_128x128_1x128", a, b, sa_(128), sb_(1))
        if a_1x128 and b_128:
            return _plan("block_1x128_128x128", a, b, sa_(1), sb_(128))
        if a_1x128 and b_1x128:
            return _plan("block_1x128_1x128", a, b, sa_(1), sb_(1))
        if E8M0 is not None:
            kg = _cdiv(K, 32)
            sa, sb = _swizzled(scale_a, M, kg, E8M0, 32), _swizzled(scale_b, N, kg, E8M0, 32)
            if sa is not None and sb is not None:
                return _plan("mxfp8", a, b, sa, sb)
        return None
    # fp4
    if E8M0 is not None:
        kg = _cdiv(K, 32)
        sa, sb = _swizzled(scale_a, M, kg, E8M0, 32), _swizzled(scale_b, N, kg, E8M0, 32)
        if sa is not None and sb is not None:
            return _plan("mxfp4", a, b, sa, sb)
    kg = _cdiv(K, 16)
    sa, sb = _swizzled(scale_a, M, kg, E4M3, 16), _swizzled(scale_b, N, kg, E4M3, 16)
    if sa is not None and sb is not None:
        return _plan("nvfp4", a, b, sa, sb)
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
        sides = _v2_groups(sa_t, swa, M, K, E4M3, 16), _v2_groups(sb_t, swb, N, K, E4M3, 16)
        return None if None in sides else _plan("nvfp4", a, b, *sides, gs)
    if len(scale_a) != 1 or len(scale_b) != 1:
        return None
    if ra == BLOCK_1x32 and rb == BLOCK_1x32 and E8M0 is not None:
        sides = _v2_groups(sa_t, swa, M, K, E8M0, 32), _v2_groups(sb_t, swb, N, K, E8M0, 32)
        return None if None in sides else _plan("mxfp8" if ka == "fp8" else "mxfp4", a, b, *sides)
    if ka != "fp8":
        return None
    if ra == TENSORWISE and rb == TENSORWISE:
        if _is_f32_scalar(sa_t) and _is_f32_scalar(sb_t):
            return _plan("tensorwise", a, b, _tensorwise(sa_t), _tensorwise(sb_t))
        return None
    if ra == ROWWISE and rb == ROWWISE:
        ok = (isinstance(sa_t, torch.Tensor) and isinstance(sb_t, torch.Tensor) and sa_t.dtype == torch.float32
              and sb_t.dtype == torch.float32 and sa_t.numel() == M and sb_t.numel() == N)
        if not ok:
            return None
        sa_flat, sb_flat = sa_t.reshape(-1), sb_t.reshape(-1)
        return _plan("rowwise", a, b, _rowwise(sa_flat, sa_flat.stride(0)), _rowwise(sb_flat, sb_flat.stride(0)))
    kb = _cdiv(K, 128)

    def side(s, rec, rows):
        if rec == BLOCK_1x128 and _fp32_2d(s, (rows, kb)):
            return _block(s, s.stride(0), s.stride(1), 1)
        if rec == BLOCK_128x128 and isinstance(s, torch.Tensor) and s.dtype == torch.float32 and s.dim() == 2 \
                and s.shape[0] in (kb, _round_up(kb, 4)) and s.shape[1] == _cdiv(rows, 128):
            return _block(s, s.stride(1), s.stride(0), 128)
        return None

    if (ra, rb) not in ((BLOCK_1x128, BLOCK_128x128), (BLOCK_128x128, BLOCK_1x128), (BLOCK_1x128, BLOCK_1x128)):
        return None
    sa, sb = side(sa_t, ra, M), side(sb_t, rb, N)
    if sa is None or sb is None:
        return None
    return _plan(f"block_{'1x128' if ra == BLOCK_1x128 else '128x128'}_{'1x128' if rb == BLOCK_1x128 else '128x128'}",
                 a, b, sa, sb)
