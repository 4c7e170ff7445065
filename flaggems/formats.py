"""Low-precision number formats: the torch dtypes flaggems recognises for FP8 / FP4 / E8M0.

(The Triton decoders, torch references and the MX scale swizzle move here with the GEMM renovation.)
"""
from __future__ import annotations

import torch


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
