"""Indexing, data movement and selection ops.

Two address-computing kernels serve most of the family; both walk a logical iteration shape of rank <= 6 (after
merging dims that are contiguous in every operand) and address each operand through its own strides:

- take:  out[o] = src[src_off(o) + idx[idx_off(o)] * sdim]          gather, index_select, embedding, index.Tensor
- put:   dst[dst_off(o) + idx[idx_off(o)] * ddim] (= | +=) val[o]   scatter(_add), index_add, index_put(_)

Index tensors with several components (``x[i, j]``) are first folded into one element offset by ``_lin_kernel``.
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

Also here: nonzero (a count pass, one host sync for the result size, then a write pass), cat/stack (one copy
launch per input on the pointwise engine), constant_pad_nd (fill + interior copy), masked_fill, isin (blocked
all-pairs compare), cumsum (row scan with a carried prefix), bincount / histc (atomic histograms).
"""
from __future__ import annotations

import math
import os
from numbers import Number
from typing import List, Optional

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew
from .reduction import rows_layout

FLOAT = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
INT = frozenset({torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64})
DATA = FLOAT | INT | {torch.bool}
IDX = frozenset({torch.int32, torch.int64})
ATOMIC = frozenset({torch.float32, torch.float64, torch.int32, torch.int64})
MAX_RANK = 6
_BIG = 2 ** 62
_DEFAULT = {"BLOCK": 1024}


def _check_enabled() -> bool:
    return os.environ.get("FLAGGEMS_INDEX_CHECK", "1") != "0"


def _block(n: int) -> int:
    cfg = runtime.config("indexing", _DEFAULT)
    big = 65536 if runtime.interpreting() else cfg["BLOCK"]
    return max(16, min(big, triton.next_power_of_2(max(n, 1))))


# --------------------------------------------------------------------------------------------------------------
# kernels

@triton.jit
def _coords(o, d1, d2, d3, d4, d5):
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
def _take_kernel(out_ptr, src_ptr, idx_ptr, flag_ptr, N, n_bound, sdim,
                 d1, d2, d3, d4, d5,
                 so0, so1, so2, so3, so4, so5, ss0, ss1, ss2, ss3, ss4, ss5, si0, si1, si2, si3, si4, si5,
                 WRAP: tl.constexpr, CHECK: tl.constexpr, BLOCK: tl.constexpr):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < N
    c0, c1, c2, c3, c4, c5 = _coords(o, d1, d2, d3, d4, d5)
    i = tl.load(idx_ptr + (c0 * si0 + c1 * si1 + c2 * si2 + c3 * si3 + c4 * si4 + c5 * si5),
                mask=mask, other=0).to(tl.int64)
    if WRAP:
        i = tl.where(i < 0, i + n_bound, i)
    ok = (i >= 0) & (i < n_bound)
    if CHECK:
        tl.store(flag_ptr + o * 0, 1, mask=mask & ((i < 0) | (i >= n_bound)))
    src = c0 * ss0 + c1 * ss1 + c2 * ss2 + c3 * ss3 + c4 * ss4 + c5 * ss5 + i * sdim
    v = tl.load(src_ptr + src, mask=mask & ok, other=0)
    tl.store(out_ptr + (c0 * so0 + c1 * so1 + c2 * so2 + c3 * so3 + c4 * so4 + c5 * so5), v, mask=mask)


@triton.jit
def _put_kernel(dst_ptr, src_ptr, idx_ptr, flag_ptr, alpha, N, n_bound, ddim,
                d1, d2, d3, d4, d5,
                sd0, sd1, sd2, sd3, sd4, sd5, ss0, ss1, ss2, ss3, ss4, ss5, si0, si1, si2, si3, si4, si5,
                WRAP: tl.constexpr, ACCUM: tl.constexpr, HAS_ALPHA: tl.constexpr, CHECK: tl.constexpr,
                BLOCK: tl.constexpr):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < N
    c0, c1, c2, c3, c4, c5 = _coords(o, d1, d2, d3, d4, d5)
    i = tl.load(idx_ptr + (c0 * si0 + c1 * si1 + c2 * si2 + c3 * si3 + c4 * si4 + c5 * si5),
                mask=mask, other=0).to(tl.int64)
    if WRAP:
        i = tl.where(i < 0, i + n_bound, i)
    ok = mask & (i >= 0) & (i < n_bound)
    if CHECK:
        tl.store(flag_ptr + o * 0, 1, mask=mask & ((i < 0) | (i >= n_bound)))
    v = tl.load(src_ptr + (c0 * ss0 + c1 * ss1 + c2 * ss2 + c3 * ss3 + c4 * ss4 + c5 * ss5), mask=ok, other=0)
    if HAS_ALPHA:
        v = v.to(dst_ptr.dtype.element_ty) * alpha
    v = v.to(dst_ptr.dtype.element_ty)
    dst = dst_ptr + (c0 * sd0 + c1 * sd1 + c2 * sd2 + c3 * sd3 + c4 * sd4 + c5 * sd5 + i * ddim)
    if ACCUM:
        tl.atomic_add(dst, v, mask=ok)
    else:
        tl.store(dst, v, mask=ok)


@triton.jit
def _lin_kernel(lin_ptr, idx_ptr, flag_ptr, N, size, stride, d1, d2, d3, d4, d5,
                so0, so1, so2, so3, so4, so5, si0, si1, si2, si3, si4, si5,
                FIRST: tl.constexpr, CHECK: tl.constexpr, BLOCK: tl.constexpr):
    # lin[o] += wrap(idx[o]) * stride; an out-of-range component makes lin -1 for good
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < N
    c0, c1, c2, c3, c4, c5 = _coords(o, d1, d2, d3, d4, d5)
    i = tl.load(idx_ptr + (c0 * si0 + c1 * si1 + c2 * si2 + c3 * si3 + c4 * si4 + c5 * si5),
                mask=mask, other=0).to(tl.int64)
    i = tl.where(i < 0, i + size, i)
    ok = (i >= 0) & (i < size)
    if CHECK:
        tl.store(flag_ptr + o * 0, 1, mask=mask & ((i < 0) | (i >= size)))
    lo = c0 * so0 + c1 * so1 + c2 * so2 + c3 * so3 + c4 * so4 + c5 * so5
    if FIRST:
        acc = tl.zeros([BLOCK], tl.int64)
    else:
        acc = tl.load(lin_ptr + lo, mask=mask, other=0)
    r = tl.where(ok & (acc >= 0), acc + i * stride, -1)
    tl.store(lin_ptr + lo, r, mask=mask)


# --------------------------------------------------------------------------------------------------------------
# host helpers

def _geometry(shape, strides_list):
    """Merge dims; returns (dims d1..d5, [6 strides per operand]) or None when more than 6 dims remain."""
    shape = list(shape)
    if not shape:
        shape, strides_list = [1], [[0] for _ in strides_list]
    cshape, cstrides = ew._coalesce(shape, [list(s) for s in strides_list])
    if len(cshape) > MAX_RANK:
        return None
    pad = MAX_RANK - len(cshape)
    cshape = [1] * pad + cshape
    cstrides = [[0] * pad + st for st in cstrides]
    return cshape[1:], cstrides


def _new_flag(device):
    return torch.zeros(1, dtype=torch.int32, device=device)


def _raise_if(flag, make_error):
    if flag is not None and int(flag.item()) != 0:
        raise make_error()


def _first_bad(idx: torch.Tensor, size: int, wrap: bool):
    lo = -size if wrap else 0
    for v in idx.detach().reshape(-1).cpu().tolist():
        if not lo <= v < size:
            return v
    return None


def _bounds_error(kind, idx, size, dim, wrap=False, fixed_msg=None):
    def make():
        if fixed_msg is not None:
            return kind(fixed_msg)
        v = _first_bad(idx, size, wrap)
        return kind(f"index {v} is out of bounds for dimension {dim} with size {size}")
    return make


def _take(out, src, idx, src_strides, idx_strides, sdim, n_bound, wrap, error=None):
    """out[o] = src[src_strides.o + idx[idx_strides.o] * sdim] over out's shape."""
    n = out.numel()
    if n == 0:
        return out
    geo = _geometry(out.shape, [out.stride(), src_strides, idx_strides])
    assert geo is not None, "supports() keeps the iteration rank <= 6"
    dims, (so, ss, si) = geo
    check = error is not None and _check_enabled()
    flag = _new_flag(out.device) if check else None
    block = _block(n)
    with runtime.device_guard(out):
        _take_kernel[(triton.cdiv(n, block),)](
            out, src, idx, flag if check else idx, n, n_bound, sdim, *dims, *so, *ss, *si,
            WRAP=wrap, CHECK=check, BLOCK=block)
    if check:
        _raise_if(flag, error)
    return out


def _put(dst, src, idx, shape, dst_strides, src_strides, idx_strides, ddim, n_bound, wrap, accumulate,
         alpha=None, error=None, flag=None):
    """dst[dst_strides.o + idx[idx_strides.o] * ddim] (+)= alpha * src[src_strides.o] over ``shape``."""
    n = math.prod(shape)
    if n == 0:
        return dst
    geo = _geometry(shape, [dst_strides, src_strides, idx_strides])
    assert geo is not None, "supports() keeps the iteration rank <= 6"
    dims, (sd, ss, si) = geo
    check = error is not None and _check_enabled()
    own_flag = flag is None and check
    if own_flag:
        flag = _new_flag(dst.device)
    block = _block(n)
    has_alpha = alpha is not None and alpha != 1
    if has_alpha and not dst.dtype.is_floating_point:
        alpha = int(alpha)
    with runtime.device_guard(dst):
        _put_kernel[(triton.cdiv(n, block),)](
            dst, src, idx, flag if check else idx, alpha if has_alpha else 1, n, n_bound, ddim,
            *dims, *sd, *ss, *si, WRAP=wrap, ACCUM=accumulate, HAS_ALPHA=has_alpha, CHECK=check, BLOCK=block)
    if own_flag:
        _raise_if(flag, error)
    return dst


def _restride(t, shape):
    """Strides of ``t`` broadcast to ``shape`` (0 along broadcast dims)."""
    return list(t.expand(shape).stride()) if tuple(t.shape) != tuple(shape) else list(t.stride())


@triton.jit
def _copy_op(a, b, c, p0):
    return a


@triton.jit
def _where_op(a, b, c, p0):
    return tl.where(a != 0, b, c)


def _copy(dst, src):
    return ew.launch(_copy_op, [src], dst, dst.dtype)


def _clone(x):
    out = torch.empty_like(x)
    return _copy(out, x) if x.numel() else out


def _wrap_dim(dim, ndim, kind=IndexError):
    w = max(ndim, 1)
    if not -w <= dim < w:
        raise kind(f"Dimension out of range (expected to be in range of [{-w}, {w - 1}], but got {dim})")
    return dim % w


def _same_storage(a, b) -> bool:
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.numel() > 0 and b.numel() > 0
            and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())


def _writable(t) -> Optional[str]:
    if t.numel() > 1 and torch._debug_has_internal_overlap(t) != 0:
        return "destination has internal overlap"
    return None


def _accum_buffer(dst):
    """(buffer to accumulate into, finish()) for atomic adds into dst."""
    if dst.dtype in ATOMIC:
        return dst, lambda: dst
    wide = torch.float32 if dst.dtype.is_floating_point else torch.int32
    buf = torch.empty(dst.shape, dtype=wide, device=dst.device)
    _copy(buf, dst)

    def finish():
        _copy(dst, buf)
        return dst
    return buf, finish


# --------------------------------------------------------------------------------------------------------------
# gather

def _along_dim_reason(self, dim, index):
    """Why gather/scatter cannot take (self, dim, index) (None if they can): the shared shape/dtype rules."""
    if self.dtype not in DATA:
        return f"dtype {self.dtype}"
    if index.dtype != torch.int64:
        return "index dtype (torch raises)"
    nd = self.dim()
    if nd == 0 or index.dim() != nd:
        return "0-dim or rank mismatch"
    if nd > MAX_RANK:
        return f"rank > {MAX_RANK}"
    if not -nd <= dim < nd:
        return "dim out of range"
    d = dim % nd
    if any(index.size(k) > self.size(k) for k in range(nd) if k != d):
        return "index larger than self (torch raises)"
    return None


def _gather_supports(self, dim, index, sparse_grad=False, *, out=None):
    r = _along_dim_reason(self, dim, index)
    if r:
        return r
    if out is not None:
        if out.dtype != self.dtype:
            return "out dtype"
        if _same_storage(out, self) or _same_storage(out, index):
            return "out overlaps an input"
    return None


def _gather_into(out, self, dim, index):
    d = dim % self.dim()
    ss = list(self.stride())
    sdim = ss[d]
    ss[d] = 0
    return _take(out, self, index, ss, index.stride(), sdim, self.size(d), False,
                 _bounds_error(RuntimeError, index, self.size(d), d))


@implement("aten::gather.default", kind="triton", supports=_gather_supports)
def gather(self, dim, index, sparse_grad=False):
    out = torch.empty(index.shape, dtype=self.dtype, device=self.device)
    return _gather_into(out, self, dim, index)


@implement("aten::gather.out", kind="triton", supports=_gather_supports)
def gather_out(self, dim, index, sparse_grad=False, *, out):
    if out.shape != index.shape:
        out.resize_(index.shape)
    return _gather_into(out, self, dim, index)


# --------------------------------------------------------------------------------------------------------------
# index_select / embedding

def _index_select_supports(self, dim, index, *, out=None):
    if self.dtype not in DATA:
        return f"dtype {self.dtype}"
    if index.dtype not in IDX or index.dim() > 1:
        return "index dtype/rank (torch raises)"
    if not -max(self.dim(), 1) <= dim < max(self.dim(), 1):
        return "dim out of range"
    if self.dim() == 0:
        return "0-dim self"
    if self.dim() > MAX_RANK:
        return f"rank > {MAX_RANK}"
    if out is not None and (out.dtype != self.dtype or _same_storage(out, self) or _same_storage(out, index)):
        return "out dtype/overlap"
    return None


def _index_select_into(out, self, dim, index):
    d = dim % self.dim()
    shape = list(self.shape)
    shape[d] = index.numel()
    ss = list(self.stride())
    sdim = ss[d]
    ss[d] = 0
    si = [0] * len(shape)
    si[d] = index.stride(0) if index.dim() else 0
    return _take(out, self, index, ss, si, sdim, self.size(d), False,
                 _bounds_error(IndexError, index, self.size(d), d, fixed_msg="index out of range in self"))


@implement("aten::index_select.default", kind="triton", supports=_index_select_supports)
def index_select(self, dim, index):
    d = dim % self.dim()
    shape = list(self.shape)
    shape[d] = index.numel()
    out = torch.empty(shape, dtype=self.dtype, device=self.device)
    return _index_select_into(out, self, dim, index)


@implement("aten::index_select.out", kind="triton", supports=_index_select_supports)
def index_select_out(self, dim, index, *, out):
    d = dim % self.dim()
    shape = list(self.shape)
    shape[d] = index.numel()
    if list(out.shape) != shape:
        out.resize_(shape)
    return _index_select_into(out, self, dim, index)


def _embedding_supports(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    if weight.dtype not in DATA or weight.dim() != 2:
        return "weight dtype/rank"
    if indices.dtype not in IDX:
        return "indices dtype (torch raises)"
    if indices.dim() + 1 > MAX_RANK:
        return f"rank > {MAX_RANK}"
    return None


@implement("aten::embedding.default", kind="triton", supports=_embedding_supports)
def embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    # padding_idx and scale_grad_by_freq only change the backward
    shape = list(indices.shape) + [weight.size(1)]
    out = torch.empty(shape, dtype=weight.dtype, device=weight.device)
    ss = [0] * indices.dim() + [weight.stride(1)]
    si = list(indices.stride()) + [0]
    return _take(out, weight, indices, ss, si, weight.stride(0), weight.size(0), False,
                 _bounds_error(IndexError, indices, weight.size(0), 0, fixed_msg="index out of range in self"))


# --------------------------------------------------------------------------------------------------------------
# advanced indexing: index.Tensor, index_put_

def _index_supports(self, indices, *rest, **kw):
    if self.dtype not in DATA:
        return f"dtype {self.dtype}"
    if self.dim() == 0:
        return "0-dim self"
    n = 0
    any_t = False
    bdim = 0
    for t in indices:
        if t is None:
            n += 1
            continue
        if not isinstance(t, torch.Tensor):
            return "non-tensor index"
        if t.dtype == torch.bool:
            if t.dim() == 0:
                return "0-dim bool index"
            n += t.dim()
            bdim = max(bdim, 1)
        elif t.dtype in IDX:
            n += 1
            bdim = max(bdim, t.dim())
        else:
            return f"index dtype {t.dtype}"
        if t.device != self.device:
            return "index on another device"
        any_t = True
    if not any_t:
        return "no index tensor"
    if n > self.dim():
        return "too many indices (torch raises)"
    if self.dim() - n + bdim > MAX_RANK:
        return f"result rank > {MAX_RANK}"
    return None


class _Plan:
    __slots__ = ("shape", "self_strides", "idx", "idx_strides", "sdim", "n_bound", "wrap", "error", "flag")


def _plan(self, indices) -> _Plan:
    """Where ``self[indices]``'s elements live: see the module docstring."""
    expanded: List[Optional[torch.Tensor]] = []
    for t in indices:
        if t is not None and t.dtype == torch.bool:
            d0 = len(expanded)
            for j in range(t.dim()):
                if d0 + j >= self.dim() or t.size(j) != self.size(d0 + j):
                    raise IndexError(f"The shape of the mask {list(t.shape)} at index {j} does not match the shape "
                                     f"of the indexed tensor {list(self.shape)} at index {d0 + j}")
            nz = nonzero(t)
            expanded.extend(nz.select(1, j) for j in range(t.dim()))
        else:
            expanded.append(t)
    if len(expanded) > self.dim():
        raise IndexError(f"too many indices for tensor of dimension {self.dim()} (got {len(expanded)})")
    idims = [d for d, t in enumerate(expanded) if t is not None]
    tens = [expanded[d] for d in idims]
    try:
        bshape = list(torch.broadcast_shapes(*[t.shape for t in tens]))
    except RuntimeError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes "
                         + ", ".join(str(list(t.shape)) for t in tens)) from None
    adjacent = idims == list(range(idims[0], idims[-1] + 1))
    rest = [d for d in range(self.dim()) if d not in idims]
    before = [d for d in rest if d < idims[0]] if adjacent else []
    after = [d for d in rest if d not in before]
    p = _Plan()
    p.shape = [self.size(d) for d in before] + bshape + [self.size(d) for d in after]
    p.self_strides = [self.stride(d) for d in before] + [0] * len(bshape) + [self.stride(d) for d in after]
    nb = len(bshape)
    zb, za = [0] * len(before), [0] * len(after)
    p.flag = _new_flag(self.device) if _check_enabled() else None
    if len(tens) == 1:
        t = tens[0]
        d = idims[0]
        p.idx = t
        p.idx_strides = zb + _restride(t, bshape) + za
        p.sdim, p.n_bound, p.wrap = self.stride(d), self.size(d), True
        p.error = _bounds_error(IndexError, t, self.size(d), d, wrap=True)
    else:
        lin = torch.empty(bshape, dtype=torch.int64, device=self.device)
        n = lin.numel()
        errs = []
        for k, (d, t) in enumerate(zip(idims, tens)):
            errs.append(_bounds_error(IndexError, t, self.size(d), d, wrap=True))
            if n == 0:
                continue
            geo = _geometry(bshape, [lin.stride(), _restride(t, bshape)])
            assert geo is not None, "supports() keeps the index rank <= 6"
            dims, (so, si) = geo
            block = _block(n)
            with runtime.device_guard(lin):
                _lin_kernel[(triton.cdiv(n, block),)](
                    lin, t, p.flag if p.flag is not None else lin, n, self.size(d), self.stride(d), *dims, *so, *si,
                    FIRST=k == 0, CHECK=p.flag is not None, BLOCK=block)

        def err():
            for (d, t), e in zip(zip(idims, tens), errs):
                if _first_bad(t, self.size(d), True) is not None:
                    return e()
            return IndexError("index out of bounds")
        p.idx = lin
        p.idx_strides = zb + list(lin.stride()) + za
        p.sdim, p.n_bound, p.wrap = 1, _BIG, False
        p.error = err
    return p


@implement("aten::index.Tensor", kind="triton", supports=_index_supports)
def index(self, indices):
    p = _plan(self, indices)
    out = torch.empty(p.shape, dtype=self.dtype, device=self.device)
    if out.numel():
        n = out.numel()
        geo = _geometry(p.shape, [out.stride(), p.self_strides, p.idx_strides])
        assert geo is not None, "supports() keeps the result rank <= 6"
        dims, (so, ss, si) = geo
        block = _block(n)
        check = p.flag is not None
        with runtime.device_guard(out):
            _take_kernel[(triton.cdiv(n, block),)](
                out, self, p.idx, p.flag if check else out, n, p.n_bound, p.sdim, *dims, *so, *ss, *si,
                WRAP=p.wrap, CHECK=check, BLOCK=block)
    elif p.wrap and p.idx.numel() and _first_bad(p.idx, p.n_bound, True) is not None:
        raise p.error()  # nothing to read, but torch still validates the indices
    _raise_if(p.flag, p.error)
    return out


def _index_put_supports(self, indices, values, accumulate=False, unsafe=False, functional=False):
    r = _index_supports(self, indices)
    if r is not None:
        return r
    if not isinstance(values, torch.Tensor) or values.dtype != self.dtype:
        return "values dtype differs (torch raises)"
    if values.device != self.device and values.dim() > 0:
        return "values on another device"
    if functional:
        return None   # runs on a fresh copy of self
    r = _writable(self)
    if r is not None:
        return r
    if _same_storage(values, self) or any(_same_storage(t, self) for t in indices if t is not None):
        return "values/indices overlap self"
    if accumulate and self.dtype == torch.bool:
        return "bool accumulate"
    return None


def _index_put_impl(self, indices, values, accumulate):
    p = _plan(self, indices)
    shape = p.shape
    try:
        vstr = _restride(values, shape)
    except RuntimeError:
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(values.shape)} cannot be broadcast to "
                           f"indexing result of shape {list(shape)}") from None
    if values.device != self.device:
        values = values.to(self.device)
    if accumulate:
        buf, finish = _accum_buffer(self)
        if list(buf.stride()) != list(self.stride()):
            p = _plan(buf, indices)   # the (contiguous) buffer is addressed with its own strides
    else:
        buf, finish = self, (lambda: self)
    _put(buf, values, p.idx, shape, p.self_strides, vstr, p.idx_strides, p.sdim, p.n_bound, p.wrap, accumulate,
         error=p.error, flag=p.flag)
    _raise_if(p.flag, p.error)
    return finish()


@implement(["aten::index_put_.default"], kind="triton", supports=_index_put_supports)
def index_put_(self, indices, values, accumulate=False):
    return _index_put_dispatch(self, indices, values, accumulate)


@implement(["aten::_index_put_impl_.default"], kind="triton", supports=_index_put_supports)
def _index_put_impl_(self, indices, values, accumulate=False, unsafe=False):
    return _index_put_dispatch(self, indices, values, accumulate)


@implement(["aten::index_put.default"], kind="triton",
           supports=lambda self, indices, values, accumulate=False: _index_put_supports(
               self, indices, values, accumulate, functional=True))
def index_put(self, indices, values, accumulate=False):
    return _index_put_dispatch(_clone_contig(self), indices, values, accumulate)


def _clone_contig(x):
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    return _copy(out, x) if x.numel() else out


def _index_put_dispatch(self, indices, values, accumulate):
    return _index_put_impl(self, indices, values, accumulate)


# --------------------------------------------------------------------------------------------------------------
# scatter / scatter_add / index_add

def _scatter_check(self, dim, index, src=None):
    r = _along_dim_reason(self, dim, index)
    if r:
        return r
    nd = self.dim()
    if isinstance(src, torch.Tensor):
        if src.dtype != self.dtype:
            return "src dtype differs (torch raises)"
        if src.dim() != nd or any(index.size(k) > src.size(k) for k in range(nd)):
            return "index larger than src (torch raises)"
    elif src is not None and not ew.is_number(src):
        return "value type"
    return None


def _reduce_ok(reduce):
    return None if reduce is None or reduce == "add" else f"reduce={reduce}"


def _scatter_into(dst, dim, index, src, accumulate):
    d = dim % dst.dim()
    shape = list(index.shape)
    sd = list(dst.stride())
    ddim = sd[d]
    sd[d] = 0
    if isinstance(src, torch.Tensor):
        vstr = list(src.stride())
    else:
        src = torch.full((), src, dtype=dst.dtype, device=dst.device)
        vstr = [0] * len(shape)
    err = _bounds_error(RuntimeError, index, dst.size(d), d)
    if accumulate:
        buf, finish = _accum_buffer(dst)
        if buf is not dst:
            sd = list(buf.stride())
            ddim = sd[d]
            sd[d] = 0
        _put(buf, src, index, shape, sd, vstr, index.stride(), ddim, dst.size(d), False, True, error=err)
        return finish()
    return _put(dst, src, index, shape, sd, vstr, index.stride(), ddim, dst.size(d), False, False, error=err)


def _sc_supports(inplace=False, has_reduce=False, with_out=False):
    def supports(self, dim, index, src, *rest, **kw):
        r = _scatter_check(self, dim, index, src)
        if r is not None:
            return r
        if has_reduce:
            red = kw.get("reduce", rest[0] if rest else None)
            r = _reduce_ok(red)
            if r is not None:
                return r
            if red == "add" and self.dtype == torch.bool:
                return "bool add"
        target = self if inplace else kw.get("out")
        if target is not None:
            if target.dtype != self.dtype:
                return "out dtype"
            r = _writable(target)
            if r is not None:
                return r
            if _same_storage(target, index) or (isinstance(src, torch.Tensor) and _same_storage(target, src)):
                return "index/src overlaps the destination"
            if with_out and _same_storage(target, self) and target.data_ptr() != self.data_ptr():
                return "out overlaps self"
        return None
    return supports


def _fresh(self, out=None):
    if out is None:
        out = torch.empty_like(self)
    elif out.shape != self.shape:
        out.resize_(self.shape)
    if out.numel() and not (out.data_ptr() == self.data_ptr() and out.stride() == self.stride()):
        _copy(out, self)
    return out


@implement("aten::scatter.src", kind="triton", supports=_sc_supports())
def scatter_src(self, dim, index, src):
    return _scatter_into(_fresh(self), dim, index, src, False)


@implement("aten::scatter.value", kind="triton", supports=_sc_supports())
def scatter_value(self, dim, index, value):
    return _scatter_into(_fresh(self), dim, index, value, False)


@implement("aten::scatter.reduce", kind="triton", supports=_sc_supports(has_reduce=True))
def scatter_reduce_src(self, dim, index, src, *, reduce):
    return _scatter_into(_fresh(self), dim, index, src, True)


@implement("aten::scatter.value_reduce", kind="triton", supports=_sc_supports(has_reduce=True))
def scatter_value_reduce(self, dim, index, value, *, reduce):
    return _scatter_into(_fresh(self), dim, index, value, True)


@implement("aten::scatter_.src", kind="triton", supports=_sc_supports(inplace=True))
def scatter__src(self, dim, index, src):
    return _scatter_into(self, dim, index, src, False)


@implement("aten::scatter_.value", kind="triton", supports=_sc_supports(inplace=True))
def scatter__value(self, dim, index, value):
    return _scatter_into(self, dim, index, value, False)


@implement("aten::scatter_.reduce", kind="triton", supports=_sc_supports(inplace=True, has_reduce=True))
def scatter__reduce(self, dim, index, src, *, reduce):
    return _scatter_into(self, dim, index, src, True)


@implement("aten::scatter_.value_reduce", kind="triton",
           supports=_sc_supports(inplace=True, has_reduce=True))
def scatter__value_reduce(self, dim, index, value, *, reduce):
    return _scatter_into(self, dim, index, value, True)


@implement("aten::scatter.src_out", kind="triton", supports=_sc_supports(with_out=True))
def scatter_src_out(self, dim, index, src, *, out):
    return _scatter_into(_fresh(self, out), dim, index, src, False)


@implement("aten::scatter.value_out", kind="triton", supports=_sc_supports(with_out=True))
def scatter_value_out(self, dim, index, value, *, out):
    return _scatter_into(_fresh(self, out), dim, index, value, False)


def _sa_supports(self, dim, index, src, *, out=None):
    r = _sc_supports(with_out=out is not None)(self, dim, index, src, out=out)
    if r is None and self.dtype == torch.bool:
        return "bool add"
    return r


@implement("aten::scatter_add.default", kind="triton", supports=_sa_supports)
def scatter_add(self, dim, index, src):
    return _scatter_into(_fresh(self), dim, index, src, True)


@implement("aten::scatter_add.out", kind="triton", supports=_sa_supports)
def scatter_add_out(self, dim, index, src, *, out):
    return _scatter_into(_fresh(self, out), dim, index, src, True)


@implement("aten::scatter_add_.default", kind="triton",
           supports=lambda self, dim, index, src: _sa_supports(self, dim, index, src) or
           _sc_supports(inplace=True)(self, dim, index, src))
def scatter_add_(self, dim, index, src):
    return _scatter_into(self, dim, index, src, True)


def _index_add_supports(self, dim, index, source, *, alpha=1, out=None, inplace=False):
    if self.dtype not in DATA or self.dtype == torch.bool:
        return f"dtype {self.dtype}"
    if index.dtype not in IDX or index.dim() > 1:
        return "index dtype/rank (torch raises)"
    if not isinstance(source, torch.Tensor) or source.dtype != self.dtype:
        return "source dtype differs (torch raises)"
    if isinstance(alpha, (complex, torch.Tensor)) or (isinstance(alpha, float) and not self.dtype.is_floating_point):
        return "alpha type"
    nd = self.dim()
    if nd == 0 or not -nd <= dim < nd:
        return "0-dim self or dim out of range"
    if nd > MAX_RANK:
        return f"rank > {MAX_RANK}"
    d = dim % nd
    if source.dim() != nd and not (source.dim() == 0 and nd == 1) and not (nd == 0):
        return "source rank (torch raises)"
    if source.dim() == nd and (any(source.size(k) != self.size(k) for k in range(nd) if k != d)
                               or source.size(d) != index.numel()):
        return "source shape (torch raises)"
    target = self if inplace else out
    if target is not None:
        if target.dtype != self.dtype:
            return "out dtype"
        r = _writable(target)
        if r is not None:
            return r
        if _same_storage(target, index) or _same_storage(target, source):
            return "index/source overlaps the destination"
    return None


def _index_add_into(dst, dim, index, source, alpha):
    d = dim % dst.dim()
    shape = list(dst.shape)
    shape[d] = index.numel()
    if source.dim() == 0:
        source = source.reshape(1)
    buf, finish = _accum_buffer(dst)
    sd = list(buf.stride())
    ddim = sd[d]
    sd[d] = 0
    si = [0] * len(shape)
    si[d] = index.stride(0) if index.dim() else 0
    _put(buf, source, index, shape, sd, list(source.stride()), si, ddim, dst.size(d), False, True, alpha=alpha,
         error=_bounds_error(IndexError, index, dst.size(d), d, fixed_msg="index out of range in self"))
    return finish()


@implement("aten::index_add_.default", kind="triton",
           supports=lambda self, dim, index, source, *, alpha=1: _index_add_supports(
               self, dim, index, source, alpha=alpha, inplace=True))
def index_add_(self, dim, index, source, *, alpha=1):
    return _index_add_into(self, dim, index, source, alpha)


@implement("aten::index_add.default", kind="triton", supports=_index_add_supports)
def index_add(self, dim, index, source, *, alpha=1):
    return _index_add_into(_fresh(self), dim, index, source, alpha)


@implement("aten::index_add.out", kind="triton", supports=_index_add_supports)
def index_add_out(self, dim, index, source, *, alpha=1, out):
    return _index_add_into(_fresh(self, out), dim, index, source, alpha)


# --------------------------------------------------------------------------------------------------------------
# nonzero

@triton.jit
def _nz_count_kernel(x_ptr, cnt_ptr, N, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    o = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < N
    c0, c1, c2, c3, c4, c5 = _coords(o, d1, d2, d3, d4, d5)
    x = tl.load(x_ptr + (c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4 + c5 * s5), mask=mask, other=0)
    f = (mask & (x != 0)).to(tl.int64)
    tl.store(cnt_ptr + pid, tl.sum(f, axis=0))


@triton.jit
def _nz_write_kernel(x_ptr, cnt_ptr, out_ptr, N, nblocks, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5,
                     NDIM: tl.constexpr, BLOCK: tl.constexpr, CBLOCK: tl.constexpr):
    pid = tl.program_id(0)
    o = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < N
    c0, c1, c2, c3, c4, c5 = _coords(o, d1, d2, d3, d4, d5)
    x = tl.load(x_ptr + (c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4 + c5 * s5), mask=mask, other=0)
    f = (mask & (x != 0)).to(tl.int64)
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
    if self.dtype not in DATA:
        return f"dtype {self.dtype}"
    if self.dim() > MAX_RANK:
        return f"rank > {MAX_RANK}"
    if out is not None and (out.dtype != torch.int64 or _same_storage(out, self)):
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
    block = _block(n)
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
        cblock = max(16, min(1024, triton.next_power_of_2(nblocks)))
        with runtime.device_guard(self):
            _nz_write_kernel[(nblocks,)](self, cnt, target, n, nblocks, *dims, *st, NDIM=nd, BLOCK=block,
                                         CBLOCK=cblock)
    if target is not out:
        _copy(out, target)
    return out


@implement("aten::nonzero.default", kind="triton", supports=_nonzero_supports)
def nonzero(self):
    return _nonzero_core(self)


@implement("aten::nonzero.out", kind="triton", supports=_nonzero_supports)
def nonzero_out(self, *, out):
    return _nonzero_core(self, out)


# --------------------------------------------------------------------------------------------------------------
# cat / stack

def _is_legacy_empty(t):
    return t.dim() == 1 and t.numel() == 0


def _cat_plan(tensors, dim):
    """(result dtype, result shape, wrapped dim, kept tensors) or a reason string."""
    if len(tensors) == 0:
        return "empty list (torch raises)"
    dt = tensors[0].dtype
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            return "non-tensor"
        if t.dtype not in DATA:
            return f"dtype {t.dtype}"
        dt = torch.promote_types(dt, t.dtype)
        if t.device != tensors[0].device:
            return "mixed devices"
        if t.dim() >= 4 and not t.is_contiguous() and (
                t.is_contiguous(memory_format=torch.channels_last) if t.dim() == 4 else
                t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d)):
            return "channels_last input"
    kept = [t for t in tensors if not _is_legacy_empty(t)]
    if not kept:
        return dt, [0], 0, []
    ref = kept[0]
    nd = ref.dim()
    if nd == 0:
        return "0-dim input (torch raises)"
    if not -nd <= dim < nd:
        return "dim out of range (torch raises)"
    d = dim % nd
    total = 0
    for t in kept:
        if t.dim() != nd or any(t.size(k) != ref.size(k) for k in range(nd) if k != d):
            return "shape mismatch (torch raises)"
        total += t.size(d)
    shape = list(ref.shape)
    shape[d] = total
    return dt, shape, d, kept


def _cat_supports(tensors, dim=0, *, out=None):
    p = _cat_plan(tensors, dim)
    if isinstance(p, str):
        return p
    if out is not None:
        if out.dtype not in DATA or not torch.can_cast(p[0], out.dtype):
            return "out dtype"
        r = _writable(out)
        if r is not None:
            return r
        if any(_same_storage(out, t) for t in tensors):
            return "out overlaps an input"
    return None


def _cat_into(out, d, kept):
    off = 0
    for t in kept:
        n = t.size(d)
        if n and t.numel():
            _copy(out.narrow(d, off, n), t)
        off += n
    return out


@implement("aten::cat.default", kind="triton", supports=_cat_supports)
def cat(tensors, dim=0):
    dt, shape, d, kept = _cat_plan(tensors, dim)
    out = torch.empty(shape, dtype=dt, device=tensors[0].device)
    return _cat_into(out, d, kept)


@implement("aten::cat.out", kind="triton", supports=_cat_supports)
def cat_out(tensors, dim=0, *, out):
    dt, shape, d, kept = _cat_plan(tensors, dim)
    if list(out.shape) != shape:
        out.resize_(shape)
    return _cat_into(out, d, kept)


def _stack_plan(tensors, dim):
    if len(tensors) == 0:
        return "empty list (torch raises)"
    ref = tensors[0]
    for t in tensors:
        if not isinstance(t, torch.Tensor) or t.shape != ref.shape:
            return "shape mismatch (torch raises)"
    nd = ref.dim() + 1
    if not -nd <= dim < nd:
        return "dim out of range (torch raises)"
    d = dim % nd
    return _cat_plan([t.unsqueeze(d) for t in tensors], d)


def _stack_supports(tensors, dim=0, *, out=None):
    p = _stack_plan(tensors, dim)
    if isinstance(p, str):
        return p
    return _cat_supports([t.unsqueeze(p[2]) for t in tensors], p[2], out=out)


@implement("aten::stack.default", kind="triton", supports=_stack_supports)
def stack(tensors, dim=0):
    dt, shape, d, kept = _stack_plan(tensors, dim)
    out = torch.empty(shape, dtype=dt, device=tensors[0].device)
    return _cat_into(out, d, kept)


@implement("aten::stack.out", kind="triton", supports=_stack_supports)
def stack_out(tensors, dim=0, *, out):
    dt, shape, d, kept = _stack_plan(tensors, dim)
    if list(out.shape) != shape:
        out.resize_(shape)
    return _cat_into(out, d, kept)


# --------------------------------------------------------------------------------------------------------------
# constant_pad_nd / masked_fill

def _pad_supports(self, pad, value=0):
    if self.dtype not in DATA:
        return f"dtype {self.dtype}"
    if len(pad) % 2 or len(pad) // 2 > self.dim():
        return "pad length (torch raises)"
    for i in range(len(pad) // 2):
        d = self.dim() - 1 - i
        if self.size(d) + pad[2 * i] + pad[2 * i + 1] < 0:
            return "negative output size (torch raises)"
    if isinstance(value, complex):
        return "complex value"
    return None


@implement("aten::constant_pad_nd.default", kind="triton", supports=_pad_supports)
def constant_pad_nd(self, pad, value=0):
    shape = list(self.shape)
    src, inner = self, None
    out = None
    for i in range(len(pad) // 2):
        d = self.dim() - 1 - i
        shape[d] = self.size(d) + pad[2 * i] + pad[2 * i + 1]
    out = torch.empty(shape, dtype=self.dtype, device=self.device)
    if out.numel() == 0:
        return out
    inner = out
    for i in range(len(pad) // 2):
        d = self.dim() - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        keep = self.size(d) + min(lo, 0) + min(hi, 0)
        if keep <= 0:
            src = None
            break
        src = src.narrow(d, -min(lo, 0), keep)
        inner = inner.narrow(d, max(lo, 0), keep)
    if any(p > 0 for p in pad) or src is None:
        val = value if self.dtype.is_floating_point or self.dtype == torch.bool else int(value)
        ew.launch(_copy_op, [ew.as_operand(val, self.dtype, self.device)], out, self.dtype)
    if src is not None and src.numel():
        _copy(inner, src)
    return out


def _masked_fill_supports(self, mask, value, inplace=False):
    if self.dtype not in DATA:
        return f"dtype {self.dtype}"
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        return "mask dtype (torch raises)"
    if isinstance(value, torch.Tensor):
        if value.dim() != 0:
            return "value tensor not 0-dim (torch raises)"
        if value.is_complex():
            return "complex value"
    elif isinstance(value, complex) or not isinstance(value, Number):
        return "value type"
    if mask.device != self.device and mask.dim() > 0:
        return "mask on another device"
    try:
        shape = torch.broadcast_shapes(self.shape, mask.shape)
    except RuntimeError:
        return "shape (torch raises)"
    if inplace:
        if tuple(shape) != tuple(self.shape):
            return "mask does not broadcast to self (torch raises)"
        return ew.out_ok(self, self.shape, (mask,))
    return None


def _masked_fill_run(out, self, mask, value):
    if isinstance(value, torch.Tensor):
        v = value.to(device=out.device, dtype=out.dtype)
    else:
        if out.dtype == torch.bool:
            value = bool(value)
        elif not out.dtype.is_floating_point:
            value = int(value)
        v = ew.as_operand(value, out.dtype, out.device)
    if out.numel():
        ew.launch(_where_op, [mask, v, self], out, out.dtype)
    return out


@implement(["aten::masked_fill.Scalar", "aten::masked_fill.Tensor"], kind="triton", supports=_masked_fill_supports)
def masked_fill(self, mask, value):
    shape = torch.broadcast_shapes(self.shape, mask.shape)
    out = torch.empty_like(self) if tuple(shape) == tuple(self.shape) else \
        torch.empty(shape, dtype=self.dtype, device=self.device)
    return _masked_fill_run(out, self, mask, value)


@implement(["aten::masked_fill_.Scalar", "aten::masked_fill_.Tensor"], kind="triton",
           supports=lambda self, mask, value: _masked_fill_supports(self, mask, value, inplace=True))
def masked_fill_(self, mask, value):
    return _masked_fill_run(self, self, mask, value)


# --------------------------------------------------------------------------------------------------------------
# isin

@triton.jit
def _isin_kernel(x_ptr, t_ptr, out_ptr, N, M, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5,
                 CMP: tl.constexpr, INVERT: tl.constexpr, BLOCK: tl.constexpr, TBLOCK: tl.constexpr):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < N
    c0, c1, c2, c3, c4, c5 = _coords(o, d1, d2, d3, d4, d5)
    x = tl.load(x_ptr + (c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4 + c5 * s5), mask=mask, other=0).to(CMP)
    found = tl.zeros([BLOCK], tl.int32)
    for start in range(0, M, TBLOCK):
        j = start + tl.arange(0, TBLOCK)
        t = tl.load(t_ptr + j, mask=j < M, other=0).to(CMP)
        hit = (x[:, None] == t[None, :]) & (j < M)[None, :]
        found = tl.maximum(found, tl.max(hit.to(tl.int32), axis=1))
    if INVERT:
        found = 1 - found
    tl.store(out_ptr + o, found.to(tl.int1), mask=mask)


_ISIN_MAX_TEST = 1 << 16


def _isin_supports(elements, test_elements, *, assume_unique=False, invert=False, out=None):
    for x in (elements, test_elements):
        if isinstance(x, torch.Tensor):
            if x.dtype not in FLOAT | INT:
                return f"dtype {x.dtype}"
        elif isinstance(x, bool) or not isinstance(x, Number) or isinstance(x, complex):
            return "scalar type"
    if isinstance(elements, torch.Tensor) and elements.dim() > MAX_RANK:
        return f"rank > {MAX_RANK}"
    m = test_elements.numel() if isinstance(test_elements, torch.Tensor) else 1
    if m > _ISIN_MAX_TEST:
        return "test set larger than 65536 (all-pairs kernel)"
    if out is not None:
        return "out variant"
    return None


def _isin_core(elements, test_elements, invert):
    ref = elements if isinstance(elements, torch.Tensor) else test_elements
    device = ref.device
    cmp = torch.result_type(elements, test_elements)
    if cmp in (torch.float16, torch.bfloat16):
        cmp = torch.float32  # exact: both sides are widened
    e = elements if isinstance(elements, torch.Tensor) else torch.full((), elements, dtype=cmp, device=device)
    t = test_elements if isinstance(test_elements, torch.Tensor) else \
        torch.full((), test_elements, dtype=cmp, device=device)
    if t.device != device:
        t = t.to(device)
    if not t.is_contiguous():
        t = _clone_contig(t)
    out = torch.empty(e.shape, dtype=torch.bool, device=device)
    n, m = e.numel(), t.numel()
    if n == 0:
        return out
    pad = MAX_RANK - e.dim()
    shape = [1] * pad + list(e.shape)
    st = [0] * pad + list(e.stride())
    block = min(_block(n), 4096 if runtime.interpreting() else 256)
    tblock = max(16, min(triton.next_power_of_2(max(m, 1)), 64 if not runtime.interpreting() else 1024))
    with runtime.device_guard(out):
        _isin_kernel[(triton.cdiv(n, block),)](e, t, out, n, m, *shape[1:], *st, CMP=ew.tl_dtype(cmp),
                                               INVERT=invert, BLOCK=block, TBLOCK=tblock)
    return out


@implement(["aten::isin.Tensor_Tensor", "aten::isin.Tensor_Scalar", "aten::isin.Scalar_Tensor"], kind="triton",
           supports=_isin_supports)
def isin(elements, test_elements, *, assume_unique=False, invert=False):
    return _isin_core(elements, test_elements, invert)


# --------------------------------------------------------------------------------------------------------------
# cumsum

@triton.jit
def _cumsum_kernel(x_ptr, y_ptr, M, M2, N, sx1, sx2, sxn, sy1, sy2, syn,
                   ACC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    xb = (rows // M2) * sx1 + (rows % M2) * sx2
    yb = (rows // M2) * sy1 + (rows % M2) * sy2
    carry = tl.zeros([BLOCK_M], ACC)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N).to(tl.int64)
        mask = row_mask[:, None] & (cols < N)[None, :]
        # torch casts the input to the result dtype first, then accumulates
        x = tl.load(x_ptr + xb[:, None] + cols[None, :] * sxn, mask=mask, other=0)
        x = x.to(y_ptr.dtype.element_ty).to(ACC)
        c = tl.cumsum(x, axis=1) + carry[:, None]
        tl.store(y_ptr + yb[:, None] + cols[None, :] * syn, c.to(y_ptr.dtype.element_ty), mask=mask)
        carry += tl.sum(x, axis=1)


def _cumsum_dtype(self, dtype):
    if dtype is not None:
        return dtype
    return torch.int64 if self.dtype in INT or self.dtype == torch.bool else self.dtype


def _cumsum_supports(self, dim, *, dtype=None, out=None):
    if self.dtype not in DATA:
        return f"dtype {self.dtype}"
    od = _cumsum_dtype(self, dtype)
    if od not in FLOAT | INT:
        return f"result dtype {od}"
    if not -max(self.dim(), 1) <= dim < max(self.dim(), 1):
        return "dim out of range (torch raises)"
    if out is not None:
        if out.dtype != od:
            return "out dtype"
        if _same_storage(out, self) and not (out.data_ptr() == self.data_ptr() and out.stride() == self.stride()):
            return "out overlaps self"
        r = _writable(out)
        if r is not None:
            return r
    return None


def _cumsum_core(self, dim, od, out=None):
    d = _wrap_dim(dim, self.dim())
    x = self if self.dim() else self.reshape(1)
    if out is None:
        out = torch.empty(self.shape, dtype=od, device=self.device)
    elif out.shape != self.shape:
        out.resize_(self.shape)
    if self.numel() == 0:
        return out
    y = out if out.dim() else out.view(1)
    lx = rows_layout(x, d)
    if lx is None:
        x = _clone_contig(x)
        lx = rows_layout(x, d)
    target = y
    ly = rows_layout(y, d)
    if ly is None:
        target = torch.empty(y.shape, dtype=od, device=y.device)
        ly = rows_layout(target, d)
    M, M2, sx1, sx2, sxn = lx
    _, _, sy1, sy2, syn = ly
    N = x.size(d)
    if od.is_floating_point:
        # torch's CPU kernel accumulates fp32 in double (CUDA in float): follow the device's torch
        acc = torch.float64 if od == torch.float64 or (od == torch.float32 and self.device.type == "cpu") \
            else torch.float32
    else:
        acc = torch.int64
    block_n = max(16, min(triton.next_power_of_2(N), 4096 if runtime.interpreting() else 1024))
    block_m = max(1, min(triton.next_power_of_2(M), (16384 if runtime.interpreting() else 4096) // block_n))
    with runtime.device_guard(x):
        _cumsum_kernel[(triton.cdiv(M, block_m),)](x, target, M, M2, N, sx1, sx2, sxn, sy1, sy2, syn,
                                                    ACC=ew.tl_dtype(acc), BLOCK_M=block_m, BLOCK_N=block_n)
    if target is not y:
        _copy(y, target)
    return out


@implement("aten::cumsum.default", kind="triton", supports=_cumsum_supports)
def cumsum(self, dim, *, dtype=None):
    return _cumsum_core(self, dim, _cumsum_dtype(self, dtype))


@implement("aten::cumsum.out", kind="triton", supports=_cumsum_supports)
def cumsum_out(self, dim, *, dtype=None, out):
    return _cumsum_core(self, dim, out.dtype, out)


@implement("aten::cumsum_.default", kind="triton",
           supports=lambda self, dim, *, dtype=None: _cumsum_supports(self, dim, dtype=dtype, out=self)
           if dtype is None or dtype == self.dtype else "dtype differs from self")
def cumsum_(self, dim, *, dtype=None):
    return _cumsum_core(self, dim, self.dtype, self)


# --------------------------------------------------------------------------------------------------------------
# bincount / histc

@triton.jit
def _hist_kernel(x_ptr, w_ptr, out_ptr, N, sx, sw, nbins, lo, hi,
                 HIST: tl.constexpr, HAS_W: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = o < N
    x = tl.load(x_ptr + o * sx, mask=mask, other=0)
    if HIST:
        v = x.to(COMPUTE)
        inside = (v >= lo) & (v <= hi)
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
        block = _block(n)
        with runtime.device_guard(out):
            _hist_kernel[(triton.cdiv(n, block),)](self, weights if weights is not None else self, out, n,
                                                   self.stride(0), weights.stride(0) if weights is not None else 0,
                                                   size, 0.0, 0.0, HIST=False, HAS_W=weights is not None,
                                                   COMPUTE=tl.float32, BLOCK=block)
    return out


def _histc_supports(self, bins=100, min=0, max=0, *, out=None):
    if self.dtype != torch.float32:
        return f"dtype {self.dtype}"
    if bins <= 0:
        return "bins <= 0 (torch raises)"
    if not min < max:
        return "min >= max: range from the data"
    if out is not None:
        return "out variant"
    return None


@implement("aten::histc.default", kind="triton", supports=_histc_supports)
def histc(self, bins=100, min=0, max=0):
    out = torch.zeros(bins, dtype=self.dtype, device=self.device)
    n = self.numel()
    if n:
        x = self if self.dim() <= 1 and (self.dim() == 0 or self.stride(0) > 0) else _clone_contig(self).view(-1)
        x = x.reshape(-1) if x.dim() == 0 else x
        lo, hi = float(min), float(max)
        block = _block(n)
        with runtime.device_guard(out):
            _hist_kernel[(triton.cdiv(n, block),)](x, x, out, n, x.stride(0), 0, bins,
                                                   lo, hi,
                                                   HIST=True, HAS_W=False, COMPUTE=ew.tl_dtype(self.dtype),
                                                   BLOCK=block)
    return out
