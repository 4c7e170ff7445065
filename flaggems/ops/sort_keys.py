"""Ordered integer keys for sort / topk, and the row inputs/outputs both sort paths share.

key(v) is an int64 whose signed order is the value order torch sorts by: floats through their bits (negative
floats with the magnitude bits flipped), -0.0 folded onto +0.0 and every NaN onto one NaN above +inf (torch sorts
NaN as the largest value); integers and bool as themselves; descending order complements the key (~k).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .rows import rows_layout


@triton.jit
def ordered_key(v, DESC: tl.constexpr, KIND: tl.constexpr):
    if KIND == 0:    # floats of <= 32 bits, compared in fp32 (exact widening)
        f = v.to(tl.float32)
        b = f.to(tl.int32, bitcast=True)
        b = tl.where(f == 0, 0, b)
        b = tl.where(f != f, 0x7FC00000, b)
        b = tl.where(b < 0, b ^ 0x7FFFFFFF, b)
        k = b.to(tl.int64)
    elif KIND == 1:  # fp64
        b = v.to(tl.int64, bitcast=True)
        b = tl.where(v == 0, 0, b)
        b = tl.where(v != v, 0x7FF8000000000000, b)
        k = tl.where(b < 0, b ^ 0x7FFFFFFFFFFFFFFF, b)
    else:            # integers and bool
        k = v.to(tl.int64)
    if DESC:
        k = ~k
    return k


def kind_of(dt: torch.dtype) -> int:
    """The KIND constexpr of ``ordered_key`` for a dtype."""
    if dt == torch.float64:
        return 1
    if dt.is_floating_point:
        return 0
    return 2


def rows_io(x, d, k, values, indices):
    """Outputs for the first k of every row of x along d: (values, indices) allocated or resized to x's shape
    with k at d, and, unless they are empty, (x', tv, ti, x' rows, tv strides, ti strides): x' a row-addressable
    view or copy of x, tv/ti the outputs or contiguous temporaries where their layout is not row-addressable."""
    shape = list(x.shape)
    shape[d] = k
    if values is None:
        values = torch.empty(shape, dtype=x.dtype, device=x.device)
    if indices is None:
        indices = torch.empty(shape, dtype=torch.int64, device=x.device)
    for o in (values, indices):
        if list(o.shape) != shape:
            o.resize_(shape)
    if values.numel() == 0:
        return values, indices, None
    lx = rows_layout(x, d)
    if lx is None:
        x = x.contiguous()
        lx = rows_layout(x, d)
    tv = values if rows_layout(values, d) is not None else torch.empty(shape, dtype=x.dtype, device=x.device)
    ti = indices if rows_layout(indices, d) is not None else torch.empty(shape, dtype=torch.int64, device=x.device)
    return values, indices, (x, tv, ti, lx, rows_layout(tv, d)[2:], rows_layout(ti, d)[2:])


def rows_done(values, indices, tv, ti):
    if tv is not values:
        values.copy_(tv)
    if ti is not indices:
        indices.copy_(ti)
    return values, indices

