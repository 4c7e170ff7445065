"""The two address-computing kernels behind gather, scatter, index_select, embedding, index and index_put.

Both walk a logical iteration shape of rank <= 6 (addressing.py) and address each operand through its strides:

- take:  out[o] = src[src_off(o) + idx[idx_off(o)] * sdim]          gather, index_select, embedding, index.Tensor
- put:   dst[dst_off(o) + idx[idx_off(o)] * ddim] (= | +=) val[o]   scatter(_add), index_add, index_put(_)

Index validation happens on device: an out-of-range index is never dereferenced (its load/store is masked), it
sets a flag, and the host raises torch's kind of error after the launch. Reading that flag is one host sync per
call (``flag.item()``); ``FLAGGEMS_INDEX_CHECK=0`` skips it (out-of-range elements then read 0 / are not written).
For in-place ops the in-range elements may already be written when the error is raised (torch's CPU kernels
also fail part-way).

Accumulating ops (scatter_add, index_add, index_put accumulate=True, scatter reduce='add') use atomic adds: exact
for duplicate indices in integers; in floats the order of the additions is unspecified (like torch on CUDA).
fp32/fp64/int32/int64 destinations are added to in place; fp16/bf16 accumulate in an fp32 copy and
int8/int16/uint8 in an int32 copy, rounded once at the end. Non-accumulating writes with duplicate indices
(scatter, index_put accumulate=False): which duplicate wins is unspecified, as torch documents it.
"""
from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from .. import runtime
from . import elementwise as ew
from .addressing import block_size, geometry, program_coords
from .copy import copy_into

IDX = frozenset({torch.int32, torch.int64})
ATOMIC = frozenset({torch.float32, torch.float64, torch.int32, torch.int64})


def check_enabled() -> bool:
    return os.environ.get("FLAGGEMS_INDEX_CHECK", "1") != "0"


@triton.jit
def load_index(idx_ptr, flag_ptr, o, mask, c0, c1, c2, c3, c4, c5, si0, si1, si2, si3, si4, si5, n_bound,
               WRAP: tl.constexpr, CHECK: tl.constexpr):
    """(i, ok): the index at coordinates c (wrapped when negative if WRAP) and whether 0 <= i < n_bound.

    With CHECK an out-of-range index sets the flag the host reads after the launch."""
    i = tl.load(idx_ptr + (c0 * si0 + c1 * si1 + c2 * si2 + c3 * si3 + c4 * si4 + c5 * si5),
                mask=mask, other=0).to(tl.int64)
    if WRAP:
        i = tl.where(i < 0, i + n_bound, i)
    if CHECK:
        tl.store(flag_ptr + o * 0, 1, mask=mask & ((i < 0) | (i >= n_bound)))
    return i, (i >= 0) & (i < n_bound)


@triton.jit
def take_kernel(out_ptr, src_ptr, idx_ptr, flag_ptr, N, n_bound, sdim,
                d1, d2, d3, d4, d5,
                so0, so1, so2, so3, so4, so5, ss0, ss1, ss2, ss3, ss4, ss5, si0, si1, si2, si3, si4, si5,
                WRAP: tl.constexpr, CHECK: tl.constexpr, BLOCK: tl.constexpr):
    o, mask, c0, c1, c2, c3, c4, c5 = program_coords(tl.program_id(0), N, d1, d2, d3, d4, d5, BLOCK)
    i, ok = load_index(idx_ptr, flag_ptr, o, mask, c0, c1, c2, c3, c4, c5, si0, si1, si2, si3, si4, si5, n_bound,
                       WRAP, CHECK)
    src = c0 * ss0 + c1 * ss1 + c2 * ss2 + c3 * ss3 + c4 * ss4 + c5 * ss5 + i * sdim
    v = tl.load(src_ptr + src, mask=mask & ok, other=0)
    tl.store(out_ptr + (c0 * so0 + c1 * so1 + c2 * so2 + c3 * so3 + c4 * so4 + c5 * so5), v, mask=mask)


@triton.jit
def _put_kernel(dst_ptr, src_ptr, idx_ptr, flag_ptr, alpha, N, n_bound, ddim,
                d1, d2, d3, d4, d5,
                sd0, sd1, sd2, sd3, sd4, sd5, ss0, ss1, ss2, ss3, ss4, ss5, si0, si1, si2, si3, si4, si5,
                WRAP: tl.constexpr, ACCUM: tl.constexpr, HAS_ALPHA: tl.constexpr, CHECK: tl.constexpr,
                BLOCK: tl.constexpr):
    o, mask, c0, c1, c2, c3, c4, c5 = program_coords(tl.program_id(0), N, d1, d2, d3, d4, d5, BLOCK)
    i, ok = load_index(idx_ptr, flag_ptr, o, mask, c0, c1, c2, c3, c4, c5, si0, si1, si2, si3, si4, si5, n_bound,
                       WRAP, CHECK)
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


def new_flag(device):
    return torch.zeros(1, dtype=torch.int32, device=device)


def raise_if(flag, make_error):
    if flag is not None and int(flag.item()) != 0:
        raise make_error()


def first_bad(idx: torch.Tensor, size: int, wrap: bool):
    lo = -size if wrap else 0
    for v in idx.detach().reshape(-1).cpu().tolist():
        if not lo <= v < size:
            return v
    return None


def bounds_error(kind, idx, size, dim, wrap=False, fixed_msg=None):
    def make():
        if fixed_msg is not None:
            return kind(fixed_msg)
        v = first_bad(idx, size, wrap)
        return kind(f"index {v} is out of bounds for dimension {dim} with size {size}")
    return make


def take(out, src, idx, src_strides, idx_strides, sdim, n_bound, wrap, error=None):
    """out[o] = src[src_strides.o + idx[idx_strides.o] * sdim] over out's shape."""
    n = out.numel()
    if n == 0:
        return out
    geo = geometry(out.shape, [out.stride(), src_strides, idx_strides])
    assert geo is not None, "supports() keeps the iteration rank <= 6"
    dims, (so, ss, si) = geo
    check = error is not None and check_enabled()
    flag = new_flag(out.device) if check else None
    block = block_size(n)
    with runtime.device_guard(out):
        take_kernel[(triton.cdiv(n, block),)](
            out, src, idx, flag if check else idx, n, n_bound, sdim, *dims, *so, *ss, *si,
            WRAP=wrap, CHECK=check, BLOCK=block)
    if check:
        raise_if(flag, error)
    return out


def put(dst, src, idx, shape, dst_strides, src_strides, idx_strides, ddim, n_bound, wrap, accumulate,
        alpha=None, error=None, flag=None):
    """dst[dst_strides.o + idx[idx_strides.o] * ddim] (+)= alpha * src[src_strides.o] over ``shape``."""
    n = math.prod(shape)
    if n == 0:
        return dst
    geo = geometry(shape, [dst_strides, src_strides, idx_strides])
    assert geo is not None, "supports() keeps the iteration rank <= 6"
    dims, (sd, ss, si) = geo
    check = error is not None and check_enabled()
    own_flag = flag is None and check
    if own_flag:
        flag = new_flag(dst.device)
    block = block_size(n)
    has_alpha = alpha is not None and alpha != 1
    if has_alpha and not dst.dtype.is_floating_point:
        alpha = int(alpha)
    with runtime.device_guard(dst):
        _put_kernel[(triton.cdiv(n, block),)](
            dst, src, idx, flag if check else idx, alpha if has_alpha else 1, n, n_bound, ddim,
            *dims, *sd, *ss, *si, WRAP=wrap, ACCUM=accumulate, HAS_ALPHA=has_alpha, CHECK=check, BLOCK=block)
    if own_flag:
        raise_if(flag, error)
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
