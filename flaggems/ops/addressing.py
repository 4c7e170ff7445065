"""Rank-6 strided addressing shared by the indexing kernels (take/put, nonzero, isin).

A kernel walks a flat index o over a logical shape (d0..d5) and addresses each operand through its own strides:
coords(o) = (c0..c5) with o = ((((c0*d1 + c1)*d2 + c2)*d3 + c3)*d4 + c4)*d5 + c5, offset = sum_k c_k * stride_k.
``geometry`` merges dims contiguous in every operand first, so most calls need far fewer than six.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .. import runtime
from . import elementwise as ew

MAX_RANK = 6
_DEFAULT = {"BLOCK": 1024}


def block_size(n: int) -> int:
    """Elements per program for n elements (large under the interpreter, where programs run one by one)."""
    cfg = runtime.config("indexing", _DEFAULT)
    big = 65536 if runtime.interpreting() else cfg["BLOCK"]
    return max(16, min(big, runtime.next_pow2(n)))


@triton.jit
def coords(o, d1, d2, d3, d4, d5):
    c5 = o % d5
    t = o // d5
    c4 = t % d4
    t = t // d4
    c3 = t % d3
    t = t // d3
    c2 = t % d2
    t = t // d2
    c1 = t % d1
    c0 = t // d1
    return c0, c1, c2, c3, c4, c5


@triton.jit
def program_coords(pid, N, d1, d2, d3, d4, d5, BLOCK: tl.constexpr):
    """(o, mask, c0..c5) of program ``pid``'s BLOCK flat indices (int64: numel may pass 2**31)."""
    o = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    c0, c1, c2, c3, c4, c5 = coords(o, d1, d2, d3, d4, d5)
    return o, o < N, c0, c1, c2, c3, c4, c5


def geometry(shape, strides_list):
    """Merge dims; returns (dims d1..d5, [6 strides per operand]) or None when more than 6 dims remain."""
    shape = list(shape)
    if not shape:
        shape, strides_list = [1], [[0] for _ in strides_list]
    cshape, cstrides = ew.coalesce(shape, [list(s) for s in strides_list])
    if len(cshape) > MAX_RANK:
        return None
    pad = MAX_RANK - len(cshape)
    cshape = [1] * pad + cshape
    cstrides = [[0] * pad + st for st in cstrides]
    return cshape[1:], cstrides


def restride(t, shape):
    """Strides of ``t`` broadcast to ``shape`` (0 along broadcast dims)."""
    return list(t.expand(shape).stride()) if tuple(t.shape) != tuple(shape) else list(t.stride())

