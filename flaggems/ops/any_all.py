"""Boolean reductions over dims: any(x)[m] = OR_n (x[m, n] != 0), all(x)[m] = AND_n (x[m, n] != 0).

Rows are read as x[m1, m2, n] through strides (rows.py); an empty reduction gives the identity (False / True);
uint8 input gives uint8 like torch.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from .elementwise import ALL
from .rows import dims_or_reason, norm_dims, out_shape, rows_view, tile


@triton.jit
def _bool_kernel(x_ptr, o_ptr, M, M2, N, s1, s2, sn, IS_ANY: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    base = (rows // M2) * s1 + (rows % M2) * s2
    acc = tl.zeros([BLOCK_M], tl.int32)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N).to(tl.int64)
        mask = row_mask[:, None] & (cols < N)[None, :]
        x = tl.load(x_ptr + base[:, None] + cols[None, :] * sn, mask=mask, other=0 if IS_ANY else 1)
        if IS_ANY:
            acc = tl.maximum(acc, tl.max((x != 0).to(tl.int32), axis=1))
        else:
            acc = acc + tl.sum((x == 0).to(tl.int32), axis=1)
    if IS_ANY:
        res = acc > 0
    else:
        res = acc == 0
    tl.store(o_ptr + rows, res.to(o_ptr.dtype.element_ty), mask=row_mask)


def boolean(x, dims, keepdim, is_any, out=None):
    shape = out_shape(x, dims, keepdim)
    res = out if out is not None else torch.empty(shape, dtype=torch.uint8 if x.dtype is torch.uint8 else torch.bool,
                                                  device=x.device)
    xg, M, M2, N, s1, s2, sn = rows_view(x, dims)
    if M == 0:
        return res
    bm, bn = tile(M, N)
    with runtime.device_guard(x):
        _bool_kernel[(triton.cdiv(M, bm),)](xg, res, M, M2, N, s1, s2, sn, IS_ANY=is_any, BLOCK_M=bm, BLOCK_N=bn)
    return res


def _bool_supports(x, *args, **kw):
    return None if x.dtype in ALL else f"dtype {x.dtype}"


@implement("aten::any.default", kind="triton", dtypes=ALL, supports=_bool_supports)
def any_all(x):
    return boolean(x, list(range(x.dim())), False, True)


@implement("aten::all.default", kind="triton", dtypes=ALL, supports=_bool_supports)
def all_all(x):
    return boolean(x, list(range(x.dim())), False, False)


@implement(["aten::any.dim", "aten::any.dims"], kind="triton", dtypes=ALL,
           supports=lambda x, dim=None, keepdim=False: None if dims_or_reason(x, dim)[1] is None else "invalid dim")
def any_dim(x, dim=None, keepdim=False):
    return boolean(x, norm_dims(dim, x.dim()), keepdim, True)


@implement(["aten::all.dim", "aten::all.dims"], kind="triton", dtypes=ALL,
           supports=lambda x, dim=None, keepdim=False: None if dims_or_reason(x, dim)[1] is None else "invalid dim")
def all_dim(x, dim=None, keepdim=False):
    return boolean(x, norm_dims(dim, x.dim()), keepdim, False)
