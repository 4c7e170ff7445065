"""Histograms with atomic adds: bincount and histc.

bincount: out[x[i]] += w[i] (or 1), size max(max(x) + 1, minlength) (one host sync for the size, like torch).
histc:    bin = trunc((x - min) * bins / (max - min)) for min <= x <= max (x == max goes to the last bin).
          Integer inputs follow torch's CUDA kernel (CPU torch raises for them): min / max truncated to the input
          type, the bin computed in int64 ((x - min) * bins // (max - min)), counts in the input dtype.
          transformers' grouped_mm experts count tokens per expert with an int32 histc on every non-CPU device.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew
from .addressing import block_size
from .copy import contiguous_copy
from .elementwise import FLOAT, INT


@triton.jit
def _hist_kernel(x_ptr, w_ptr, out_ptr, N, sx, sw, nbins, lo, hi,
                 HIST: tl.constexpr, HAS_W: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr,
                 INT_BINS: tl.constexpr = False):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < N
    x = tl.load(x_ptr + o * sx, mask=mask, other=0)
    if HIST:
        v = x.to(COMPUTE)
        inside = (v >= lo) & (v <= hi)
        if INT_BINS:
            # torch's CUDA kernel for integer inputs: int64 arithmetic; numerator >= 0 inside, so // is floor
            b = ((v - lo) * nbins) // (hi - lo)
        else:
            # torch: (elt - left) * nbins / (right - left) in the input dtype, truncated
            b = tl.div_rn((v - lo) * nbins, hi - lo).to(tl.int64)
        b = tl.where(b >= nbins, nbins - 1, b)
        b = tl.where(b < 0, 0, b)
        ok = mask & inside
    else:
        b = x.to(tl.int64)
        ok = mask
    if HAS_W:
        w = tl.load(w_ptr + o * sw, mask=ok, other=0).to(out_ptr.dtype.element_ty)
    else:
        w = tl.full([BLOCK], 1, out_ptr.dtype.element_ty)
    tl.atomic_add(out_ptr + b, w, mask=ok)


def _bincount_supports(self, weights=None, minlength=0):
    if self.dtype not in INT or self.dim() != 1:
        return "input dtype/rank (torch raises)"
    if weights is not None and (weights.shape != self.shape or weights.dtype not in FLOAT | INT):
        return "weights shape/dtype"
    if minlength < 0:
        return "negative minlength (torch raises)"
    return None


@implement("aten::bincount.default", kind="triton", supports=_bincount_supports)
def bincount(self, weights=None, minlength=0):
    n = self.numel()
    # the result size depends on the data: one host sync (like torch)
    if n:
        lo, hi = torch.ops.aten.aminmax.default(self)
        if int(lo.item()) < 0:
            raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
        size = max(int(hi.item()) + 1, minlength)
    else:
        size = minlength
    if weights is None:
        od = torch.int64
    else:
        od = torch.float32 if weights.dtype == torch.float32 else torch.float64
    out = torch.zeros(size, dtype=od, device=self.device)
    if n:
        block = block_size(n)
        with runtime.device_guard(out):
            _hist_kernel[(triton.cdiv(n, block),)](self, weights if weights is not None else self, out, n,
                                                   self.stride(0), weights.stride(0) if weights is not None else 0,
                                                   size, 0.0, 0.0, HIST=False, HAS_W=weights is not None,
                                                   COMPUTE=tl.float32, BLOCK=block)
    return out


_HISTC_INT = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})


def _histc_supports(self, bins=100, min=0, max=0, *, out=None):
    if self.dtype in _HISTC_INT:
        if self.device.type == "cpu":
            return "integer input on CPU (torch raises)"
        if not int(min) < int(max):
            return "min >= max after truncation to an integer: range from the data"
    elif self.dtype != torch.float32:
        return f"dtype {self.dtype}"
    if bins <= 0:
        return "bins <= 0 (torch raises)"
    if not (math.isfinite(min) and math.isfinite(max)):
        return "range not finite (torch raises)"
    if not min < max:
        return "min >= max: range from the data"
    if out is not None:
        return "out variant"
    return None


@implement("aten::histc.default", kind="triton", supports=_histc_supports)
def histc(self, bins=100, min=0, max=0):
    # atomic adds exist for 32/64-bit types only: 8/16-bit integer counts accumulate in int32
    acc = torch.int32 if self.dtype in _HISTC_INT and self.element_size() < 4 else self.dtype
    out = torch.zeros(bins, dtype=acc, device=self.device)
    n = self.numel()
    if n:
        x = self if self.dim() <= 1 and (self.dim() == 0 or self.stride(0) > 0) else contiguous_copy(self).view(-1)
        x = x.reshape(-1) if x.dim() == 0 else x
        integer = self.dtype in _HISTC_INT
        lo, hi = (int(min), int(max)) if integer else (float(min), float(max))
        block = block_size(n)
        with runtime.device_guard(out):
            _hist_kernel[(triton.cdiv(n, block),)](x, x, out, n, x.stride(0), 0, bins,
                                                   lo, hi,
                                                   HIST=True, HAS_W=False,
                                                   COMPUTE=tl.int64 if integer else ew.tl_dtype(self.dtype),
                                                   BLOCK=block, INT_BINS=integer)
    return out if acc == self.dtype else out.to(self.dtype)
