"""Low-precision number formats: the dtypes, their decoders (Triton and torch) and the MX scale layout.

    e2m1 (fp4)    code s|ee|m       value (-1)^s * {0, 0.5, 1, 1.5, 2, 3, 4, 6}[ee|m]
                  two codes per byte along K, element 2j in the low nibble (torch's ``float4_e2m1fn_x2``)
    e4m3fn (fp8)  byte s|eeee|mmm   value (-1)^s * (8 + m) * 2^(e - 10)  (e > 0),  (-1)^s * m * 2^-9  (e = 0);
                  0x7F / 0xFF are NaN
    e8m0          byte b            value 2^(b - 127); b = 255 is NaN (MX block scales)

    MX swizzle    cuBLAS's 128x4 block-scaling layout (torch.testing's ``to_blocked``): logical [R, C] scales,
                  padded to [round_up(R, 128), round_up(C, 4)], element (r, c) at
                  ((r // 128) * ceil(C / 4) + c // 4) * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4

The Triton decoders use integer ops only, so kernels that read these formats as ``uint8`` bytes run on hardware
without FP8/FP4 support (and e8m0 / fp4x2 tensors cannot be kernel arguments anyway). The torch references
decode to fp32 (every value of these formats is exact in fp32) or fp64 for the GEMM references.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


def _dtypes(*names):
    return frozenset(getattr(torch, n) for n in names if hasattr(torch, n))


E4M3 = torch.float8_e4m3fn
E5M2 = torch.float8_e5m2
E8M0 = getattr(torch, "float8_e8m0fnu", None)
FP4 = getattr(torch, "float4_e2m1fn_x2", None)

# fp8 value formats (what `_scaled_mm` and the fp8 GEMMs take as operands)
FP8_VALUES = _dtypes("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
# every 8-bit float dtype, the E8M0 scale format included (what a vendor's `fp8` capability covers)
FP8_DTYPES = FP8_VALUES | _dtypes("float8_e8m0fnu")
FP4_DTYPES = _dtypes("float4_e2m1fn_x2")

# magnitudes of the e2m1 codes 0..7 (bit 3 is the sign)
E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)

# how a kernel turns stored values into fp32 (a constexpr code): as loaded (any float dtype, fp8 included),
# e8m0 / e4m3fn bytes decoded with integer ops, or e2m1 codes packed two per byte along K
AS_LOADED, E8M0_BYTES, E4M3_BYTES, E2M1_PAIRS = 0, 1, 2, 3
# the stored 1.0 of each scale format: what masked scale loads read, so masked lanes stay finite
ONE = {AS_LOADED: 1.0, E8M0_BYTES: 127, E4M3_BYTES: 56}

# operand formats of tl.dot_scaled by torch dtype (packed fp4 is "e2m1")
DOT_SCALED_FORMAT = {E4M3: "e4m3", E5M2: "e5m2"}


def scale_format(dtype: torch.dtype) -> int:
    """The format code of a scale tensor's dtype (fp32 as loaded, e8m0 or e4m3fn bytes)."""
    if E8M0 is not None and dtype == E8M0:
        return E8M0_BYTES
    return E4M3_BYTES if dtype == E4M3 else AS_LOADED


def is_fp4(t: torch.Tensor) -> bool:
    return FP4 is not None and t.dtype == FP4


# ----------------------------------------------------------------------------------------------------------
# Triton decoders

@triton.jit
def e8m0_to_f32(byte):
    """Decode E8M0 bytes: 2^(byte - 127); byte 0 is 2^-127 (fp32 subnormal), 255 is NaN."""
    b = byte.to(tl.int32) & 0xFF
    bits = tl.where(b == 0, 0x00400000, b << 23)
    bits = tl.where(b == 255, 0x7FC00000, bits)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def e4m3_to_f32(byte):
    """Decode float8_e4m3fn bits with integer ops only (no fp8 hardware needed). 0x7F/0xFF are NaN."""
    b = byte.to(tl.int32) & 0xFF
    e = (b >> 3) & 0xF
    m = b & 0x7
    # normal: (8 + m) * 2^(e - 10); subnormal (e == 0): m * 2^-9
    normal = (8 + m).to(tl.float32) * ((e + 117) << 23).to(tl.float32, bitcast=True)
    mag = tl.where(e == 0, m.to(tl.float32) * 0.001953125, normal)
    mag = tl.where((e == 15) & (m == 7), tl.full(mag.shape, 0x7FC00000, tl.int32).to(tl.float32, bitcast=True),
                   mag)
    return tl.where((b & 0x80) != 0, -mag, mag)


@triton.jit
def e2m1_to_f32(code):
    """Decode an e2m1 code (int32, 0..15): bit 3 sign, {0,0.5,1,1.5,2,3,4,6} for codes 0..7."""
    e = (code >> 1) & 0x3
    m = (code & 1).to(tl.float32)
    mag = tl.where(e == 0, m * 0.5, (2.0 + m) * (1 << e).to(tl.float32) * 0.25)
    return tl.where((code & 8) != 0, -mag, mag)


@triton.jit
def decode(v, FMT: tl.constexpr):
    """Stored values -> fp32 by format code: AS_LOADED, E8M0_BYTES or E4M3_BYTES (scales, fp8 operands)."""
    if FMT == 1:
        out = e8m0_to_f32(v)
    elif FMT == 2:
        out = e4m3_to_f32(v)
    else:
        out = v.to(tl.float32)
    return out


@triton.jit
def swizzled_offset(r, c, NCB):
    """Offset of scale (row r, column c) in the MX swizzled layout; NCB = ceil(C / 4) column blocks."""
    return ((r // 128) * NCB + c // 4).to(tl.int64) * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + (c % 4)


# ----------------------------------------------------------------------------------------------------------
# torch references

def e8m0_to_float_ref(s: torch.Tensor) -> torch.Tensor:
    """float8_e8m0fnu (or its uint8 bytes) -> fp32: 2^(byte - 127), byte 255 -> NaN."""
    b = s.view(torch.uint8).to(torch.float64)
    v = torch.exp2(b - 127.0)
    return torch.where(b == 255, torch.full_like(v, float("nan")), v).to(torch.float32)


def e2m1_decode_ref(code: torch.Tensor) -> torch.Tensor:
    """e2m1 codes (integers 0..15) -> fp32 values (code 8 is -0.0)."""
    grid = torch.tensor(E2M1_VALUES, dtype=torch.float32, device=code.device)
    c = code.to(torch.int64)
    mag = grid[c & 7]
    return torch.where((c & 8) != 0, -mag, mag)


def unpack_fp4_ref(packed: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Packed fp4 (float4_e2m1fn_x2 / int8 / uint8) [..., n, ...] -> fp32 with 2n along ``dim``, low nibble first."""
    b = packed.view(torch.uint8)
    d = dim % b.dim()
    shape = list(b.shape)
    shape[d] *= 2
    return e2m1_decode_ref(torch.stack((b & 0xF, b >> 4), dim=d + 1).reshape(shape))


def dequant_ref(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The values of ``x`` in fp64 whatever its format: packed fp4 unpacked along ``dim``, e8m0 decoded."""
    if is_fp4(x):
        return unpack_fp4_ref(x, dim).double()
    if E8M0 is not None and x.dtype == E8M0:
        return e8m0_to_float_ref(x).double()
    return x.to(torch.float64)


def _swizzled_offsets(rows: int, cols: int) -> torch.Tensor:
    r = torch.arange(rows).view(-1, 1)
    c = torch.arange(cols).view(1, -1)
    ncb = -(-cols // 4)
    return ((r // 128) * ncb + c // 4) * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + (c % 4)


def swizzle_scales(s: torch.Tensor) -> torch.Tensor:
    """[rows, cols] block scales -> the MX swizzled layout, flat (as torch.testing's ``to_blocked``), zero-padded."""
    rows, cols = s.shape
    rp, cp = -(-rows // 128) * 128, -(-cols // 4) * 4
    u = s.view(torch.uint8) if s.element_size() == 1 and s.dtype != torch.uint8 else s
    out = u.new_zeros(rp * cp)
    out[_swizzled_offsets(rows, cols).to(u.device).reshape(-1)] = u.reshape(-1)
    return out.view(s.dtype) if u is not s else out


def unswizzle(s: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Inverse of :func:`swizzle_scales`: flat swizzled scales -> [rows, cols]."""
    return s.reshape(-1)[_swizzled_offsets(rows, cols).to(s.device).reshape(-1)].reshape(rows, cols)
