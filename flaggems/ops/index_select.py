"""index_select, embedding and index_add: take / put along one dim with a 1-D index (take_put.py).

index_select: out[..., i, ...] = self[..., index[i], ...]        (along dim)
embedding:    out[..., :] = weight[indices[...], :]
index_add:    out = self; out[..., index[i], ...] += alpha * source[..., i, ...]   (atomic adds)
"""
from __future__ import annotations

import torch

from ..registry import implement
from . import elementwise as ew
from .addressing import MAX_RANK
from .elementwise import ALL
from .index_errors import ALONG_DIM, SELECT
from .take_put import IDX, Bounds, accum_buffer, fresh, put, take, target_reason


def _index_select_supports(self, dim, index, *, out=None):
    if self.dtype not in ALL:
        return f"dtype {self.dtype}"
    if index.dtype not in IDX or index.dim() > 1:
        return "index dtype/rank (torch raises)"
    if not -max(self.dim(), 1) <= dim < max(self.dim(), 1):
        return "dim out of range"
    if self.dim() == 0:
        return "0-dim self"
    if self.numel() == 0:
        return "empty self (torch's own checks: RuntimeError for any index into a 0-row table)"
    if self.dim() > MAX_RANK:
        return f"rank > {MAX_RANK}"
    if out is not None and (out.dtype != self.dtype or ew.same_storage(out, self) or ew.same_storage(out, index)):
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
    return take(out, self, index, ss, si, sdim, self.size(d), False,
                Bounds(SELECT, index, self.size(d), d))


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
    if weight.dtype not in ALL or weight.dim() != 2:
        return "weight dtype/rank"
    if indices.dtype not in IDX:
        return "indices dtype (torch raises)"
    if indices.dim() + 1 > MAX_RANK:
        return f"rank > {MAX_RANK}"
    if weight.numel() == 0:
        return "empty weight (torch's own checks: RuntimeError for any index into a 0-row table)"
    return None


@implement("aten::embedding.default", kind="triton", supports=_embedding_supports)
def embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    # padding_idx and scale_grad_by_freq only change the backward
    shape = list(indices.shape) + [weight.size(1)]
    out = torch.empty(shape, dtype=weight.dtype, device=weight.device)
    ss = [0] * indices.dim() + [weight.stride(1)]
    si = list(indices.stride()) + [0]
    return take(out, weight, indices, ss, si, weight.stride(0), weight.size(0), False,
                Bounds(SELECT, indices, weight.size(0), 0))


def _index_add_supports(self, dim, index, source, *, alpha=1, out=None, inplace=False):
    if self.dtype not in ALL or self.dtype == torch.bool:
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
    if self.numel() == 0:
        return "empty self (torch returns it for a multi-dim self without checking the index)"
    if nd > MAX_RANK:
        return f"rank > {MAX_RANK}"
    d = dim % nd
    if source.dim() != nd and not (source.dim() == 0 and nd == 1) and not (nd == 0):
        return "source rank (torch raises)"
    if source.dim() == nd and (any(source.size(k) != self.size(k) for k in range(nd) if k != d)
                               or source.size(d) != index.numel()):
        return "source shape (torch raises)"
    target = self if inplace else out
    return None if target is None else target_reason(target, self, index, source, "source")


def _index_add_into(dst, dim, index, source, alpha):
    d = dim % dst.dim()
    shape = list(dst.shape)
    shape[d] = index.numel()
    if source.dim() == 0:
        source = source.reshape(1)
    buf, finish = accum_buffer(dst)
    sd = list(buf.stride())
    ddim = sd[d]
    sd[d] = 0
    si = [0] * len(shape)
    si[d] = index.stride(0) if index.dim() else 0
    put(buf, source, index, shape, sd, list(source.stride()), si, ddim, dst.size(d), False, True, alpha=alpha,
        bounds=Bounds(ALONG_DIM, index, dst.size(d), d))
    return finish()


@implement("aten::index_add_.default", kind="triton",
           supports=lambda self, dim, index, source, *, alpha=1: _index_add_supports(
               self, dim, index, source, alpha=alpha, inplace=True))
def index_add_(self, dim, index, source, *, alpha=1):
    return _index_add_into(self, dim, index, source, alpha)


@implement("aten::index_add.default", kind="triton", supports=_index_add_supports)
def index_add(self, dim, index, source, *, alpha=1):
    return _index_add_into(fresh(self), dim, index, source, alpha)


@implement("aten::index_add.out", kind="triton", supports=_index_add_supports)
def index_add_out(self, dim, index, source, *, alpha=1, out):
    return _index_add_into(fresh(self, out), dim, index, source, alpha)

