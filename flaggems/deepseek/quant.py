"""DeepSeek-V4 activation quantisation: ``act_quant`` (FP8 e4m3) and ``fp4_act_quant`` (FP4 e2m1).

Both work per row and per block of ``block_size`` consecutive elements along the last dim.

act_quant (x [..., N], N % block_size == 0)::

    amax = max(max_j |x_j|, 1e-4)                      (fp32)
    s    = amax * f32(1/448)                           scale_fmt=None
    s    = 2^ceil(log2(amax * f32(1/448)))             scale_fmt="ue8m0" (UE8M0: rounded *up* to 2^k)
    y    = e4m3(clamp(x / s, -448, 448))               (IEEE fp32 division, RNE, saturating)
    -> y float8_e4m3fn [..., N], s [..., N/block_size] fp32 or float8_e8m0fnu (needs scale_fmt)
    in place:  x <- x.dtype(f32(y) * s)

fp4_act_quant (x [..., N], N % block_size == 0, block_size even)::

    amax = max(max_j |x_j|, 6 * 2^-126)
    s    = 2^ceil(log2(amax * f32(1/6)))               (always a power of two, stored E8M0)
    q    = e2m1(clamp(x / s, -6, 6))
    -> packed float4_e2m1fn_x2 [..., N/2] (low nibble = element 2j, high = 2j+1),
       scales float8_e8m0fnu [..., N/block_size]
    in place:  x <- x.dtype(value(q) * s)

e2m1 rounding (documented definition): round to nearest on the grid {0, 0.5, 1, 1.5, 2, 3, 4, 6}, ties to
the even code (the code whose lowest bit, the mantissa bit, is 0): 0.25->0, 0.75->1, 1.25->1, 1.75->2,
2.5->2, 3.5->4, 5->4.  The code's sign bit (bit 3) is the sign bit of x/s, so a negative value that rounds
to zero is stored as -0 (code 8), as a hardware IEEE conversion does; both decode to 0.

``amax * f32(1/qmax)`` is how DeepSeek's kernel.py forms the scale (``fast_round_scale(amax, 1/qmax)``);
it equals ``amax / qmax`` up to one fp32 ulp, and the two never differ after the power-of-two rounding
for bf16 inputs.

Non-finite inputs: the formulas in IEEE fp32 arithmetic, with amax NaN as soon as the block holds a NaN (as
torch.amax; a GPU max would drop it, so the kernels test for NaN explicitly) and NaN kept by the clamp (as
torch.clamp). Hence, per block:

* a NaN anywhere: s = NaN (fp32 NaN; E8M0 byte 255), every element of the block quantises to NaN (e4m3 NaN;
  e2m1 has no NaN, so its code is 0 and the NaN scale carries it) and dequantises (in place) to NaN;
* +-Inf (and no NaN): amax = inf, so s = inf (fp32; E8M0 has no inf, so byte 255 = NaN); the +-Inf element
  quantises to NaN (inf / inf; fp4 code 0), the other elements to +-0; dequantised (in place) every element
  of the block is NaN (0 * inf, NaN * inf).

So a non-finite value never turns into a finite one (no saturation to +-448 / +-6), and it poisons exactly its
own quantisation block, which is how DeepSeek's model sees a corrupted activation block.

E8M0 bytes decode as 2^(byte - 127) (byte 255 = NaN). fp8 / e8m0 / fp4 tensors reach the kernels as
``uint8`` views (Triton has no torch dtype mapping for e8m0 / fp4x2).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from flaggems.deepseek.checked import checked
from flaggems.runtime import launch_config
from flaggems.registry import custom_op, implement
from flaggems.formats import E2M1_VALUES, e2m1_to_f32, e4m3_to_f32, e8m0_to_float_ref, unpack_fp4_ref
from flaggems.runtime import device_guard, interpreting, next_pow2
from flaggems.runtime.autotune import split_launch_options
from flaggems.runtime.checks import check_tensor

FP8_MAX = 448.0
FP4_MAX = 6.0
FP8_AMAX_MIN = 1e-4
FP4_AMAX_MIN = 6.0 * 2.0 ** -126
# The scale factors as fp32 constants (what the kernel multiplies amax with).
_INV_FP8_MAX = float(torch.tensor(1.0 / FP8_MAX, dtype=torch.float32))
_INV_FP4_MAX = float(torch.tensor(1.0 / FP4_MAX, dtype=torch.float32))

_X_DTYPES = {torch.bfloat16, torch.float16, torch.float32}
_SCALE_DTYPES = {torch.float32, torch.float8_e8m0fnu}
_SCALE_FMTS = (None, "ue8m0")

# ----------------------------------------------------------------------------------------------------
# Triton helpers
# ----------------------------------------------------------------------------------------------------
@triton.jit
def pow2_ceil_exponent(v):
    """Biased fp32 exponent of 2^ceil(log2 v) for positive normal fp32 v (the UE8M0 byte)."""
    bits = v.to(tl.int32, bitcast=True)
    e = (bits >> 23) & 0xFF
    return e + ((bits & 0x7FFFFF) != 0).to(tl.int32)


@triton.jit
def exponent_to_f32(e):
    """2^(e - 127) for a biased exponent 1..254 (int32)."""
    return (e << 23).to(tl.float32, bitcast=True)


@triton.jit
def f32_to_e4m3(v):
    """float8_e4m3fn bits (int32, 0..255) of fp32 v with |v| <= 448 or NaN, with integer / exact fp32 ops only
    (no fp8 hardware or fp8 type: Ascend's Triton has none). Round to nearest even as torch's cast; NaN ->
    0x7F with v's sign bit (torch keeps it too)."""
    bits = v.to(tl.int32, bitcast=True)
    sign = (bits >> 31) & 1
    a_bits = bits & 0x7FFFFFFF
    a = a_bits.to(tl.float32, bitcast=True)
    # subnormal range (|v| < 2^-6): multiples of 2^-9; a * 512 is exact and + 2^23 rounds it half-to-even
    # (m = 8 is the smallest normal, code 0x08, so the codes run on without a seam)
    sub = ((a * 512.0 + 8388608.0) - 8388608.0).to(tl.int32)
    # normal: keep 3 mantissa bits, RNE on the 20 dropped ones; the exponent re-biases from 127 to 7
    rnd = (a_bits + 0x7FFFF + ((a_bits >> 20) & 1)) >> 20
    code = tl.where(a < 0.015625, sub, rnd - (120 << 3))
    code = tl.where(a != a, 0x7F, code)
    return code | (sign << 7)


@triton.jit
def f32_to_e2m1(v):
    """e2m1 code of v (fp32, |v| <= 6, or NaN -> 0), round to nearest, ties to the even code; sign bit kept."""
    a = tl.abs(v)
    c = ((a > 0.25).to(tl.int32) + (a >= 0.75).to(tl.int32) + (a > 1.25).to(tl.int32)
         + (a >= 1.75).to(tl.int32) + (a > 2.5).to(tl.int32) + (a >= 3.5).to(tl.int32)
         + (a > 5.0).to(tl.int32))
    sign = (v.to(tl.int32, bitcast=True) >> 31) & 1
    # NaN -> code 0 (e2m1 has no NaN): it only arises in a block whose scale is NaN / inf, which decodes it to NaN.
    return tl.where(v != v, 0, c | (sign << 3))


# ----------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------
@triton.jit
def _quant_tile(M, NG, BLOCK_M: tl.constexpr, G: tl.constexpr):
    """This program's rows [BLOCK_M] and quant-block indices [G], with their masks, in the [M, NG] block grid."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    grp = tl.program_id(1) * G + tl.arange(0, G)
    return rows, grp, rows < M, grp < NG


@triton.jit
def _act_quant_kernel(x_ptr, y_ptr, s_ptr, M, NG, stride_xm, stride_xn, stride_ym, stride_sm,
                      QBLOCK: tl.constexpr, BQ: tl.constexpr, G: tl.constexpr, BLOCK_M: tl.constexpr,
                      ROUND_POW2: tl.constexpr, S_E8M0: tl.constexpr, INPLACE: tl.constexpr):
    rows, grp, rmask, gmask = _quant_tile(M, NG, BLOCK_M, G)
    j = tl.arange(0, BQ)
    cols = grp[None, :, None] * QBLOCK + j[None, None, :]
    mask = rmask[:, None, None] & gmask[None, :, None] & (j < QBLOCK)[None, None, :]
    rows64 = rows.to(tl.int64)
    x_ptrs = x_ptr + rows64[:, None, None] * stride_xm + cols.to(tl.int64) * stride_xn
    x = tl.load(x_ptrs, mask=mask, other=0.0).to(tl.float32)

    # NaN is looked for explicitly: a GPU's max drops NaN operands (the interpreter's may too).
    has_nan = tl.max((x != x).to(tl.int32), axis=2) > 0
    amax = tl.maximum(tl.max(tl.abs(x), axis=2), 1e-4)  # [BLOCK_M, G]
    s = amax * 0.002232142857142857  # f32(1/448)
    if ROUND_POW2:
        e = pow2_ceil_exponent(s)  # amax = inf: 255, so s = inf
        e = tl.where(has_nan, 255, e)
        s = exponent_to_f32(e)
    s = tl.where(has_nan, float("nan"), s)
    # NaN (x NaN, s NaN, or inf / inf) must stay NaN through the clamp, as in torch.clamp
    q = tl.clamp(tl.div_rn(x, s[:, :, None]), -448.0, 448.0, propagate_nan=tl.PropagateNan.ALL)
    y = f32_to_e4m3(q)
    if INPLACE:
        out = e4m3_to_f32(y) * s[:, :, None]
        tl.store(x_ptrs, out.to(x_ptr.dtype.element_ty), mask=mask)
    else:
        y_ptrs = y_ptr + rows64[:, None, None] * stride_ym + cols
        tl.store(y_ptrs, y.to(tl.uint8), mask=mask)
        s_ptrs = s_ptr + rows64[:, None] * stride_sm + grp[None, :]
        smask = rmask[:, None] & gmask[None, :]
        if S_E8M0:
            tl.store(s_ptrs, e.to(tl.uint8), mask=smask)
        else:
            tl.store(s_ptrs, s, mask=smask)


@triton.jit
def _fp4_act_quant_kernel(x_ptr, y_ptr, s_ptr, M, NG, stride_xm, stride_xn, stride_ym, stride_sm,
                          QBLOCK: tl.constexpr, BH: tl.constexpr, G: tl.constexpr, BLOCK_M: tl.constexpr,
                          INPLACE: tl.constexpr):
    # Each program: BLOCK_M rows x G quant blocks; the even / odd elements of a block are loaded as two
    # [BLOCK_M, G, BH] tiles (BH >= QBLOCK / 2), so a packed byte is lo | hi << 4 with no shuffles.
    rows, grp, rmask, gmask = _quant_tile(M, NG, BLOCK_M, G)
    j = tl.arange(0, BH)
    pair = grp[None, :, None] * (QBLOCK // 2) + j[None, None, :]  # packed byte column
    mask = rmask[:, None, None] & gmask[None, :, None] & (j < QBLOCK // 2)[None, None, :]
    rows64 = rows.to(tl.int64)
    ev_ptrs = x_ptr + rows64[:, None, None] * stride_xm + (2 * pair).to(tl.int64) * stride_xn
    od_ptrs = ev_ptrs + stride_xn
    xe = tl.load(ev_ptrs, mask=mask, other=0.0).to(tl.float32)
    xo = tl.load(od_ptrs, mask=mask, other=0.0).to(tl.float32)

    amax = tl.maximum(tl.max(tl.abs(xe), axis=2), tl.max(tl.abs(xo), axis=2))
    has_nan = (tl.max((xe != xe).to(tl.int32), axis=2) + tl.max((xo != xo).to(tl.int32), axis=2)) > 0
    amax = tl.maximum(amax, 7.052966104933725e-38)  # 6 * 2^-126
    e = pow2_ceil_exponent(amax * 0.16666667163372040)  # f32(1/6); amax = inf: 255 (E8M0 NaN), s = inf
    e = tl.where(has_nan, 255, e)
    s = tl.where(has_nan, float("nan"), exponent_to_f32(e))[:, :, None]
    ce = f32_to_e2m1(tl.clamp(xe / s, -6.0, 6.0, propagate_nan=tl.PropagateNan.ALL))  # s = 2^k: exact division
    co = f32_to_e2m1(tl.clamp(xo / s, -6.0, 6.0, propagate_nan=tl.PropagateNan.ALL))
    if INPLACE:
        dt = x_ptr.dtype.element_ty
        tl.store(ev_ptrs, (e2m1_to_f32(ce) * s).to(dt), mask=mask)
        tl.store(od_ptrs, (e2m1_to_f32(co) * s).to(dt), mask=mask)
    else:
        y_ptrs = y_ptr + rows64[:, None, None] * stride_ym + pair
        tl.store(y_ptrs, (ce | (co << 4)).to(tl.uint8), mask=mask)
        s_ptrs = s_ptr + rows64[:, None] * stride_sm + grp[None, :]
        tl.store(s_ptrs, e.to(tl.uint8), mask=rmask[:, None] & gmask[None, :])


# ----------------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------------
def _tile(kernel: str, M: int, NG: int, bq: int, dtype: torch.dtype) -> dict:
    """BLOCK_M (rows), G (quant blocks of bq elements) and num_warps per program, config keys "act_quant" and
    "fp4_act_quant". Interpreter: big tiles (cost ~ programs); GPU: ~32 rows x 128-512 cols."""
    if interpreting():
        budget = 1 << 15
        block_m = max(1, min(next_pow2(M), max(1, budget // bq), 256))
    else:
        budget = 4096
        block_m = max(1, min(next_pow2(M), 32))
    g = max(1, min(next_pow2(NG), budget // (block_m * bq)))
    return launch_config(kernel, dtype, {"BLOCK_M": block_m, "G": g, "num_warps": 4})


def _as_rows(x: torch.Tensor) -> torch.Tensor | None:
    """x as a [M, N] view (any row / column stride) or None when no such view exists."""
    try:
        return x.view(math.prod(x.shape[:-1]), x.shape[-1])
    except RuntimeError:
        return None


def _act_quant_launch(x2, block_size, round_pow2, s_e8m0, inplace, y2=None, s2=None):
    M, N = x2.shape
    NG = N // block_size
    if M == 0 or N == 0:
        return
    bq = next_pow2(block_size)
    cfg = _tile("act_quant", M, NG, bq, x2.dtype)
    grid = (triton.cdiv(M, cfg["BLOCK_M"]), triton.cdiv(NG, cfg["G"]))
    if inplace:
        y_arg, s_arg, sym, ssm = x2, x2, 0, 0
    else:
        y_arg, s_arg = y2.view(torch.uint8), (s2.view(torch.uint8) if s_e8m0 else s2)
        sym, ssm = y2.stride(0), s2.stride(0)
    with device_guard(x2):
        _act_quant_kernel[grid](x2, y_arg, s_arg, M, NG, x2.stride(0), x2.stride(1), sym, ssm,
                                QBLOCK=block_size, BQ=bq, G=cfg["G"], BLOCK_M=cfg["BLOCK_M"], ROUND_POW2=round_pow2,
                                S_E8M0=s_e8m0, INPLACE=inplace, **split_launch_options(cfg)[1])


def _fp4_act_quant_launch(x2, block_size, inplace, y2=None, s2=None):
    M, N = x2.shape
    NG = N // block_size
    if M == 0 or N == 0:
        return
    bh = next_pow2(block_size // 2)
    cfg = _tile("fp4_act_quant", M, NG, 2 * bh, x2.dtype)
    grid = (triton.cdiv(M, cfg["BLOCK_M"]), triton.cdiv(NG, cfg["G"]))
    if inplace:
        y_arg, s_arg, sym, ssm = x2, x2, 0, 0
    else:
        y_arg, s_arg, sym, ssm = y2.view(torch.uint8), s2.view(torch.uint8), y2.stride(0), s2.stride(0)
    with device_guard(x2):
        _fp4_act_quant_kernel[grid](x2, y_arg, s_arg, M, NG, x2.stride(0), x2.stride(1), sym, ssm,
                                    QBLOCK=block_size, BH=bh, G=cfg["G"], BLOCK_M=cfg["BLOCK_M"], INPLACE=inplace,
                                    **split_launch_options(cfg)[1])


# ----------------------------------------------------------------------------------------------------
# Argument checks: the custom ops' `check` (the registry runs it on every call, real and fake)
# ----------------------------------------------------------------------------------------------------
def _check_block(op, x, block_size, even=False):
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size <= 0:
        raise ValueError(f"{op}: block_size must be a positive int, got {block_size!r}")
    if even and block_size % 2:
        raise ValueError(f"{op}: block_size must be even (FP4 values are packed two per byte), got {block_size}")
    if x.dim() == 0:
        raise ValueError(f"{op}: x must have at least 1 dim, got a 0-d tensor")
    if x.shape[-1] % block_size:
        raise ValueError(f"{op}: x.shape[-1] ({x.shape[-1]}) must be a multiple of block_size ({block_size})")


def _check_fmt(op, scale_fmt, scale_dtype):
    if scale_fmt not in _SCALE_FMTS:
        raise ValueError(f"{op}: scale_fmt must be None or 'ue8m0', got {scale_fmt!r}")
    if scale_dtype not in _SCALE_DTYPES:
        raise TypeError(f"{op}: scale_dtype must be torch.float32 or torch.float8_e8m0fnu, got {scale_dtype}")
    if scale_dtype == torch.float8_e8m0fnu and scale_fmt is None:
        raise ValueError(f"{op}: scale_dtype=float8_e8m0fnu stores power-of-two scales only; "
                         "pass scale_fmt='ue8m0' (DeepSeek sets it whenever scale_dtype is fp8)")


def _check_writable(x):
    # As torch's in-place ops (at::assert_no_internal_overlap): an expanded / self-overlapping x is refused, not
    # written through aliased elements in an order-dependent way. "Too hard to tell" (2) is written, as torch does.
    if x.numel() > 1 and torch._debug_has_internal_overlap(x) == 1:
        raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers to a "
                           "single memory location. Please clone() the tensor before performing the operation.")


def act_quant_check(x, block_size=128, scale_fmt=None, scale_dtype=None):
    op = "act_quant"
    check_tensor(op, "x", x, _X_DTYPES)
    _check_block(op, x, block_size)
    _check_fmt(op, scale_fmt, torch.float32 if scale_dtype is None else scale_dtype)


def act_quant_inplace_check(x, block_size=128, scale_fmt=None):
    op = "act_quant_inplace"
    check_tensor(op, "x", x, _X_DTYPES)
    _check_block(op, x, block_size)
    _check_fmt(op, scale_fmt, torch.float32)
    _check_writable(x)


def fp4_act_quant_check(x, block_size=32):
    op = "fp4_act_quant"
    check_tensor(op, "x", x, _X_DTYPES)
    _check_block(op, x, block_size, even=True)


def fp4_act_quant_inplace_check(x, block_size=32):
    op = "fp4_act_quant_inplace"
    check_tensor(op, "x", x, _X_DTYPES)
    _check_block(op, x, block_size, even=True)
    _check_writable(x)


# ----------------------------------------------------------------------------------------------------
# References (pure torch; fp32 where the kernel's math is fp32, fp64 for log2)
# ----------------------------------------------------------------------------------------------------
def _pow2_ceil_ref(v: torch.Tensor) -> torch.Tensor:
    """2^ceil(log2 v) for positive normal fp32 v, via fp64 log2 (exact for powers of two)."""
    return torch.exp2(torch.ceil(torch.log2(v.double()))).to(torch.float32)


def _e8m0_from_pow2_ref(s: torch.Tensor) -> torch.Tensor:
    """Power-of-two fp32 scales -> E8M0; NaN and inf (E8M0 has no inf) -> byte 255, the E8M0 NaN."""
    fin = torch.isfinite(s)
    b = (torch.log2(torch.where(fin, s, 1.0).double()).round() + 127).to(torch.uint8)
    return torch.where(fin, b, 255).to(torch.uint8).view(torch.float8_e8m0fnu)


def _blocks(x: torch.Tensor, block_size: int) -> torch.Tensor:
    return x.float().reshape(*x.shape[:-1], x.shape[-1] // block_size, block_size)


def act_quant_ref(x, block_size=128, scale_fmt=None, scale_dtype=None):
    """Reference act_quant: returns (y float8_e4m3fn [..., N], s [..., N/block_size])."""
    scale_dtype = torch.float32 if scale_dtype is None else scale_dtype
    xb = _blocks(x, block_size)
    amax = xb.abs().amax(-1).clamp_min(FP8_AMAX_MIN)
    s = amax * _INV_FP8_MAX
    if scale_fmt is not None:
        s = _pow2_ceil_ref(s)
    y = (xb / s[..., None]).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).reshape(x.shape)
    s_out = _e8m0_from_pow2_ref(s) if scale_dtype == torch.float8_e8m0fnu else s
    return y, s_out


def act_quant_inplace_ref(x, block_size=128, scale_fmt=None):
    """Reference in-place act_quant: x <- x.dtype(f32(e4m3(clamp(x/s))) * s)."""
    y, s = act_quant_ref(x, block_size, scale_fmt, torch.float32)
    deq = _blocks(y.float(), block_size) * s[..., None]
    x.copy_(deq.reshape(x.shape).to(x.dtype))


def e2m1_round_ref(v: torch.Tensor) -> torch.Tensor:
    """e2m1 codes (uint8, 0..15) of fp32 v with |v| <= 6 (NaN -> 0): nearest grid value, ties to the even code."""
    grid = torch.tensor(E2M1_VALUES, dtype=torch.float64, device=v.device)
    a = v.double().abs()
    dist = (a[..., None] - grid).abs()
    # Break exact ties towards the even code: a tiny penalty on odd codes (any non-tie distance gap
    # for an fp32 input is far larger than 1e-12).
    parity = (torch.arange(8, device=v.device) % 2).double() * 1e-12
    code = (dist + parity).argmin(-1).to(torch.uint8)
    code = code | (torch.signbit(v).to(torch.uint8) << 3)
    return torch.where(torch.isnan(v), 0, code).to(torch.uint8)   # NaN -> code 0 (see the module docstring)


def pack_fp4_ref(codes: torch.Tensor) -> torch.Tensor:
    """codes uint8 [..., N] -> float4_e2m1fn_x2 [..., N/2] (element 2j in the low nibble)."""
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).contiguous().view(torch.float4_e2m1fn_x2)


def fp4_act_quant_ref(x, block_size=32):
    """Reference fp4_act_quant: returns (float4_e2m1fn_x2 [..., N/2], float8_e8m0fnu [..., N/block])."""
    xb = _blocks(x, block_size)
    amax = xb.abs().amax(-1).clamp_min(FP4_AMAX_MIN)
    s = _pow2_ceil_ref(amax * _INV_FP4_MAX)
    codes = e2m1_round_ref((xb / s[..., None]).clamp(-FP4_MAX, FP4_MAX)).reshape(x.shape)
    return pack_fp4_ref(codes), _e8m0_from_pow2_ref(s)


def fp4_act_quant_inplace_ref(x, block_size=32):
    """Reference in-place fp4_act_quant: x <- x.dtype(value(q) * s)."""
    q, s = fp4_act_quant_ref(x, block_size)
    deq = _blocks(unpack_fp4_ref(q), block_size) * e8m0_to_float_ref(s)[..., None]
    x.copy_(deq.reshape(x.shape).to(x.dtype))


# ----------------------------------------------------------------------------------------------------
# Fake (meta) kernels
# ----------------------------------------------------------------------------------------------------
def _act_quant_fake(x, block_size=128, scale_fmt=None, scale_dtype=None):
    N = x.shape[-1]
    y = x.new_empty(x.shape, dtype=torch.float8_e4m3fn)
    s = x.new_empty((*x.shape[:-1], N // block_size), dtype=scale_dtype or torch.float32)
    return y, s


def _act_quant_inplace_fake(x, block_size=128, scale_fmt=None):
    """x keeps its shape and dtype; nothing is returned."""


def _fp4_act_quant_fake(x, block_size=32):
    N = x.shape[-1]
    return (x.new_empty((*x.shape[:-1], N // 2), dtype=torch.float4_e2m1fn_x2),
            x.new_empty((*x.shape[:-1], N // block_size), dtype=torch.float8_e8m0fnu))


def _fp4_act_quant_inplace_fake(x, block_size=32):
    """x keeps its shape and dtype; nothing is returned."""


# ----------------------------------------------------------------------------------------------------
# The custom ops
# ----------------------------------------------------------------------------------------------------
custom_op("flaggems::act_quant",
          "(Tensor x, int block_size=128, str? scale_fmt=None, ScalarType? scale_dtype=None) -> (Tensor, Tensor)",
          reference=act_quant_ref, fake=_act_quant_fake, check=act_quant_check)
custom_op("flaggems::act_quant_inplace", "(Tensor(a!) x, int block_size=128, str? scale_fmt=None) -> ()",
          reference=act_quant_inplace_ref, fake=_act_quant_inplace_fake, check=act_quant_inplace_check)
custom_op("flaggems::fp4_act_quant", "(Tensor x, int block_size=32) -> (Tensor, Tensor)",
          reference=fp4_act_quant_ref, fake=_fp4_act_quant_fake, check=fp4_act_quant_check)
custom_op("flaggems::fp4_act_quant_inplace", "(Tensor(a!) x, int block_size=32) -> ()",
          reference=fp4_act_quant_inplace_ref, fake=_fp4_act_quant_inplace_fake, check=fp4_act_quant_inplace_check)


# ----------------------------------------------------------------------------------------------------
# Triton implementations (the op's check has run before them)
# ----------------------------------------------------------------------------------------------------
# Both kernels encode / decode e4m3 and e2m1 with integer ops (no fp8 type in the kernel: Ascend's Triton has
# none, and gfx942's fp8 is the fnuz flavour), so they run on vendors without fp8 hardware.
@implement("flaggems::act_quant", kind="triton", dtypes=_X_DTYPES, decodes=("fp8",))
def _act_quant_triton(x, block_size=128, scale_fmt=None, scale_dtype=None):
    scale_dtype = torch.float32 if scale_dtype is None else scale_dtype
    N = x.shape[-1]
    x2 = _as_rows(x)
    if x2 is None:
        x2 = x.reshape(math.prod(x.shape[:-1]), N)
    y = torch.empty(x.shape, dtype=torch.float8_e4m3fn, device=x.device)
    s = torch.empty((*x.shape[:-1], N // block_size), dtype=scale_dtype, device=x.device)
    _act_quant_launch(x2, block_size, scale_fmt is not None, scale_dtype == torch.float8_e8m0fnu, False,
                      y.view(x2.shape[0], N), s.view(x2.shape[0], N // block_size))
    return y, s


@implement("flaggems::act_quant_inplace", kind="triton", dtypes=_X_DTYPES)
def _act_quant_inplace_triton(x, block_size=128, scale_fmt=None):
    x2 = _as_rows(x)
    if x2 is not None:
        _act_quant_launch(x2, block_size, scale_fmt is not None, False, True)
    else:  # no [M, N] view of x: work on a copy and write it back
        tmp = x.contiguous()
        _act_quant_launch(_as_rows(tmp), block_size, scale_fmt is not None, False, True)
        x.copy_(tmp)


@implement("flaggems::fp4_act_quant", kind="triton", dtypes=_X_DTYPES)
def _fp4_act_quant_triton(x, block_size=32):
    N = x.shape[-1]
    x2 = _as_rows(x)
    if x2 is None:
        x2 = x.reshape(math.prod(x.shape[:-1]), N)
    y = torch.empty((*x.shape[:-1], N // 2), dtype=torch.float4_e2m1fn_x2, device=x.device)
    s = torch.empty((*x.shape[:-1], N // block_size), dtype=torch.float8_e8m0fnu, device=x.device)
    _fp4_act_quant_launch(x2, block_size, False, y.view(x2.shape[0], N // 2), s.view(x2.shape[0], N // block_size))
    return y, s


@implement("flaggems::fp4_act_quant_inplace", kind="triton", dtypes=_X_DTYPES)
def _fp4_act_quant_inplace_triton(x, block_size=32):
    x2 = _as_rows(x)
    if x2 is not None:
        _fp4_act_quant_launch(x2, block_size, True)
    else:
        tmp = x.contiguous()
        _fp4_act_quant_launch(_as_rows(tmp), block_size, True)
        x.copy_(tmp)


act_quant_triton = checked(act_quant_check, _act_quant_triton)
act_quant_inplace_triton = checked(act_quant_inplace_check, _act_quant_inplace_triton)
fp4_act_quant_triton = checked(fp4_act_quant_check, _fp4_act_quant_triton)
fp4_act_quant_inplace_triton = checked(fp4_act_quant_inplace_check, _fp4_act_quant_inplace_triton)
