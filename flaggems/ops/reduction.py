"""Sum and mean over dims: out[m] = sum_n x[m, n] (mean: divided by N).

The input is viewed as x[m1, m2, n] through strides (kept dims coalesced into at most two, reduced dims into
one), so reducing the last, the middle or leading dims of a contiguous or permuted tensor needs no copy.
Accumulation is fp32 for half types (fp64 / int64 for those dtypes), in a [BLOCK_M, BLOCK_N] tile summed
once at the end, which keeps the error growth close to pairwise summation.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew

FLOAT = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
INT = frozenset({torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool})
_DEFAULT = {"BLOCK_M": 4, "BLOCK_N": 1024}
# Under the interpreter the cost is per program: keep tiles large.
_MAX_TILE = 16384


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
        if ACC == tl.float32:
            total = tl.div_rn(total, N.to(ACC))
        else:
            total = total / N.to(ACC)
    tl.store(out_ptr + rows, total.to(out_ptr.dtype.element_ty), mask=row_mask)


def _norm_dims(dim, ndim: int) -> List[int]:
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return list(range(ndim))
    dims = [dim] if isinstance(dim, int) else list(dim)
    out = []
    for d in dims:
        wrap = max(ndim, 1)
        if not -wrap <= d < wrap:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-wrap}, {wrap - 1}], but got {d})")
        d = d % wrap
        if d in out:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
        out.append(d)
    return [d for d in out if d < ndim] if ndim else []


def _merge(sizes: Sequence[int], strides: Sequence[int]):
    """Coalesce dims (outer to inner) that are contiguous with each other; drop size-1 dims."""
    pairs = [(s, st) for s, st in zip(sizes, strides) if s != 1]
    merged: list = []
    for s, st in pairs:
        if merged and merged[-1][1] == st * s:
            merged[-1] = (merged[-1][0] * s, st)
        else:
            merged.append((s, st))
    return merged


def rows_layout(t: torch.Tensor, dim: int):
    """(M, M2, s1, s2, sn): t viewed as rows [m1, n, m2] along ``dim`` (outer dims, ``dim``, inner dims), or
    None if the outer or the inner dims do not coalesce into one stride each."""
    outer = _merge(t.shape[:dim], t.stride()[:dim])
    inner = _merge(t.shape[dim + 1:], t.stride()[dim + 1:])
    if len(outer) > 1 or len(inner) > 1:
        return None
    m1, s1 = outer[0] if outer else (1, 0)
    m2, s2 = inner[0] if inner else (1, 0)
    return m1 * m2, m2, s1, s2, t.stride(dim) if t.dim() else 0


def _acc_dtype(dt: torch.dtype) -> torch.dtype:
    if dt.is_floating_point:
        return torch.float64 if dt is torch.float64 else torch.float32
    return torch.int64


def rows_view(x: torch.Tensor, dims: List[int]):
    """(x', M, M2, N, s1, s2, sn): x' addressed as rows m = m1*M2 + m2 of N reduced elements,
    element (m, n) at m1*s1 + m2*s2 + n*sn. Kept dims coalesce into at most two and reduced dims into one;
    any other layout is first copied into a contiguous permuted tensor."""
    kept = [d for d in range(x.dim()) if d not in dims]
    M = 1
    for d in kept:
        M *= x.size(d)
    N = 1
    for d in dims:
        N *= x.size(d)
    km = _merge([x.size(d) for d in kept], [x.stride(d) for d in kept])
    rm = _merge([x.size(d) for d in dims], [x.stride(d) for d in dims])
    if M > 0 and (len(km) > 2 or len(rm) > 1):
        return x.permute(kept + dims).contiguous().view(M, N), M, 1, N, N, 0, 1
    km = [(1, 0)] * (2 - len(km)) + km
    (_, s1), (m2, s2) = km
    return x, M, m2, N, s1, s2, (rm[0][1] if rm else 0)


def reduce(x: torch.Tensor, dims: List[int], keepdim: bool, out_dtype: torch.dtype, mean: bool,
           out: Optional[torch.Tensor] = None) -> torch.Tensor:
    nd = x.dim()
    out_shape = [1 if d in dims else x.size(d) for d in range(nd)] if keepdim else \
        [x.size(d) for d in range(nd) if d not in dims]
    if out is None:
        out = torch.empty(out_shape, dtype=out_dtype, device=x.device)
    x, M, m2, N, s1, s2, sn = rows_view(x, dims)
    if M == 0:
        return out
    acc = _acc_dtype(x.dtype if not mean else out_dtype)
    cfg = runtime.config("reduce", _DEFAULT)
    block_n = max(1, min(cfg["BLOCK_N"], triton.next_power_of_2(max(N, 1))))
    block_m = max(1, min(triton.next_power_of_2(M), max(cfg["BLOCK_M"], _MAX_TILE // block_n)
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
    return torch.int64 if x.dtype in INT else x.dtype


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
    if od not in FLOAT or x.dtype not in FLOAT | INT:
        return f"dtype {od}"  # torch raises for integer mean: let it
    if out is not None and (out.dtype != od or not out.is_contiguous()):
        return "out dtype/layout"
    return None


def _check_out(out, shape):
    if tuple(out.shape) != tuple(shape):
        out.resize_(shape)


@implement("aten::sum.dim_IntList", kind="triton", dtypes=FLOAT | INT, supports=_supports_sum)
def sum_dim(x, dim, keepdim=False, *, dtype=None):
    return reduce(x, _norm_dims(dim, x.dim()), keepdim, _sum_dtype(x, dtype), False)


@implement("aten::sum.default", kind="triton", dtypes=FLOAT | INT,
           supports=lambda x, *, dtype=None: _supports_sum(x, dtype=dtype))
def sum_all(x, *, dtype=None):
    return reduce(x, list(range(x.dim())), False, _sum_dtype(x, dtype), False)


@implement("aten::sum.IntList_out", kind="triton", dtypes=FLOAT | INT, supports=_supports_sum)
def sum_out(x, dim, keepdim=False, *, dtype=None, out):
    dims = _norm_dims(dim, x.dim())
    shape = [1 if d in dims else x.size(d) for d in range(x.dim())] if keepdim else \
        [x.size(d) for d in range(x.dim()) if d not in dims]
    _check_out(out, shape)
    return reduce(x, dims, keepdim, out.dtype, False, out=out)


@implement("aten::mean.dim", kind="triton", dtypes=FLOAT | INT, supports=_supports_mean)
def mean_dim(x, dim, keepdim=False, *, dtype=None):
    return reduce(x, _norm_dims(dim, x.dim()), keepdim, dtype or x.dtype, True)


@implement("aten::mean.default", kind="triton", dtypes=FLOAT | INT,
           supports=lambda x, *, dtype=None: _supports_mean(x, dtype=dtype))
def mean_all(x, *, dtype=None):
    return reduce(x, list(range(x.dim())), False, dtype or x.dtype, True)


@implement("aten::mean.out", kind="triton", dtypes=FLOAT | INT, supports=_supports_mean)
def mean_out(x, dim, keepdim=False, *, dtype=None, out):
    dims = _norm_dims(dim, x.dim())
    shape = [1 if d in dims else x.size(d) for d in range(x.dim())] if keepdim else \
        [x.size(d) for d in range(x.dim()) if d not in dims]
    _check_out(out, shape)
    return reduce(x, dims, keepdim, out.dtype, True, out=out)
