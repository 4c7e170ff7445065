"""reflection_pad{1,2,3}d and replication_pad{1,2,3}d (F.pad modes "reflect" and "replicate"), with their out= twins.

The input is viewed as x[b, n1, n2, n3] (the K padded trailing dims, led by size-1 dims up to three, after one
batch dim; a non-contiguous input is copied first). Each output element out[b, c1, c2, c3] reads one input element:
with i = c - lo (lo the leading pad of that dim, negative pads crop),

    reflect:    i < 0 -> -i,  i >= n -> 2(n-1) - i      (torch requires lo, hi < n, so one fold suffices)
    replicate:  clamp(i, 0, n-1)

Inputs torch rejects (wrong rank, reflection pads >= the dim, empty non-batch dims, bool) go to the native kernel,
which raises.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from .addressing import block_size
from .copy import contiguous_copy
from .elementwise import ALL


@triton.jit
def _source(c, lo, n, REFLECT: tl.constexpr):
    i = c - lo
    if REFLECT:
        i = tl.where(i < 0, -i, i)
        i = tl.where(i >= n, 2 * (n - 1) - i, i)
    else:
        i = tl.minimum(tl.maximum(i, 0), n - 1)
    return i


@triton.jit
def _pad_kernel(x_ptr, out_ptr, total, n1, n2, n3, o1, o2, o3, lo1, lo2, lo3,
                REFLECT: tl.constexpr, BLOCK: tl.constexpr):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < total
    c3 = o % o3
    t = o // o3
    c2 = t % o2
    t = t // o2
    c1 = t % o1
    b = t // o1
    i1 = _source(c1, lo1, n1, REFLECT)
    i2 = _source(c2, lo2, n2, REFLECT)
    i3 = _source(c3, lo3, n3, REFLECT)
    v = tl.load(x_ptr + ((b * n1 + i1) * n2 + i2) * n3 + i3, mask=mask)
    tl.store(out_ptr + o, v, mask=mask)


def _out_shape(self, pad):
    k = len(pad) // 2
    shape = list(self.shape)
    for j in range(k):
        d = self.dim() - 1 - j
        shape[d] = self.size(d) + pad[2 * j] + pad[2 * j + 1]
    return shape


def _supports(k, reflect):
    def supports(self, padding, *, out=None):
        if self.dtype not in ALL or self.dtype == torch.bool:
            return f"dtype {self.dtype} (torch raises for bool)"
        if len(padding) != 2 * k or self.dim() not in (k + 1, k + 2):
            return "padding length / input rank (torch raises)"
        # every dim but a leading batch dim must be non-empty (torch raises otherwise)
        if any(s == 0 for s in self.shape[1:]) or (self.dim() == k + 1 and self.size(0) == 0):
            return "empty non-batch dim (torch raises)"
        for j in range(k):
            n = self.size(self.dim() - 1 - j)
            lo, hi = padding[2 * j], padding[2 * j + 1]
            if reflect and not (lo < n and hi < n):
                return "reflection pad >= input dim (torch raises)"
            if n + lo + hi < 1:
                return "non-positive output size (torch raises)"
        if out is not None:
            if out.dtype != self.dtype:
                return "out dtype"
            if out.data_ptr() == self.data_ptr() or not out.is_contiguous():
                return "out overlaps self / non-contiguous out"
        return None
    return supports


def _pad(self, padding, reflect, out=None):
    k = len(padding) // 2
    shape = _out_shape(self, padding)
    if out is None:
        out = torch.empty(shape, dtype=self.dtype, device=self.device)
    elif list(out.shape) != shape:
        out.resize_(shape)
    if out.numel() == 0:
        return out
    x = self if self.is_contiguous() else contiguous_copy(self)
    dims = [1] * (3 - k) + list(self.shape[self.dim() - k:])
    odims = [1] * (3 - k) + shape[self.dim() - k:]
    # F.pad lists pads last dim first
    los = [0] * (3 - k) + [padding[2 * (k - 1 - j)] for j in range(k)]
    total = out.numel()
    block = block_size(total)
    with runtime.device_guard(x):
        _pad_kernel[(triton.cdiv(total, block),)](x, out, total, *dims, *odims, *los, REFLECT=reflect, BLOCK=block)
    return out


def _register(k, reflect):
    name = f"{'reflection' if reflect else 'replication'}_pad{k}d"
    sup = _supports(k, reflect)

    @implement(f"aten::{name}.default", kind="triton", supports=sup)
    def functional(self, padding):
        return _pad(self, padding, reflect)

    @implement(f"aten::{name}.out", kind="triton", supports=sup)
    def out_variant(self, padding, *, out):
        return _pad(self, padding, reflect, out)

    functional.__name__, out_variant.__name__ = name, f"{name}_out"
    return functional, out_variant


for _k in (1, 2, 3):
    for _reflect in (True, False):
        _register(_k, _reflect)
