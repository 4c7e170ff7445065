"""Softmax along one dim: y[m, n] = exp(x[m, n] - max_n x[m, :]) / sum_n exp(x[m, n] - max_n x[m, :]).

Rows are addressed as x[m1, n, m2] through strides (outer dims, the softmax dim, inner dims), so any dim of a
contiguous tensor works without a transpose. Rows that fit one tile take one pass; longer rows use an online
max/sum pass followed by a normalising pass. Math in fp32 (fp64 for fp64); ``half_to_float`` writes fp32.

``_safe_softmax`` (what SDPA's math path calls, e.g. on a PrivateUse1 device) is the same softmax except that a
row whose elements are all -inf gives zeros instead of NaN; such rows are exactly those whose sum of exponentials
is 0 (otherwise the row's maximum contributes exp(0) = 1).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew
from .elementwise import FLOAT
from .rows import MAX_TILE, rows_layout

_DEFAULT = {"BLOCK_M": 4, "BLOCK_N": 1024}


@triton.jit
def _softmax_kernel(x_ptr, y_ptr, M, M2, N, sx1, sx2, sxn, sy1, sy2, syn,
                    ACC: tl.constexpr, ONE_PASS: tl.constexpr, LOG: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, SAFE: tl.constexpr = False):
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    xb = (rows // M2) * sx1 + (rows % M2) * sx2
    yb = (rows // M2) * sy1 + (rows % M2) * sy2
    cols0 = tl.arange(0, BLOCK_N).to(tl.int64)
    if ONE_PASS:
        mask = row_mask[:, None] & (cols0 < N)[None, :]
        x = tl.load(x_ptr + xb[:, None] + cols0[None, :] * sxn, mask=mask, other=-float("inf")).to(ACC)
        m = tl.max(x, axis=1)
        # fully masked (padding) rows would give -inf - -inf = nan: shift by 0 there instead
        m = tl.where(m == -float("inf"), 0.0, m)
        e = tl.exp(x - m[:, None])
        s = tl.sum(e, axis=1)
        if LOG:
            y = x - m[:, None] - tl.log(s)[:, None]
        else:
            y = e / s[:, None]
            if SAFE:
                y = tl.where(s[:, None] == 0, 0.0, y)
        tl.store(y_ptr + yb[:, None] + cols0[None, :] * syn, y.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        m = tl.full([BLOCK_M], -float("inf"), ACC)
        s = tl.zeros([BLOCK_M], ACC)
        for start in range(0, N, BLOCK_N):
            cols = start + cols0
            mask = row_mask[:, None] & (cols < N)[None, :]
            x = tl.load(x_ptr + xb[:, None] + cols[None, :] * sxn, mask=mask, other=-float("inf")).to(ACC)
            m_new = tl.maximum(m, tl.max(x, axis=1))
            m_safe = tl.where(m_new == -float("inf"), 0.0, m_new)
            s = s * tl.exp(m - m_safe) + tl.sum(tl.exp(x - m_safe[:, None]), axis=1)
            m = m_new
        m = tl.where(m == -float("inf"), 0.0, m)
        for start in range(0, N, BLOCK_N):
            cols = start + cols0
            mask = row_mask[:, None] & (cols < N)[None, :]
            x = tl.load(x_ptr + xb[:, None] + cols[None, :] * sxn, mask=mask, other=-float("inf")).to(ACC)
            if LOG:
                y = x - m[:, None] - tl.log(s)[:, None]
            else:
                y = tl.exp(x - m[:, None]) / s[:, None]
                if SAFE:
                    y = tl.where(s[:, None] == 0, 0.0, y)
            tl.store(y_ptr + yb[:, None] + cols[None, :] * syn, y.to(y_ptr.dtype.element_ty), mask=mask)



def row_blocks(cfg: dict, M: int, N: int):
    """(one_pass, BLOCK_M, BLOCK_N) of a row kernel over M rows of N: a row fits one block when N is within
    the config's BLOCK_N (4x more under the interpreter, whose cost is per program, not per element); the
    interpreter packs rows up to MAX_TILE elements, a device keeps one-pass tiles within 8192 elements."""
    one_pass = N <= cfg["BLOCK_N"] * (4 if runtime.interpreting() else 1)
    block_n = triton.next_power_of_2(N) if one_pass else cfg["BLOCK_N"]
    block_m = cfg["BLOCK_M"]
    if runtime.interpreting():
        block_m = max(1, min(triton.next_power_of_2(M), max(block_m, MAX_TILE // block_n)))
    elif one_pass:
        block_m = max(1, min(block_m, 8192 // block_n))
    return one_pass, block_m, block_n


def softmax_into(x: torch.Tensor, dim: int, y: torch.Tensor, log: bool = False, safe: bool = False) -> torch.Tensor:
    if x.numel() == 0:
        return y
    dim = dim % max(x.dim(), 1) if x.dim() else 0
    N = x.size(dim) if x.dim() else 1
    xr = rows_layout(x, dim) if x.dim() else (1, 1, 0, 0, 0)
    if xr is None:
        x = x.contiguous()
        xr = rows_layout(x, dim)
    yt = y if (y.dim() == 0 or rows_layout(y, dim) is not None) else torch.empty_like(y, memory_format=torch.contiguous_format)
    yr = rows_layout(yt, dim) if yt.dim() else (1, 1, 0, 0, 0)
    M, M2, sx1, sx2, sxn = xr
    _, _, sy1, sy2, syn = yr
    acc = torch.float64 if x.dtype is torch.float64 else torch.float32
    cfg = runtime.config("softmax", _DEFAULT)
    one_pass, block_m, block_n = row_blocks(cfg, M, N)
    grid = (triton.cdiv(M, block_m),)
    with runtime.device_guard(x):
        _softmax_kernel[grid](x, yt, M, M2, N, sx1, sx2, sxn, sy1, sy2, syn,
                              ACC=ew.tl_dtype(acc), ONE_PASS=one_pass, LOG=log,
                              BLOCK_M=block_m, BLOCK_N=block_n, SAFE=safe,
                              **{k: v for k, v in cfg.items() if k in ("num_warps", "num_stages")})
    if yt is not y:
        y.copy_(yt)
    return y


def _out_dtype(x, half_to_float):
    return torch.float32 if (half_to_float and x.dtype in (torch.float16, torch.bfloat16)) else x.dtype


def _supports(x, dim, half_to_float, *, out=None):
    nd = max(x.dim(), 1)
    if not -nd <= dim < nd:
        return "dim out of range (torch raises IndexError)"
    if half_to_float and x.dtype not in (torch.float16, torch.bfloat16):
        return "half_to_float on a non-half input"  # torch raises: let it
    if out is not None and (out.dtype != _out_dtype(x, half_to_float) or tuple(out.shape) != tuple(x.shape)):
        return "out dtype/shape"
    return None


@implement("aten::_softmax.default", kind="triton", dtypes=FLOAT, supports=_supports)
def softmax(x, dim, half_to_float):
    y = torch.empty_like(x, dtype=_out_dtype(x, half_to_float), memory_format=torch.contiguous_format)
    return softmax_into(x, dim, y)


@implement("aten::_softmax.out", kind="triton", dtypes=FLOAT, supports=_supports)
def softmax_out(x, dim, half_to_float, *, out):
    return softmax_into(x, dim, out)


@implement("aten::_log_softmax.default", kind="triton", dtypes=FLOAT, supports=_supports)
def log_softmax(x, dim, half_to_float):
    y = torch.empty_like(x, dtype=_out_dtype(x, half_to_float), memory_format=torch.contiguous_format)
    return softmax_into(x, dim, y, log=True)


@implement("aten::_log_softmax.out", kind="triton", dtypes=FLOAT, supports=_supports)
def log_softmax_out(x, dim, half_to_float, *, out):
    return softmax_into(x, dim, out, log=True)


def _safe_supports(x, dim, dtype=None):
    nd = max(x.dim(), 1)
    if not -nd <= dim < nd:
        return "dim out of range (torch raises IndexError)"
    if dtype is not None and dtype not in FLOAT:
        return f"dtype {dtype}"
    return None


@implement("aten::_safe_softmax.default", kind="triton", dtypes=FLOAT, supports=_safe_supports)
def safe_softmax(x, dim, dtype=None):
    # torch: softmax(x, dim, dtype=dtype), i.e. the input converted to dtype first
    if dtype is not None and dtype != x.dtype:
        x = x.to(dtype)
    y = torch.empty_like(x, memory_format=torch.contiguous_format)
    return softmax_into(x, dim, y, safe=True)
