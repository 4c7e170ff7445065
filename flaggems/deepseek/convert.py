"""Exact weight-format conversions for DeepSeek-V4 checkpoints: FP4 -> FP8, FP8 -> BF16, FP4 -> BF16.

Formats (shared/docs/deepseek-v4.md §6)::

    FP4   w [..., N, K/2] packed e2m1 (float4_e2m1fn_x2 / int8 / uint8, element 2j in the low nibble),
          s [..., N, ceil(K/32)] e8m0: value = q * 2^(s - 127), q in {0, .5, 1, 1.5, 2, 3, 4, 6} (signed)
    FP8   w [..., N, K] e4m3fn, s [..., ceil(N/128), ceil(K/128)] e8m0 (or fp32): value = w * scale of its
          128x128 block

``fp4_to_fp8(w, s) -> (y, bs, inexact)``: per 128x128 block, with E the largest finite scale exponent of the
block's 1x32 sub-blocks, the block scale is ``Eb = max(E - 6, 0)`` (DeepSeek's convert.py: the largest scale
/ 2^6) and every value becomes ``y = e4m3(q * 2^(e - Eb))``, e its sub-block's exponent::

    q * 2^(e - Eb) <= 6 * 2^6 = 384 <= 448          (never saturates)
    |y| = sig * 2^P, sig in {1, 1.5}, P = p(q) + e - Eb <= 8
    P >= -6            -> an e4m3 normal (1 mantissa bit needed of 3): exact
    -9 <= P < -6       -> an e4m3 subnormal m * 2^-9; exact iff sig * 2^(P+9) is an integer
    otherwise          -> rounded to nearest even (possibly to +-0): counted in ``inexact``

So the conversion is exact whenever each block's largest sub-block scale is at most 2^6 times every other
one (every value stays normal), and still exact up to a spread of 2^14 (the subnormals hold 0.5 * 2^-9 ...
with d = E - e <= 14 every code lands on the e4m3 grid); beyond that, single values round. ``inexact``
[..., ceil(N/128), ceil(K/128)] (int32) counts, per output block, the values whose FP8 value differs from
the FP4 value (0 on real checkpoints). What a caller does with a non-zero count is its choice
(flaggems.compat.deepseek_v4: keep the tensor in BF16, raise, or accept the rounding).

``fp8_to_bf16(w, s) -> (y, inexact)``: ``y = bf16(f32(w) * 2^(s - 127))`` (the fp32 product is exact: e4m3 has
4 significant bits and no value below 2^-9; then round to nearest even); exact except where a value overflows
BF16 (scale bytes >= 247 with large values) or falls below its smallest subnormal 2^-133 (byte 0 with small
values), which ``inexact`` counts per 128x128 block.
``fp4_to_bf16(w, s) -> (y, inexact)``: ``y = bf16(q * 2^(s - 127))``; exact for scale bytes <= 252.

NaN / Inf: an e8m0 byte 255 is a NaN scale. In ``fp4_to_fp8`` its 32 values become e4m3 NaN (0x7F) and the
block scale comes from the block's other sub-blocks (all NaN: the block scale is NaN, byte 255); in the BF16
conversions it gives NaN values. e4m3 NaN codes (0x7F / 0xFF) give BF16 NaN. NaN in -> NaN out counts as exact.
e2m1 has no NaN/Inf; negative zero keeps its sign. Overflow to +-Inf (bf16) counts as inexact.

The kernels decode and encode with integer ops only (no FP8/FP4 hardware needed): they run on vendors that
lack the formats, which is where the conversions are needed.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from flaggems.deepseek.checked import checked
from flaggems.registry import custom_op, implement
from flaggems.runtime import device_guard, launch_config
from flaggems.runtime.checks import check_same_device, check_tensor

from flaggems.formats import e2m1_to_f32, e4m3_to_f32, e8m0_to_f32, e8m0_to_float_ref, unpack_fp4_ref

BLOCK = 128        # FP8 block (rows and columns)
GROUP = 32         # FP4 scale group along K
SHIFT = 6          # block exponent = largest sub-block exponent - SHIFT (6 * 2^6 = 384 <= 448)
E8M0_NAN = 255
E4M3_NAN = 0x7F

# the same constants for the kernels (Triton reads globals only as constexpr)
_SHIFT = tl.constexpr(SHIFT)
_E8M0_NAN = tl.constexpr(E8M0_NAN)
_E4M3_NAN = tl.constexpr(E4M3_NAN)

E4M3 = torch.float8_e4m3fn
E8M0 = torch.float8_e8m0fnu
FP4 = torch.float4_e2m1fn_x2
FP4_DTYPES = frozenset({FP4, torch.int8, torch.uint8})
E8M0_DTYPES = frozenset({E8M0, torch.uint8})


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


# ----------------------------------------------------------------------------------------------------------
# Checks (the custom ops' ``check``)

def _check_fp4(op, w, s):
    check_tensor(op, "w", w, FP4_DTYPES)
    check_tensor(op, "s", s, E8M0_DTYPES)
    check_same_device(op, w=w, s=s)
    if w.dim() < 2:
        raise ValueError(f"{op}: w must be [..., N, K/2] (packed FP4), got shape {tuple(w.shape)}")
    want = (*w.shape[:-1], _cdiv(2 * w.shape[-1], GROUP))
    if tuple(s.shape) != want:
        raise ValueError(f"{op}: s must have shape {want} (one e8m0 scale per row and 32 values of K), "
                         f"got {tuple(s.shape)}")


def fp4_to_fp8_check(w, s):
    _check_fp4("fp4_to_fp8", w, s)


def fp4_to_bf16_check(w, s):
    _check_fp4("fp4_to_bf16", w, s)


def fp8_to_bf16_check(w, s):
    op = "fp8_to_bf16"
    check_tensor(op, "w", w, {E4M3})
    check_tensor(op, "s", s, E8M0_DTYPES)
    check_same_device(op, w=w, s=s)
    if w.dim() < 2:
        raise ValueError(f"{op}: w must be [..., N, K], got shape {tuple(w.shape)}")
    want = (*w.shape[:-2], _cdiv(w.shape[-2], BLOCK), _cdiv(w.shape[-1], BLOCK))
    if tuple(s.shape) != want:
        raise ValueError(f"{op}: s must have shape {want} (one scale per 128x128 block), got {tuple(s.shape)}")


# ----------------------------------------------------------------------------------------------------------
# Shapes and outputs shared by every implementation

def blocks_shape(w: torch.Tensor, packed: bool) -> tuple:
    """[..., ceil(N/128), ceil(K/128)] of a weight (``packed``: FP4, two values per byte)."""
    K = w.shape[-1] * (2 if packed else 1)
    return (*w.shape[:-2], _cdiv(w.shape[-2], BLOCK), _cdiv(K, BLOCK))


def _alloc(shape, dtype, device):
    """Output buffers (one place, so tests can poison them)."""
    return torch.empty(shape, dtype=dtype, device=device)


def fp4_to_fp8_outputs(w):
    K = 2 * w.shape[-1]
    nb = blocks_shape(w, True)
    return (_alloc((*w.shape[:-1], K), E4M3, w.device), _alloc(nb, E8M0, w.device),
            _alloc(nb, torch.int32, w.device))


def to_bf16_outputs(w, packed: bool):
    K = w.shape[-1] * (2 if packed else 1)
    return _alloc((*w.shape[:-1], K), torch.bfloat16, w.device), _alloc(blocks_shape(w, packed), torch.int32,
                                                                        w.device)


# ----------------------------------------------------------------------------------------------------------
# References (pure torch, fp64 values; torch's own e4m3 / bf16 rounding)

def _per_block_sum(mask: torch.Tensor) -> torch.Tensor:
    """[..., N, K] bool -> int32 counts per 128x128 block [..., ceil(N/128), ceil(K/128)]."""
    *lead, N, K = mask.shape
    nbn, nbk = _cdiv(N, BLOCK), _cdiv(K, BLOCK)
    pad = torch.zeros((*lead, nbn * BLOCK, nbk * BLOCK), dtype=torch.int32, device=mask.device)
    pad[..., :N, :K] = mask.to(torch.int32)
    return pad.view(*lead, nbn, BLOCK, nbk, BLOCK).sum(dim=(-3, -1)).to(torch.int32)


def _differs(y: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """y != exact in fp64, NaN equal to NaN."""
    y = y.double()
    return (y != exact) & ~(torch.isnan(y) & torch.isnan(exact))


def _fp4_values_ref(w, s):
    """(exact fp64 values [..., N, K], scale bytes per element as int64 [..., N, K])."""
    K = 2 * w.shape[-1]
    b = s.view(torch.uint8).to(torch.int64).repeat_interleave(GROUP, dim=-1)[..., :K]
    v = unpack_fp4_ref(w).double() * e8m0_to_float_ref(s).double().repeat_interleave(GROUP, dim=-1)[..., :K]
    return v, b


def fp4_to_fp8_ref(w, s):
    """Reference FP4 -> FP8 (128x128): block exponent max(E - 6, 0), values re-scaled and rounded by torch."""
    *lead, N, _ = w.shape
    K = 2 * w.shape[-1]
    v, b = _fp4_values_ref(w, s)
    nbn, nbk = _cdiv(N, BLOCK), _cdiv(K, BLOCK)
    finite = torch.where(b == E8M0_NAN, torch.full_like(b, -1), b)
    pad = torch.full((*lead, nbn * BLOCK, nbk * BLOCK), -1, dtype=torch.int64, device=w.device)
    pad[..., :N, :K] = finite
    E = pad.view(*lead, nbn, BLOCK, nbk, BLOCK).amax(dim=(-3, -1))
    Eb = torch.where(E >= 0, (E - SHIFT).clamp_min(0), torch.full_like(E, E8M0_NAN))
    scale = torch.exp2(Eb.double() - 127).repeat_interleave(BLOCK, -2).repeat_interleave(BLOCK, -1)[..., :N, :K]
    y = (v / scale).float().to(E4M3).view(torch.uint8)
    nan = b == E8M0_NAN
    y = torch.where(nan, torch.full_like(y, E4M3_NAN), y)
    back = y.view(E4M3).double() * scale
    inexact = _per_block_sum(_differs(back, v))
    return y.view(E4M3), Eb.to(torch.uint8).view(E8M0), inexact


def fp8_to_bf16_ref(w, s):
    """Reference FP8 -> BF16: bf16(f32(w) * f32(scale)), scales per 128x128 block."""
    N, K = w.shape[-2:]
    sf = e8m0_to_float_ref(s).repeat_interleave(BLOCK, -2).repeat_interleave(BLOCK, -1)[..., :N, :K]
    v = w.float()
    y = (v * sf).to(torch.bfloat16)
    return y, _per_block_sum(_differs(y, v.double() * sf.double()))


def fp4_to_bf16_ref(w, s):
    """Reference FP4 -> BF16: bf16(q * 2^(s - 127))."""
    v, _ = _fp4_values_ref(w, s)
    y = v.float().to(torch.bfloat16)
    return y, _per_block_sum(_differs(y, v))


# ----------------------------------------------------------------------------------------------------------
# Fake kernels

def _fp4_to_fp8_fake(w, s):
    K = 2 * w.shape[-1]
    nb = blocks_shape(w, True)
    return w.new_empty((*w.shape[:-1], K), dtype=E4M3), w.new_empty(nb, dtype=E8M0), w.new_empty(nb, dtype=torch.int32)


def _fp8_to_bf16_fake(w, s):
    return w.new_empty(w.shape, dtype=torch.bfloat16), w.new_empty(blocks_shape(w, False), dtype=torch.int32)


def _fp4_to_bf16_fake(w, s):
    return (w.new_empty((*w.shape[:-1], 2 * w.shape[-1]), dtype=torch.bfloat16),
            w.new_empty(blocks_shape(w, True), dtype=torch.int32))


custom_op("flaggems::fp4_to_fp8", "(Tensor w, Tensor s) -> (Tensor, Tensor, Tensor)",
          reference=fp4_to_fp8_ref, fake=_fp4_to_fp8_fake, check=fp4_to_fp8_check)
custom_op("flaggems::fp8_to_bf16", "(Tensor w, Tensor s) -> (Tensor, Tensor)",
          reference=fp8_to_bf16_ref, fake=_fp8_to_bf16_fake, check=fp8_to_bf16_check)
custom_op("flaggems::fp4_to_bf16", "(Tensor w, Tensor s) -> (Tensor, Tensor)",
          reference=fp4_to_bf16_ref, fake=_fp4_to_bf16_fake, check=fp4_to_bf16_check)


# ----------------------------------------------------------------------------------------------------------
# Triton kernels: one program per 128x128 output block; FP4 bytes are read as [128 rows, 64 bytes] and the
# even / odd elements written with a column stride of 2 (no interleave needed)

@triton.jit
def _e4m3_of_shifted_e2m1(code, P_OFF):
    """e4m3 code of e2m1 ``code`` times 2^P_OFF (P_OFF <= 6), rounded to nearest even; (code, inexact).

    |q| = sig * 2^p with sig in {1, 1.5}: code 1 is 1 * 2^-1, codes 2..7 are {1, 1.5} * 2^((i >> 1) - 1).
    """
    i = code & 7
    half = ((i & 1) == 1) & (i >= 2)
    P = tl.where(i >= 2, (i >> 1) - 1, -1) + P_OFF
    normal = ((P + 7) << 3) | (half.to(tl.int32) << 2)
    # subnormal: m = sig * 2^(P + 9) = t / 2^k with t = 4 * sig, k = -7 - P >= 0 (capped at 8: t < 8)
    t = 4 + 2 * half.to(tl.int32)
    k = tl.minimum(tl.maximum(-7 - P, 0), 8)
    q = t >> k
    rem = t - (q << k)
    hk = (k * 0 + 1) << tl.maximum(k - 1, 0)     # half of 2^k (k = 0: rem is 0, never rounds)
    m = q + ((rem > hk) | ((rem == hk) & ((q & 1) == 1))).to(tl.int32)
    sub = P < -6
    mag = tl.where(sub, m, normal)
    mag = tl.where(i == 0, 0, mag)
    inexact = sub & (i != 0) & (rem != 0)
    return mag | ((code >> 3) << 7), inexact


@triton.jit
def _fp4_to_fp8_kernel(w_ptr, s_ptr, y_ptr, bs_ptr, cnt_ptr, N, KH, G, NBN, NBK,
                       BLOCK_R: tl.constexpr, BLOCK_B: tl.constexpr):
    pid = tl.program_id(0)          # batch * NBN + row block
    kb = tl.program_id(1)           # column block
    bat = pid // NBN
    rb = pid % NBN
    rows = rb * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = kb * BLOCK_B + tl.arange(0, BLOCK_B)           # packed byte columns
    mask = (rows < N)[:, None] & (cols < KH)[None, :]
    r64 = (bat * N + rows).to(tl.int64)
    byte = tl.load(w_ptr + r64[:, None] * KH + cols[None, :], mask=mask, other=0).to(tl.int32) & 0xFF
    e = tl.load(s_ptr + r64[:, None] * G + (cols // 16)[None, :], mask=mask, other=_E8M0_NAN).to(tl.int32) & 0xFF
    fin = mask & (e != _E8M0_NAN)
    E = tl.max(tl.max(tl.where(fin, e, -1), axis=1), axis=0)
    Eb = tl.where(E >= 0, tl.maximum(E - _SHIFT, 0), _E8M0_NAN)
    lo, lo_x = _e4m3_of_shifted_e2m1(byte & 0xF, e - Eb)
    hi, hi_x = _e4m3_of_shifted_e2m1(byte >> 4, e - Eb)
    nan = e == _E8M0_NAN
    lo = tl.where(nan, _E4M3_NAN, lo)
    hi = tl.where(nan, _E4M3_NAN, hi)
    y_ptrs = y_ptr + r64[:, None] * (2 * KH) + 2 * cols[None, :]
    tl.store(y_ptrs, lo.to(tl.uint8), mask=mask)
    tl.store(y_ptrs + 1, hi.to(tl.uint8), mask=mask)
    n_x = tl.sum(tl.sum((fin & lo_x).to(tl.int32) + (fin & hi_x).to(tl.int32), axis=1), axis=0)
    blk = pid * NBK + kb
    tl.store(bs_ptr + blk, Eb.to(tl.uint8))
    tl.store(cnt_ptr + blk, n_x)


@triton.jit
def _bf16_inexact(p, y, mask):
    """Whether bf16 ``y`` differs from the exact fp32 product ``p``: rounded, or +-inf from finite inputs
    (the product overflowed fp32, or y overflowed bf16). NaN products (NaN in) count as exact."""
    back = y.to(tl.float32)
    inf = (p.to(tl.int32, bitcast=True) & 0x7FFFFFFF) == 0x7F800000
    return mask & (p == p) & ((back != p) | inf)


@triton.jit
def _fp8_to_bf16_kernel(w_ptr, s_ptr, y_ptr, cnt_ptr, N, K, NBN, NBK,
                        BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    kb = tl.program_id(1)
    rows = (pid % NBN) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = kb * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (rows < N)[:, None] & (cols < K)[None, :]
    r64 = ((pid // NBN) * N + rows).to(tl.int64)
    v = e4m3_to_f32(tl.load(w_ptr + r64[:, None] * K + cols[None, :], mask=mask, other=0))
    blk = pid * NBK + kb
    # e4m3 (4 significant bits, >= 2^-9) times 2^(b - 127) is exact in fp32 unless it overflows
    p = v * e8m0_to_f32(tl.load(s_ptr + blk))
    y = p.to(tl.bfloat16)
    tl.store(y_ptr + r64[:, None] * K + cols[None, :], y, mask=mask)
    tl.store(cnt_ptr + blk, tl.sum(tl.sum(_bf16_inexact(p, y, mask).to(tl.int32), axis=1), axis=0))


@triton.jit
def _fp4_to_bf16_kernel(w_ptr, s_ptr, y_ptr, cnt_ptr, N, KH, G, NBN, NBK,
                        BLOCK_R: tl.constexpr, BLOCK_B: tl.constexpr):
    pid = tl.program_id(0)
    kb = tl.program_id(1)
    rows = (pid % NBN) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = kb * BLOCK_B + tl.arange(0, BLOCK_B)
    mask = (rows < N)[:, None] & (cols < KH)[None, :]
    r64 = ((pid // NBN) * N + rows).to(tl.int64)
    byte = tl.load(w_ptr + r64[:, None] * KH + cols[None, :], mask=mask, other=0).to(tl.int32) & 0xFF
    sb = tl.load(s_ptr + r64[:, None] * G + (cols // 16)[None, :], mask=mask, other=127)
    s = e8m0_to_f32(sb)
    # q * 2^k is exact in fp32 except overflow (scale bytes 254 with |q| >= 2): then the product is +-inf
    lo = e2m1_to_f32(byte & 0xF) * s
    hi = e2m1_to_f32(byte >> 4) * s
    y_lo = lo.to(tl.bfloat16)
    y_hi = hi.to(tl.bfloat16)
    y_ptrs = y_ptr + r64[:, None] * (2 * KH) + 2 * cols[None, :]
    tl.store(y_ptrs, y_lo, mask=mask)
    tl.store(y_ptrs + 1, y_hi, mask=mask)
    n_x = _bf16_inexact(lo, y_lo, mask).to(tl.int32) + _bf16_inexact(hi, y_hi, mask).to(tl.int32)
    tl.store(cnt_ptr + pid * NBK + kb, tl.sum(tl.sum(n_x, axis=1), axis=0))


def _launch_opts(kernel: str, dtype) -> dict:
    """num_warps / num_stages from the vendor's tuned data (config keys "fp4_to_fp8", "fp8_to_bf16",
    "fp4_to_bf16"); the 128x128 tile is the format's block and not configurable."""
    cfg = launch_config(kernel, dtype, {"num_warps": 4})
    return {k: v for k, v in cfg.items() if k in ("num_warps", "num_stages")}


def _batch(t: torch.Tensor) -> int:
    n = 1
    for d in t.shape[:-2]:
        n *= d
    return n


@implement("flaggems::fp4_to_fp8", kind="triton", dtypes=FP4_DTYPES | E8M0_DTYPES, decodes=("fp8", "fp4"))
def _fp4_to_fp8_triton(w, s):
    y, bs, cnt = fp4_to_fp8_outputs(w)
    N, KH = w.shape[-2:]
    B, (NBN, NBK) = _batch(w), bs.shape[-2:]
    if B and N and KH:
        wc, sc = w.contiguous().view(torch.uint8), s.contiguous().view(torch.uint8)
        with device_guard(w):
            _fp4_to_fp8_kernel[(B * NBN, NBK)](wc, sc, y.view(torch.uint8), bs.view(torch.uint8), cnt, N, KH,
                                               s.shape[-1], NBN, NBK, BLOCK_R=BLOCK, BLOCK_B=BLOCK // 2,
                                               **_launch_opts("fp4_to_fp8", w.dtype))
    else:
        cnt.zero_()
        bs.view(torch.uint8).fill_(127)
    return y, bs, cnt


@implement("flaggems::fp8_to_bf16", kind="triton", dtypes={E4M3} | E8M0_DTYPES, decodes=("fp8",))
def _fp8_to_bf16_triton(w, s):
    y, cnt = to_bf16_outputs(w, False)
    N, K = w.shape[-2:]
    B, (NBN, NBK) = _batch(w), cnt.shape[-2:]
    if B and N and K:
        with device_guard(w):
            _fp8_to_bf16_kernel[(B * NBN, NBK)](w.contiguous().view(torch.uint8), s.contiguous().view(torch.uint8),
                                                y, cnt, N, K, NBN, NBK, BLOCK_R=BLOCK, BLOCK_C=BLOCK,
                                                **_launch_opts("fp8_to_bf16", w.dtype))
    else:
        cnt.zero_()
    return y, cnt


@implement("flaggems::fp4_to_bf16", kind="triton", dtypes=FP4_DTYPES | E8M0_DTYPES, decodes=("fp8", "fp4"))
def _fp4_to_bf16_triton(w, s):
    y, cnt = to_bf16_outputs(w, True)
    N, KH = w.shape[-2:]
    B, (NBN, NBK) = _batch(w), cnt.shape[-2:]
    if B and N and KH:
        with device_guard(w):
            _fp4_to_bf16_kernel[(B * NBN, NBK)](w.contiguous().view(torch.uint8), s.contiguous().view(torch.uint8),
                                                y, cnt, N, KH, s.shape[-1], NBN, NBK, BLOCK_R=BLOCK,
                                                BLOCK_B=BLOCK // 2, **_launch_opts("fp4_to_bf16", w.dtype))
    else:
        cnt.zero_()
    return y, cnt


fp4_to_fp8_triton = checked(fp4_to_fp8_check, _fp4_to_fp8_triton)
fp8_to_bf16_triton = checked(fp8_to_bf16_check, _fp8_to_bf16_triton)
fp4_to_bf16_triton = checked(fp4_to_bf16_check, _fp4_to_bf16_triton)
