"""Max/min-type reductions over dims.

amax/amin and max/min (all):   out[m] = max_n x[m, n] (NaN if any NaN in the row, like torch)
max.dim/min.dim, argmax/argmin: value and index of the first extreme element (first NaN wins)
aminmax:                        (amin, amax)

Rows are read as x[m1, m2, n] through strides (rows.py); empty reductions raise like torch.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew
from .elementwise import ALL, FLOAT, INT
from .rows import dims_or_reason, norm_dims, out_shape, rows_view, tile


@triton.jit
def _extreme_kernel(x_ptr, v_ptr, i_ptr, M, M2, N, s1, s2, sn,
                    IS_MAX: tl.constexpr, WITH_INDEX: tl.constexpr, IS_FLOAT: tl.constexpr, ACC: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    base = (rows // M2) * s1 + (rows % M2) * s2
    cols0 = tl.arange(0, BLOCK_N).to(tl.int64)
    if IS_FLOAT:
        worst = -float("inf") if IS_MAX else float("inf")
    else:
        worst = -9223372036854775807 - 1 if IS_MAX else 9223372036854775807
    best_v = tl.full([BLOCK_M], worst, ACC)
    best_i = tl.full([BLOCK_M], N, tl.int64)
    found_nan = tl.zeros([BLOCK_M], tl.int1)
    for start in range(0, N, BLOCK_N):
        cols = start + cols0
        mask = row_mask[:, None] & (cols < N)[None, :]
        x = tl.load(x_ptr + base[:, None] + cols[None, :] * sn, mask=mask, other=0).to(ACC)
        if IS_FLOAT:
            isnan = (x != x) & mask
        else:
            isnan = mask & (x != x)
        valid = mask & ~isnan
        if IS_MAX:
            tile_v = tl.max(tl.where(valid, x, worst), axis=1)
        else:
            tile_v = tl.min(tl.where(valid, x, worst), axis=1)
        tile_has = tl.max(valid.to(tl.int32), axis=1) > 0
        # the first column holding the tile's extreme; blocks run left to right, so only a strictly better
        # value replaces the running best: ties keep the lowest index like torch
        tile_i = tl.min(tl.where(valid & (x == tile_v[:, None]), cols[None, :], N), axis=1)
        if IS_MAX:
            better = (tile_v > best_v) | (best_i == N)
        else:
            better = (tile_v < best_v) | (best_i == N)
        take = tile_has & better & ~found_nan
        best_v = tl.where(take, tile_v, best_v)
        best_i = tl.where(take, tile_i, best_i)
        tile_nan = tl.max(isnan.to(tl.int32), axis=1) > 0
        nan_i = tl.min(tl.where(isnan, cols[None, :], N), axis=1)
        take_nan = tile_nan & ~found_nan
        best_i = tl.where(take_nan, nan_i, best_i)
        if IS_FLOAT:
            best_v = tl.where(take_nan, float("nan"), best_v)
        found_nan = found_nan | tile_nan
    tl.store(v_ptr + rows, best_v.to(v_ptr.dtype.element_ty), mask=row_mask)
    if WITH_INDEX:
        tl.store(i_ptr + rows, best_i, mask=row_mask)


def extreme(x, dims, keepdim, is_max, with_index, values_dtype=None):
    shape = out_shape(x, dims, keepdim)
    values = torch.empty(shape, dtype=values_dtype or x.dtype, device=x.device)
    idx = torch.empty(shape, dtype=torch.int64, device=x.device) if with_index else values
    xg, M, M2, N, s1, s2, sn = rows_view(x, dims)
    if M == 0:
        return values, idx
    acc = torch.float64 if x.dtype is torch.float64 else torch.float32 if x.dtype.is_floating_point else \
        torch.int64 if x.dtype is not torch.bool else torch.int32
    bm, bn = tile(M, N)
    with runtime.device_guard(x):
        _extreme_kernel[(triton.cdiv(M, bm),)](xg, values, idx, M, M2, N, s1, s2, sn, IS_MAX=is_max,
                                               WITH_INDEX=with_index, IS_FLOAT=x.dtype.is_floating_point,
                                               ACC=ew.tl_dtype(acc), BLOCK_M=bm, BLOCK_N=bn)
    return values, idx


def _nonempty(x, dims):
    for d in dims:
        if x.size(d) == 0:
            return "empty reduction"  # torch raises: let it
    if x.numel() == 0 and not dims:
        return "empty reduction"
    return None


def _amax_supports(x, dim=(), keepdim=False, *, out=None):
    dims, r = dims_or_reason(x, dim)
    if r:
        return "invalid dim"
    if out is not None:
        return "out variant"
    return _nonempty(x, dims)


@implement("aten::amax.default", kind="triton", dtypes=ALL, supports=_amax_supports)
def amax(x, dim=(), keepdim=False):
    return extreme(x, norm_dims(dim, x.dim()), keepdim, True, False)[0]


@implement("aten::amin.default", kind="triton", dtypes=ALL, supports=_amax_supports)
def amin(x, dim=(), keepdim=False):
    return extreme(x, norm_dims(dim, x.dim()), keepdim, False, False)[0]


def _all_supports(x):
    return _nonempty(x, list(range(x.dim())))


@implement("aten::max.default", kind="triton", dtypes=ALL, supports=_all_supports)
def max_all(x):
    return extreme(x, list(range(x.dim())), False, True, False)[0]


@implement("aten::min.default", kind="triton", dtypes=ALL, supports=_all_supports)
def min_all(x):
    return extreme(x, list(range(x.dim())), False, False, False)[0]


def _dim_supports(x, dim, keepdim=False):
    dims, r = dims_or_reason(x, dim)
    if r:
        return "invalid dim"
    return _nonempty(x, dims)


@implement("aten::max.dim", kind="triton", dtypes=ALL, supports=_dim_supports)
def max_dim(x, dim, keepdim=False):
    return extreme(x, norm_dims(dim, x.dim()), keepdim, True, True)


@implement("aten::min.dim", kind="triton", dtypes=ALL, supports=_dim_supports)
def min_dim(x, dim, keepdim=False):
    return extreme(x, norm_dims(dim, x.dim()), keepdim, False, True)


def _arg_supports(x, dim=None, keepdim=False):
    if x.dtype is torch.bool:
        return "dtype bool"  # torch raises for bool argmax
    if dim is None:
        return None if x.numel() else "empty reduction"
    return _dim_supports(x, dim, keepdim)


def _arg(x, dim, keepdim, is_max):
    if dim is None:
        flat = x.reshape(-1)
        idx = extreme(flat, [0], False, is_max, True)[1]
        return idx.view([1] * x.dim()) if keepdim else idx
    return extreme(x, norm_dims(dim, x.dim()), keepdim, is_max, True)[1]


@implement("aten::argmax.default", kind="triton", dtypes=FLOAT | INT, supports=_arg_supports)
def argmax(x, dim=None, keepdim=False):
    return _arg(x, dim, keepdim, True)


@implement("aten::argmin.default", kind="triton", dtypes=FLOAT | INT, supports=_arg_supports)
def argmin(x, dim=None, keepdim=False):
    return _arg(x, dim, keepdim, False)


@implement("aten::aminmax.default", kind="triton", dtypes=ALL,
           supports=lambda x, *, dim=None, keepdim=False: _nonempty(
               x, list(range(x.dim())) if dim is None else norm_dims(dim, x.dim())))
def aminmax(x, *, dim=None, keepdim=False):
    dims = list(range(x.dim())) if dim is None else norm_dims(dim, x.dim())
    lo = extreme(x, dims, keepdim if dim is not None else False, False, False)[0]
    hi = extreme(x, dims, keepdim if dim is not None else False, True, False)[0]
    return lo, hi

