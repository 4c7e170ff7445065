"""nonzero: the coordinates of the non-zero elements, in row-major order, as an [n, ndim] int64 tensor.

Two passes over rank-6 addressing (addressing.py): count the non-zeros per block, then each block writes its
rows at offset sum(counts of the blocks before it) + exclusive cumsum of its own flags. The result size needs
one host sync (``.item()``), inherent to nonzero.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew
from .addressing import MAX_RANK, block_size, program_coords
from .copy import copy_into
from .elementwise import ALL


@triton.jit
def _nonzero_flags(x_ptr, pid, N, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, BLOCK: tl.constexpr):
    """(f, c0..c5) for block ``pid``: f = 1 where the element is non-zero, and each element's coordinates."""
    o, mask, c0, c1, c2, c3, c4, c5 = program_coords(pid, N, d1, d2, d3, d4, d5, BLOCK)
    x = tl.load(x_ptr + (c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4 + c5 * s5), mask=mask, other=0)
    return (mask & (x != 0)).to(tl.int64), c0, c1, c2, c3, c4, c5


@triton.jit
def _nz_count_kernel(x_ptr, cnt_ptr, N, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    f, c0, c1, c2, c3, c4, c5 = _nonzero_flags(x_ptr, pid, N, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, BLOCK)
    tl.store(cnt_ptr + pid, tl.sum(f, axis=0))


@triton.jit
def _nz_write_kernel(x_ptr, cnt_ptr, out_ptr, N, nblocks, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5,
                     NDIM: tl.constexpr, BLOCK: tl.constexpr, CBLOCK: tl.constexpr):
    pid = tl.program_id(0)
    f, c0, c1, c2, c3, c4, c5 = _nonzero_flags(x_ptr, pid, N, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, BLOCK)
    # rows written by the blocks before this one
    base = tl.zeros([CBLOCK], tl.int64)
    for start in range(0, nblocks, CBLOCK):
        b = start + tl.arange(0, CBLOCK)
        base += tl.load(cnt_ptr + b, mask=b < pid, other=0)
    row = tl.sum(base, axis=0) + tl.cumsum(f, axis=0) - f
    keep = f != 0
    # coordinates in the input's own (unmerged) dims: the last NDIM of (c0..c5)
    if NDIM >= 6:
        tl.store(out_ptr + row * NDIM + (NDIM - 6), c0, mask=keep)
    if NDIM >= 5:
        tl.store(out_ptr + row * NDIM + (NDIM - 5), c1, mask=keep)
    if NDIM >= 4:
        tl.store(out_ptr + row * NDIM + (NDIM - 4), c2, mask=keep)
    if NDIM >= 3:
        tl.store(out_ptr + row * NDIM + (NDIM - 3), c3, mask=keep)
    if NDIM >= 2:
        tl.store(out_ptr + row * NDIM + (NDIM - 2), c4, mask=keep)
    if NDIM >= 1:
        tl.store(out_ptr + row * NDIM + (NDIM - 1), c5, mask=keep)


def _nonzero_supports(self, *, out=None):
    if self.dtype not in ALL:
        return f"dtype {self.dtype}"
    if self.dim() > MAX_RANK:
        return f"rank > {MAX_RANK}"
    if out is not None and (out.dtype != torch.int64 or ew.same_storage(out, self)):
        return "out dtype/overlap"
    return None


def _nonzero_core(self, out=None):
    nd = self.dim()
    n = self.numel()
    if n == 0:
        res = torch.empty((0, nd), dtype=torch.int64, device=self.device)
        if out is not None:
            out.resize_((0, nd))
            return out
        return res
    pad = MAX_RANK - nd
    shape = [1] * pad + list(self.shape)
    st = [0] * pad + list(self.stride())
    dims = shape[1:]
    block = block_size(n)
    nblocks = triton.cdiv(n, block)
    cnt = torch.empty(nblocks, dtype=torch.int64, device=self.device)
    with runtime.device_guard(self):
        _nz_count_kernel[(nblocks,)](self, cnt, n, *dims, *st, BLOCK=block)
    # the result size: one host sync, inherent to nonzero
    total = int(cnt.sum().item()) if nblocks > 1 else int(cnt.item())
    if out is None:
        out = torch.empty((total, nd), dtype=torch.int64, device=self.device)
    else:
        if list(out.shape) != [total, nd]:
            out.resize_((total, nd))
    target = out if out.is_contiguous() else torch.empty((total, nd), dtype=torch.int64, device=self.device)
    if total and nd:
        cblock = max(16, min(1024, runtime.next_pow2(nblocks)))
        with runtime.device_guard(self):
            _nz_write_kernel[(nblocks,)](self, cnt, target, n, nblocks, *dims, *st, NDIM=nd, BLOCK=block,
                                         CBLOCK=cblock)
    if target is not out:
        copy_into(out, target)
    return out


@implement("aten::nonzero.default", kind="triton", supports=_nonzero_supports)
def nonzero(self):
    return _nonzero_core(self)


@implement("aten::nonzero.out", kind="triton", supports=_nonzero_supports)
def nonzero_out(self, *, out):
    return _nonzero_core(self, out)
