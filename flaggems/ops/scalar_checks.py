"""Which Python scalars torch refuses to convert to a tensor dtype ("value cannot be converted to type int8_t
without overflow"), so an op that would raise in torch is left to torch instead of wrapping silently.

c10's ``checked_convert`` / ``overflows<To, From>``, for a Scalar holding a bool, an int64 or a double:

- a bool converts to anything; anything converts to bool;
- an int to a signed integer type: min <= v <= max; to an unsigned type: v <= max and -v <= max (negative
  values wrap, so uint8 takes -255 .. 255); to a float type: |v| <= the type's max;
- a double to an integer type: finite and min <= v <= max (so 127.5 overflows int8, 2.5 does not);
  to a float type: inf converts to types that have inf, NaN to types that have NaN (all of them here),
  finite v needs lowest <= v <= max.

Which ops check, and when, differs (measured on torch 2.13):
- ``overflows(v, dtype)``: alpha, clamp bounds, masked_fill values — always checked against the tensor dtype;
- ``fill_overflows(v, dtype, numel)``: fill_, fill, full, new_full, full_like — checked, except bool targets
  and a single-element fp16 / bf16 / fp8 tensor (torch's one-element fast path converts through float,
  rounding to +-inf or saturating);
- ``where_overflows(v, dtype)``: the Python scalar of where — checked, except bool and fp16 / bf16 / fp8
  results (converted through float unchecked).
"""
from __future__ import annotations

import math

import torch

_NO_INF = {getattr(torch, n) for n in ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2fnuz") if hasattr(torch, n)}
_REDUCED_FLOATS = {torch.float16, torch.bfloat16} | {
    getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
    if hasattr(torch, n)}


def overflows(value, dtype: torch.dtype) -> bool:
    """True where torch's checked conversion of Python scalar ``value`` to ``dtype`` raises."""
    if isinstance(value, bool) or dtype is torch.bool or isinstance(value, complex) or dtype.is_complex:
        return False
    if dtype.is_floating_point:
        fmax = torch.finfo(dtype).max
        if isinstance(value, int):
            return abs(value) > fmax
        if math.isnan(value):
            return False     # every float type here has a NaN
        if math.isinf(value):
            return dtype in _NO_INF
        return value < -fmax or value > fmax
    info = torch.iinfo(dtype)
    if isinstance(value, float):
        return not math.isfinite(value) or value < info.min or value > info.max
    if info.min == 0:
        return value > info.max or -value > info.max
    return value < info.min or value > info.max


def fill_overflows(value, dtype: torch.dtype, numel: int) -> bool:
    """True where torch's fill_ / full of ``numel`` elements with Python scalar ``value`` raises."""
    if dtype is torch.bool or (numel == 1 and dtype in _REDUCED_FLOATS):
        return False
    return overflows(value, dtype)


def where_overflows(value, dtype: torch.dtype) -> bool:
    """True where torch.where with Python scalar ``value`` and result ``dtype`` raises."""
    if dtype is torch.bool or dtype in _REDUCED_FLOATS:
        return False
    return overflows(value, dtype)


def overflow_reason(value, dtype: torch.dtype) -> str:
    return f"value {value!r} overflows {str(dtype).replace('torch.', '')} (torch raises)"
