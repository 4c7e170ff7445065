"""The two address-computing kernels behind gather, scatter, index_select, embedding, index and index_put.

Both walk a logical iteration shape of rank <= 6 (addressing.py) and address each operand through its strides:

- take:  out[o] = src[src_off(o) + idx[idx_off(o)] * sdim]          gather, index_select, embedding, index.Tensor
- put:   dst[dst_off(o) + idx[idx_off(o)] * ddim] (= | +=) val[o]   scatter(_add), index_add, index_put(_)

An out-of-range index is never dereferenced (its load/store is masked); the kernels record it in a device-side
error record, which the host reads right away on the cpu vendor (raising torch's kind of error) and never reads
per call on an accelerator vendor (index_errors.py: deferred check, no host sync; ``FLAGGEMS_INDEX_CHECK=sync``
reads it after every call, ``=0`` records nothing). For in-place ops the in-range elements may already be written when the error is raised (torch's CPU kernels
also fail part-way).

Accumulating ops (scatter_add, index_add, index_put accumulate=True, scatter reduce='add') use atomic adds: exact
for duplicate indices in integers; in floats the order of the additions is unspecified (like torch on CUDA).
fp32/fp64/int32/int64 destinations are added to in place; fp16/bf16 accumulate in an fp32 copy and
int8/int16/uint8 in an int32 copy, rounded once at the end. Non-accumulating writes with duplicate indices
(scatter, index_put accumulate=False): which duplicate wins is unspecified, as torch documents it.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import runtime
from . import elementwise as ew
from .addressing import block_size, geometry, program_coords
from .copy import copy_into
from .index_errors import Check, error_from

IDX = frozenset({torch.int32, torch.int64})
ATOMIC = frozenset({torch.float32, torch.float64, torch.int32, torch.int64})


@triton.jit
def record_bad(rec_ptr, o, bad, raw, n_bound, err_kind, err_dim):
    """Record this program's first out-of-range index in rec[0:5] (index_errors.py) if it has one.

    rec[0] counts the programs that found one; the program that moves it from 0 writes the other words, so they
    always describe a single error (later errors, also from later launches into a sticky record, are counted
    only). Programs without a bad index do one reduction and no memory traffic."""
    if tl.max(bad.to(tl.int32), axis=0) > 0:
        if tl.atomic_add(rec_ptr, 1) == 0:
            first = tl.min(tl.where(bad, o, 9223372036854775807), axis=0)
            tl.store(rec_ptr + 1, err_kind)
            tl.store(rec_ptr + 2, tl.sum(tl.where(o == first, raw, 0), axis=0))
            tl.store(rec_ptr + 3, n_bound)
            tl.store(rec_ptr + 4, err_dim)


@triton.jit
def load_index(idx_ptr, rec_ptr, o, mask, c0, c1, c2, c3, c4, c5, si0, si1, si2, si3, si4, si5, n_bound,
               err_kind, err_dim, WRAP: tl.constexpr, CHECK: tl.constexpr):
    """(i, ok): the index at coordinates c (wrapped when negative if WRAP) and whether 0 <= i < n_bound.

    With CHECK an out-of-range index is recorded in the error record ``rec_ptr`` (``record_bad``)."""
    raw = tl.load(idx_ptr + (c0 * si0 + c1 * si1 + c2 * si2 + c3 * si3 + c4 * si4 + c5 * si5),
                  mask=mask, other=0).to(tl.int64)
    i = raw
    if WRAP:
        i = tl.where(raw < 0, raw + n_bound, raw)
    ok = (i >= 0) & (i < n_bound)
    if CHECK:
        record_bad(rec_ptr, o, mask & (ok == 0), raw, n_bound, err_kind, err_dim)
    return i, ok


@triton.jit
def take_kernel(out_ptr, src_ptr, idx_ptr, rec_ptr, N, n_bound, sdim, err_kind, err_dim,
                d1, d2, d3, d4, d5,
                so0, so1, so2, so3, so4, so5, ss0, ss1, ss2, ss3, ss4, ss5, si0, si1, si2, si3, si4, si5,
                WRAP: tl.constexpr, CHECK: tl.constexpr, BLOCK: tl.constexpr):
    o, mask, c0, c1, c2, c3, c4, c5 = program_coords(tl.program_id(0), N, d1, d2, d3, d4, d5, BLOCK)
    i, ok = load_index(idx_ptr, rec_ptr, o, mask, c0, c1, c2, c3, c4, c5, si0, si1, si2, si3, si4, si5, n_bound,
                       err_kind, err_dim, WRAP, CHECK)
    src = c0 * ss0 + c1 * ss1 + c2 * ss2 + c3 * ss3 + c4 * ss4 + c5 * ss5 + i * sdim
    v = tl.load(src_ptr + src, mask=mask & ok, other=0)
    tl.store(out_ptr + (c0 * so0 + c1 * so1 + c2 * so2 + c3 * so3 + c4 * so4 + c5 * so5), v, mask=mask)


@triton.jit
def _put_kernel(dst_ptr, src_ptr, idx_ptr, rec_ptr, alpha, N, n_bound, ddim, err_kind, err_dim,
                d1, d2, d3, d4, d5,
                sd0, sd1, sd2, sd3, sd4, sd5, ss0, ss1, ss2, ss3, ss4, ss5, si0, si1, si2, si3, si4, si5,
                WRAP: tl.constexpr, ACCUM: tl.constexpr, HAS_ALPHA: tl.constexpr, CHECK: tl.constexpr,
                BLOCK: tl.constexpr):
    o, mask, c0, c1, c2, c3, c4, c5 = program_coords(tl.program_id(0), N, d1, d2, d3, d4, d5, BLOCK)
    i, ok = load_index(idx_ptr, rec_ptr, o, mask, c0, c1, c2, c3, c4, c5, si0, si1, si2, si3, si4, si5, n_bound,
                       err_kind, err_dim, WRAP, CHECK)
    ok = mask & ok
    v = tl.load(src_ptr + (c0 * ss0 + c1 * ss1 + c2 * ss2 + c3 * ss3 + c4 * ss4 + c5 * ss5), mask=ok, other=0)
    if HAS_ALPHA:
        v = v.to(dst_ptr.dtype.element_ty) * alpha
    v = v.to(dst_ptr.dtype.element_ty)
    dst = dst_ptr + (c0 * sd0 + c1 * sd1 + c2 * sd2 + c3 * sd3 + c4 * sd4 + c5 * sd5 + i * ddim)
    if ACCUM:
        tl.atomic_add(dst, v, mask=ok)
    else:
        tl.store(dst, v, mask=ok)


def first_bad(idx: torch.Tensor, size: int, wrap: bool):
    """The first index (in row-major order) outside [0, size) ([-size, size) with ``wrap``), else None.
    Host memory only: used to build an eager error's message, never on an accelerator's tensors."""
    lo = -size if wrap else 0
    for v in idx.detach().reshape(-1).cpu().tolist():
        if not lo <= v < size:
            return v
    return None


class Bounds:
    """What one index tensor must satisfy, and the error torch raises for it: ``kind`` (index_errors.KINDS)
    names the exception class and message; ``dim`` / ``size`` the indexed dim; negative indices wrap if ``wrap``."""

    __slots__ = ("kind", "idx", "size", "dim", "wrap")

    def __init__(self, kind: int, idx: torch.Tensor, size: int, dim: int, wrap: bool = False):
        self.kind, self.idx, self.size, self.dim, self.wrap = kind, idx, size, dim, wrap

    def bad(self):
        return first_bad(self.idx, self.size, self.wrap)

    def error(self) -> Exception:
        """torch's error for this index, naming its first out-of-range value like torch's CPU kernels."""
        return error_from(self.kind, self.bad(), self.size, self.dim)


def launch_check(device, bounds, chk=None):
    """(Check, rec argument, err_kind, err_dim) for a launch that validates against ``bounds`` (None: no check),
    in the call's Check ``chk`` when the caller shares one over several launches (else a new one)."""
    if bounds is None:
        return None, None, 0, 0
    if chk is None:
        chk = Check(device, bounds.kind)
    if chk.rec is None:
        return None, None, 0, 0
    return chk, chk.rec, bounds.kind, bounds.dim


def take(out, src, idx, src_strides, idx_strides, sdim, n_bound, wrap, bounds=None):
    """out[o] = src[src_strides.o + idx[idx_strides.o] * sdim] over out's shape; out-of-range indices read 0 and
    are reported against ``bounds`` (index_errors.py)."""
    n = out.numel()
    if n == 0:
        return out
    geo = geometry(out.shape, [out.stride(), src_strides, idx_strides])
    assert geo is not None, "supports() keeps the iteration rank <= 6"
    dims, (so, ss, si) = geo
    chk, rec, kind, edim = launch_check(out.device, bounds)
    block = block_size(n)
    with runtime.device_guard(out):
        take_kernel[(triton.cdiv(n, block),)](
            out, src, idx, rec if chk else idx, n, n_bound, sdim, kind, edim, *dims, *so, *ss, *si,
            WRAP=wrap, CHECK=chk is not None, BLOCK=block)
    if chk is not None:
        chk.finish(bounds.error)
    return out


def put(dst, src, idx, shape, dst_strides, src_strides, idx_strides, ddim, n_bound, wrap, accumulate,
        alpha=None, bounds=None, chk=None):
    """dst[dst_strides.o + idx[idx_strides.o] * ddim] (+)= alpha * src[src_strides.o] over ``shape``;
    out-of-range indices are skipped and reported against ``bounds`` (index_errors.py): raised here, or, when the
    caller passes its own Check ``chk``, left for the caller to finish."""
    own = chk is None
    n = math.prod(shape)
    if n == 0:
        return dst
    geo = geometry(shape, [dst_strides, src_strides, idx_strides])
    assert geo is not None, "supports() keeps the iteration rank <= 6"
    dims, (sd, ss, si) = geo
    chk, rec, kind, edim = launch_check(dst.device, bounds, chk)
    block = block_size(n)
    has_alpha = alpha is not None and alpha != 1
    if has_alpha and not dst.dtype.is_floating_point:
        alpha = int(alpha)
    with runtime.device_guard(dst):
        _put_kernel[(triton.cdiv(n, block),)](
            dst, src, idx, rec if chk else idx, alpha if has_alpha else 1, n, n_bound, ddim, kind, edim,
            *dims, *sd, *ss, *si, WRAP=wrap, ACCUM=accumulate, HAS_ALPHA=has_alpha, CHECK=chk is not None,
            BLOCK=block)
    if own and chk is not None:
        chk.finish(bounds.error)
    return dst


def accum_buffer(dst):
    """(buffer to accumulate into, finish()) for atomic adds into dst."""
    if dst.dtype in ATOMIC:
        return dst, lambda: dst
    wide = torch.float32 if dst.dtype.is_floating_point else torch.int32
    buf = torch.empty(dst.shape, dtype=wide, device=dst.device)
    copy_into(buf, dst)

    def finish():
        copy_into(dst, buf)
        return dst
    return buf, finish


def target_reason(target, self, index, src, src_name):
    """Why a put cannot write ``target`` (out= or self) directly (None if it can)."""
    if target.dtype != self.dtype:
        return "out dtype"
    r = ew.writable(target)
    if r is not None:
        return r
    if ew.same_storage(target, index) or (isinstance(src, torch.Tensor) and ew.same_storage(target, src)):
        return f"index/{src_name} overlaps the destination"
    return None


def fresh(self, out=None):
    """The destination of a functional put: a copy of ``self`` (into ``out`` when given)."""
    if out is None:
        out = torch.empty_like(self)
    elif out.shape != self.shape:
        out.resize_(self.shape)
    if out.numel() and not (out.data_ptr() == self.data_ptr() and out.stride() == self.stride()):
        copy_into(out, self)
    return out
