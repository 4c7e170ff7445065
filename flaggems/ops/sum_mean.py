"""Sum and mean over dims: out[m] = sum_n x[m, n] (mean: divided by N).

The input is viewed as x[m1, m2, n] through strides (kept dims coalesced into at most two, reduced dims into
one), so reducing the last, the middle or leading dims of a contiguous or permuted tensor needs no copy.
Accumulation is fp32 for half types (fp64 / int64 for those dtypes), in a [BLOCK_M, BLOCK_N] tile summed
once at the end, which keeps the error growth close to pairwise summation.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew
from .elementwise import ALL, BOOL, FLOAT, INT
from .rows import MAX_TILE, norm_dims, out_shape, rows_view

_DEFAULT = {"BLOCK_M": 4, "BLOCK_N": 1024}


@triton.jit
def _reduce_kernel(x_ptr, out_ptr, M, M2, N, s1, s2, sn,
                   ACC: tl.constexpr, MEAN: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    base = (rows // M2) * s1 + (rows % M2) * s2
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N).to(tl.int64)
        mask = row_mask[:, None] & (cols < N)[None, :]
        x = tl.load(x_ptr + base[:, None] + cols[None, :] * sn, mask=mask, other=0)
        acc += x.to(ACC)
    total = tl.sum(acc, axis=1)
    if MEAN:
        # N in ACC by promotion, not N.to(ACC): a GPU Triton passes N == 1 as a compile-time int (rule 1)
        n = tl.zeros([BLOCK_M], ACC) + N
        if ACC == tl.float32:
            total = tl.div_rn(total, n)
        else:
            total = total / n
    tl.store(out_ptr + rows, total.to(out_ptr.dtype.element_ty), mask=row_mask)


def _acc_dtype(dt: torch.dtype) -> torch.dtype:
    if dt.is_floating_point:
        return torch.float64 if dt is torch.float64 else torch.float32
    return torch.int64


def reduce(x: torch.Tensor, dims: List[int], keepdim: bool, out_dtype: torch.dtype, mean: bool,
           out: Optional[torch.Tensor] = None) -> torch.Tensor:
    if out is None:
        out = torch.empty(out_shape(x, dims, keepdim), dtype=out_dtype, device=x.device)
    x, M, m2, N, s1, s2, sn = rows_view(x, dims)
    if M == 0:
        return out
    # torch converts the input to the result dtype first: sum(fp32, dtype=fp64) accumulates in fp64
    acc = _acc_dtype(out_dtype)
    cfg = runtime.config("reduce", _DEFAULT)
    block_n = max(1, min(cfg["BLOCK_N"], runtime.next_pow2(N)))
    block_m = max(1, min(runtime.next_pow2(M), max(cfg["BLOCK_M"], MAX_TILE // block_n)
                         if runtime.interpreting() else cfg["BLOCK_M"]))
    grid = (triton.cdiv(M, block_m),)
    target = out if out.is_contiguous() else torch.empty(out.shape, dtype=out.dtype, device=out.device)
    with runtime.device_guard(x):
        _reduce_kernel[grid](x, target, M, m2, N, s1, s2, sn, ACC=ew.tl_dtype(acc), MEAN=mean,
                             BLOCK_M=block_m, BLOCK_N=block_n,
                             **{k: v for k, v in cfg.items() if k in ("num_warps", "num_stages")})
    if target is not out:
        out.copy_(target)
    return out


def _sum_dtype(x, dtype):
    if dtype is not None:
        return dtype
    return torch.int64 if x.dtype in INT | BOOL else x.dtype


def _supports_sum(x, dim=None, keepdim=False, *, dtype=None, out=None):
    od = _sum_dtype(x, dtype)
    if od not in FLOAT and od not in (torch.int64, torch.int32):
        return f"output dtype {od}"
    if x.dtype in FLOAT and od not in FLOAT:
        return "float input to integer output"
    if out is not None and (out.dtype != od or not out.is_contiguous()):
        return "out dtype/layout"
    return None


def _supports_mean(x, dim=None, keepdim=False, *, dtype=None, out=None):
    od = dtype or x.dtype
    if od not in FLOAT or x.dtype not in ALL:
        return f"dtype {od}"  # torch raises for integer mean: let it
    if out is not None and (out.dtype != od or not out.is_contiguous()):
        return "out dtype/layout"
    return None


def _check_out(out, shape):
    if tuple(out.shape) != tuple(shape):
        out.resize_(shape)


@implement("aten::sum.dim_IntList", kind="triton", dtypes=ALL, supports=_supports_sum)
def sum_dim(x, dim, keepdim=False, *, dtype=None):
    return reduce(x, norm_dims(dim, x.dim()), keepdim, _sum_dtype(x, dtype), False)


@implement("aten::sum.default", kind="triton", dtypes=ALL,
           supports=lambda x, *, dtype=None: _supports_sum(x, dtype=dtype))
def sum_all(x, *, dtype=None):
    return reduce(x, list(range(x.dim())), False, _sum_dtype(x, dtype), False)


@implement("aten::sum.IntList_out", kind="triton", dtypes=ALL, supports=_supports_sum)
def sum_out(x, dim, keepdim=False, *, dtype=None, out):
    dims = norm_dims(dim, x.dim())
    _check_out(out, out_shape(x, dims, keepdim))
    return reduce(x, dims, keepdim, out.dtype, False, out=out)


@implement("aten::sum.out", kind="triton", dtypes=ALL,
           supports=lambda x, *, dtype=None, out: _supports_sum(x, dtype=dtype, out=out))
def sum_all_out(x, *, dtype=None, out):
    # torch.sum(x, out=o) with no dim: the full reduction into a 0-dim out (resized like torch does)
    dims = list(range(x.dim()))
    _check_out(out, out_shape(x, dims, False))
    return reduce(x, dims, False, out.dtype, False, out=out)


@implement("aten::mean.dim", kind="triton", dtypes=ALL, supports=_supports_mean)
def mean_dim(x, dim, keepdim=False, *, dtype=None):
    return reduce(x, norm_dims(dim, x.dim()), keepdim, dtype or x.dtype, True)


@implement("aten::mean.default", kind="triton", dtypes=ALL,
           supports=lambda x, *, dtype=None: _supports_mean(x, dtype=dtype))
def mean_all(x, *, dtype=None):
    return reduce(x, list(range(x.dim())), False, dtype or x.dtype, True)


@implement("aten::mean.out", kind="triton", dtypes=ALL, supports=_supports_mean)
def mean_out(x, dim, keepdim=False, *, dtype=None, out):
    dims = norm_dims(dim, x.dim())
    _check_out(out, out_shape(x, dims, keepdim))
    return reduce(x, dims, keepdim, out.dtype, True, out=out)
