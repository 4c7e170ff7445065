"""gather and scatter (src / value / reduce='add'), scatter_add: take / put along one dim (take_put.py).

gather:      out[i][j][k] = self[index[i][j][k]][j][k]            (dim = 0; likewise for other dims)
scatter:     out = self; out[index[i][j][k]][j][k] = src[i][j][k]  (or a scalar value)
scatter_add / scatter(reduce='add'): ... += src[i][j][k]           (atomic adds, see take_put.py)
scatter(reduce='multiply'):          ... *= src[i][j][k]           (compare-and-swap loops, see put_multiply.py)
"""
from __future__ import annotations

import torch

from ..registry import implement
from . import elementwise as ew
from .addressing import MAX_RANK
from .elementwise import ALL
from .index_errors import ALONG_DIM
from .put_multiply import put_multiply
from .take_put import Bounds, accum_buffer, fresh, put, take, target_reason


def _along_dim_reason(self, dim, index):
    """Why gather/scatter cannot take (self, dim, index) (None if they can): the shared shape/dtype rules."""
    if self.dtype not in ALL:
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
        if ew.same_storage(out, self) or ew.same_storage(out, index):
            return "out overlaps an input"
    return None


def _gather_into(out, self, dim, index):
    d = dim % self.dim()
    ss = list(self.stride())
    sdim = ss[d]
    ss[d] = 0
    return take(out, self, index, ss, index.stride(), sdim, self.size(d), False,
                Bounds(ALONG_DIM, index, self.size(d), d))


@implement("aten::gather.default", kind="triton", supports=_gather_supports)
def gather(self, dim, index, sparse_grad=False):
    out = torch.empty(index.shape, dtype=self.dtype, device=self.device)
    return _gather_into(out, self, dim, index)


@implement("aten::gather.out", kind="triton", supports=_gather_supports)
def gather_out(self, dim, index, sparse_grad=False, *, out):
    if out.shape != index.shape:
        out.resize_(index.shape)
    return _gather_into(out, self, dim, index)


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
    return None if reduce in (None, "add", "multiply") else f"reduce={reduce}"


def _scatter_into(dst, dim, index, src, accumulate):
    """Scatter src into dst along dim: store (accumulate False), add (True or "add") or multiply ("multiply")."""
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
    err = Bounds(ALONG_DIM, index, dst.size(d), d)
    if accumulate == "multiply":
        buf, finish = accum_buffer(dst)
        if buf is not dst:
            sd = list(buf.stride())
            ddim = sd[d]
            sd[d] = 0
        put_multiply(buf, src, index, shape, sd, vstr, index.stride(), ddim, dst.size(d), err)
        return finish()
    if accumulate:
        buf, finish = accum_buffer(dst)
        if buf is not dst:
            sd = list(buf.stride())
            ddim = sd[d]
            sd[d] = 0
        put(buf, src, index, shape, sd, vstr, index.stride(), ddim, dst.size(d), False, True, bounds=err)
        return finish()
    return put(dst, src, index, shape, sd, vstr, index.stride(), ddim, dst.size(d), False, False, bounds=err)


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
            if red is not None and self.dtype == torch.bool:
                return f"bool {red}"
            if red == "multiply" and self.numel() == 0:
                return "empty self (the multiply put addresses its first element)"
        target = self if inplace else kw.get("out")
        if target is not None:
            r = target_reason(target, self, index, src, "src")
            if r is not None:
                return r
            if with_out and ew.same_storage(target, self) and target.data_ptr() != self.data_ptr():
                return "out overlaps self"
        return None
    return supports


@implement("aten::scatter.src", kind="triton", supports=_sc_supports())
def scatter_src(self, dim, index, src):
    return _scatter_into(fresh(self), dim, index, src, False)


@implement("aten::scatter.value", kind="triton", supports=_sc_supports())
def scatter_value(self, dim, index, value):
    return _scatter_into(fresh(self), dim, index, value, False)


@implement("aten::scatter.reduce", kind="triton", supports=_sc_supports(has_reduce=True))
def scatter_reduce_src(self, dim, index, src, *, reduce):
    return _scatter_into(fresh(self), dim, index, src, reduce)


@implement("aten::scatter.value_reduce", kind="triton", supports=_sc_supports(has_reduce=True))
def scatter_value_reduce(self, dim, index, value, *, reduce):
    return _scatter_into(fresh(self), dim, index, value, reduce)


@implement("aten::scatter_.src", kind="triton", supports=_sc_supports(inplace=True))
def scatter__src(self, dim, index, src):
    return _scatter_into(self, dim, index, src, False)


@implement("aten::scatter_.value", kind="triton", supports=_sc_supports(inplace=True))
def scatter__value(self, dim, index, value):
    return _scatter_into(self, dim, index, value, False)


@implement("aten::scatter_.reduce", kind="triton", supports=_sc_supports(inplace=True, has_reduce=True))
def scatter__reduce(self, dim, index, src, *, reduce):
    return _scatter_into(self, dim, index, src, reduce)


@implement("aten::scatter_.value_reduce", kind="triton",
           supports=_sc_supports(inplace=True, has_reduce=True))
def scatter__value_reduce(self, dim, index, value, *, reduce):
    return _scatter_into(self, dim, index, value, reduce)


@implement("aten::scatter.src_out", kind="triton", supports=_sc_supports(with_out=True))
def scatter_src_out(self, dim, index, src, *, out):
    return _scatter_into(fresh(self, out), dim, index, src, False)


@implement("aten::scatter.value_out", kind="triton", supports=_sc_supports(with_out=True))
def scatter_value_out(self, dim, index, value, *, out):
    return _scatter_into(fresh(self, out), dim, index, value, False)


def _sa_supports(self, dim, index, src, *, out=None):
    r = _sc_supports(with_out=out is not None)(self, dim, index, src, out=out)
    if r is None and self.dtype == torch.bool:
        return "bool add"
    return r


@implement("aten::scatter_add.default", kind="triton", supports=_sa_supports)
def scatter_add(self, dim, index, src):
    return _scatter_into(fresh(self), dim, index, src, True)


@implement("aten::scatter_add.out", kind="triton", supports=_sa_supports)
def scatter_add_out(self, dim, index, src, *, out):
    return _scatter_into(fresh(self, out), dim, index, src, True)


@implement("aten::scatter_add_.default", kind="triton",
           supports=lambda self, dim, index, src: _sa_supports(self, dim, index, src) or
           _sc_supports(inplace=True)(self, dim, index, src))
def scatter_add_(self, dim, index, src):
    return _scatter_into(self, dim, index, src, True)

