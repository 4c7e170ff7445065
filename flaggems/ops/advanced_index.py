"""Advanced indexing: index.Tensor (x[i, j, mask]) and index_put(_) on the take / put kernels (take_put.py).

out = self[indices]: dims indexed by tensors are replaced by the broadcast index shape (in place when they are
adjacent, else in front, as numpy/torch do); a bool mask stands for its nonzero() coordinates. One index tensor
is used directly (negative indices wrap); several are first folded into one element offset
lin = sum_k wrap(idx_k) * stride_k by ``_lin_kernel`` (an out-of-range component makes lin -1 for good).
index_put: self[indices] = values (broadcast), or += with accumulate=True (atomic adds).
"""
from __future__ import annotations

import math
from typing import List, Optional

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew
from .addressing import MAX_RANK, block_size, geometry, program_coords, restride
from .copy import contiguous_copy
from .elementwise import ALL
from .nonzero import nonzero
from .index_errors import ADVANCED
from .take_put import IDX, Bounds, accum_buffer, launch_check, load_index, put, take_kernel

_BIG = 2 ** 62


@triton.jit
def _lin_kernel(lin_ptr, idx_ptr, rec_ptr, N, size, stride, err_kind, err_dim, d1, d2, d3, d4, d5,
                so0, so1, so2, so3, so4, so5, si0, si1, si2, si3, si4, si5,
                FIRST: tl.constexpr, CHECK: tl.constexpr, BLOCK: tl.constexpr):
    # lin[o] += wrap(idx[o]) * stride; an out-of-range component makes lin -1 for good (and is recorded)
    o, mask, c0, c1, c2, c3, c4, c5 = program_coords(tl.program_id(0), N, d1, d2, d3, d4, d5, BLOCK)
    i, ok = load_index(idx_ptr, rec_ptr, o, mask, c0, c1, c2, c3, c4, c5, si0, si1, si2, si3, si4, si5, size,
                       err_kind, err_dim, True, CHECK)
    lo = c0 * so0 + c1 * so1 + c2 * so2 + c3 * so3 + c4 * so4 + c5 * so5
    if FIRST:
        acc = tl.zeros([BLOCK], tl.int64)
    else:
        acc = tl.load(lin_ptr + lo, mask=mask, other=0)
    r = tl.where(ok & (acc >= 0), acc + i * stride, -1)
    tl.store(lin_ptr + lo, r, mask=mask)


def _index_supports(self, indices, *rest, **kw):
    if self.dtype not in ALL:
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
    __slots__ = ("shape", "self_strides", "idx", "idx_strides", "sdim", "n_bound", "wrap", "bounds", "final", "chk")

    def finish(self):
        """Raise the call's out-of-range error where the check is eager (index_errors.py): torch's message for the
        first index tensor (in indexing order) holding a bad value."""
        if self.chk is not None:
            self.chk.finish(lambda: next(b.error() for b in self.bounds if b.bad() is not None))


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
    zb, za = [0] * len(before), [0] * len(after)
    p.bounds = [Bounds(ADVANCED, t, self.size(d), d, wrap=True) for d, t in zip(idims, tens)]
    p.chk = launch_check(self.device, p.bounds[0])[0]
    # one index tensor is read by the take/put kernel directly, unless the result is empty: torch still
    # validates the indices then, which the fold below does on the device
    if len(tens) == 1 and math.prod(p.shape) > 0:
        t = tens[0]
        d = idims[0]
        p.idx = t
        p.idx_strides = zb + restride(t, bshape) + za
        p.sdim, p.n_bound, p.wrap = self.stride(d), self.size(d), True
        p.final = p.bounds[0]
    else:
        lin = torch.empty(bshape, dtype=torch.int64, device=self.device)
        n = lin.numel()
        for k, (d, t) in enumerate(zip(idims, tens)):
            if n == 0:
                continue
            geo = geometry(bshape, [lin.stride(), restride(t, bshape)])
            assert geo is not None, "supports() keeps the index rank <= 6"
            dims, (so, si) = geo
            block = block_size(n)
            with runtime.device_guard(lin):
                _lin_kernel[(triton.cdiv(n, block),)](
                    lin, t, p.chk.rec if p.chk is not None else lin, n, self.size(d), self.stride(d), ADVANCED, d,
                    *dims, *so, *si, FIRST=k == 0, CHECK=p.chk is not None, BLOCK=block)
        p.idx = lin
        p.idx_strides = zb + list(lin.stride()) + za
        # the fold has checked every component; lin = -1 marks a bad one, masked by the take/put kernel
        p.sdim, p.n_bound, p.wrap, p.final = 1, _BIG, False, None
    return p


@implement("aten::index.Tensor", kind="triton", supports=_index_supports)
def index(self, indices):
    p = _plan(self, indices)
    out = torch.empty(p.shape, dtype=self.dtype, device=self.device)
    n = out.numel()
    if n:
        geo = geometry(p.shape, [out.stride(), p.self_strides, p.idx_strides])
        assert geo is not None, "supports() keeps the result rank <= 6"
        dims, (so, ss, si) = geo
        block = block_size(n)
        check = p.chk is not None and p.final is not None
        with runtime.device_guard(out):
            take_kernel[(triton.cdiv(n, block),)](
                out, self, p.idx, p.chk.rec if check else out, n, p.n_bound, p.sdim, ADVANCED,
                p.final.dim if check else 0, *dims, *so, *ss, *si, WRAP=p.wrap, CHECK=check, BLOCK=block)
    p.finish()
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
    r = ew.writable(self)
    if r is not None:
        return r
    if ew.same_storage(values, self) or any(ew.same_storage(t, self) for t in indices if t is not None):
        return "values/indices overlap self"
    if accumulate and self.dtype == torch.bool:
        return "bool accumulate"
    return None


def _index_put_impl(self, indices, values, accumulate):
    p = _plan(self, indices)
    shape = p.shape
    try:
        vstr = restride(values, shape)
    except RuntimeError:
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(values.shape)} cannot be broadcast to "
                           f"indexing result of shape {list(shape)}") from None
    if values.device != self.device:
        values = values.to(self.device)
    if accumulate:
        buf, finish = accum_buffer(self)
        if list(buf.stride()) != list(self.stride()):
            p = _plan(buf, indices)   # the (contiguous) buffer is addressed with its own strides
    else:
        buf, finish = self, (lambda: self)
    put(buf, values, p.idx, shape, p.self_strides, vstr, p.idx_strides, p.sdim, p.n_bound, p.wrap, accumulate,
        bounds=p.final, chk=p.chk)
    p.finish()
    return finish()


@implement(["aten::index_put_.default"], kind="triton", supports=_index_put_supports)
def index_put_(self, indices, values, accumulate=False):
    return _index_put_impl(self, indices, values, accumulate)


@implement(["aten::_index_put_impl_.default"], kind="triton", supports=_index_put_supports)
def _index_put_impl_(self, indices, values, accumulate=False, unsafe=False):
    return _index_put_impl(self, indices, values, accumulate)


@implement(["aten::index_put.default"], kind="triton",
           supports=lambda self, indices, values, accumulate=False: _index_put_supports(
               self, indices, values, accumulate, functional=True))
def index_put(self, indices, values, accumulate=False):
    return _index_put_impl(contiguous_copy(self), indices, values, accumulate)
