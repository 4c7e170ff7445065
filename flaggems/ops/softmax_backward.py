"""Softmax and log-softmax backward along one dim, from the forward's output y and the incoming gradient g:

    softmax:      dx[m, n] = y[m, n] * (g[m, n] - sum_k g[m, k] * y[m, k])
    log_softmax:  dx[m, n] = g[m, n] - exp(y[m, n]) * sum_k g[m, k]

(``aten::_softmax_backward_data`` / ``aten::_log_softmax_backward_data``, what autograd calls after
``_softmax`` / ``_log_softmax``). Rows are addressed as [m1, n, m2] through each operand's strides, like the
forward (softmax.py); a row that fits one tile takes one pass, longer rows a sum pass and a writing pass. Math in
fp32 (fp64 for fp64), one rounding to the result dtype.

Served when grad, output and ``input_dtype`` agree; torch's CPU kernel has its own rules for mixed dtypes (an fp32
grad with ``input_dtype`` bf16 returns fp32, with fp16 it raises), which stay with torch.
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
def _softmax_bwd_kernel(g_ptr, y_ptr, dx_ptr, M, M2, N, sg1, sg2, sgn, sy1, sy2, syn, sd1, sd2, sdn,
                        ACC: tl.constexpr, ONE_PASS: tl.constexpr, LOG: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    r1 = rows // M2
    r2 = rows % M2
    gb = r1 * sg1 + r2 * sg2
    yb = r1 * sy1 + r2 * sy2
    db = r1 * sd1 + r2 * sd2
    cols0 = tl.arange(0, BLOCK_N).to(tl.int64)
    if ONE_PASS:
        mask = row_mask[:, None] & (cols0 < N)[None, :]
        g = tl.load(g_ptr + gb[:, None] + cols0[None, :] * sgn, mask=mask, other=0).to(ACC)
        y = tl.load(y_ptr + yb[:, None] + cols0[None, :] * syn, mask=mask, other=0).to(ACC)
        if LOG:
            dx = g - tl.exp(y) * tl.sum(g, axis=1)[:, None]
        else:
            dx = y * (g - tl.sum(g * y, axis=1)[:, None])
        tl.store(dx_ptr + db[:, None] + cols0[None, :] * sdn, dx.to(dx_ptr.dtype.element_ty), mask=mask)
    else:
        # the sum is kept per column slot and reduced once at the end, which keeps the error growth close to
        # pairwise summation over long rows
        acc = tl.zeros([BLOCK_M, BLOCK_N], ACC)
        for start in range(0, N, BLOCK_N):
            cols = start + cols0
            mask = row_mask[:, None] & (cols < N)[None, :]
            g = tl.load(g_ptr + gb[:, None] + cols[None, :] * sgn, mask=mask, other=0).to(ACC)
            if LOG:
                acc += g
            else:
                acc += g * tl.load(y_ptr + yb[:, None] + cols[None, :] * syn, mask=mask, other=0).to(ACC)
        s = tl.sum(acc, axis=1)
        for start in range(0, N, BLOCK_N):
            cols = start + cols0
            mask = row_mask[:, None] & (cols < N)[None, :]
            g = tl.load(g_ptr + gb[:, None] + cols[None, :] * sgn, mask=mask, other=0).to(ACC)
            y = tl.load(y_ptr + yb[:, None] + cols[None, :] * syn, mask=mask, other=0).to(ACC)
            if LOG:
                dx = g - tl.exp(y) * s[:, None]
            else:
                dx = y * (g - s[:, None])
            tl.store(dx_ptr + db[:, None] + cols[None, :] * sdn, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _rows(t, dim):
    """(t or a contiguous copy, its [m1, n, m2] layout)."""
    if t.dim() == 0:
        return t, (1, 1, 0, 0, 0)
    lay = rows_layout(t, dim)
    if lay is None:
        t = t.contiguous()
        lay = rows_layout(t, dim)
    return t, lay


def softmax_backward_into(g, y, dim, dx, log=False):
    if dx.numel() == 0:
        return dx
    dim = dim % g.dim() if g.dim() else 0
    N = g.size(dim) if g.dim() else 1
    g, (M, M2, sg1, sg2, sgn) = _rows(g, dim)
    y, (_, _, sy1, sy2, syn) = _rows(y, dim)
    target = dx if dx.dim() == 0 or rows_layout(dx, dim) is not None else torch.empty_like(
        dx, memory_format=torch.contiguous_format)
    _, (_, _, sd1, sd2, sdn) = _rows(target, dim)
    cfg = runtime.config("softmax_backward", _DEFAULT, g.dtype)
    one_pass = N <= cfg["BLOCK_N"] * (4 if runtime.interpreting() else 1)
    block_n = triton.next_power_of_2(N) if one_pass else cfg["BLOCK_N"]
    block_m = cfg["BLOCK_M"]
    if runtime.interpreting():
        block_m = max(1, min(triton.next_power_of_2(M), max(block_m, MAX_TILE // block_n)))
    elif one_pass:
        block_m = max(1, min(block_m, 8192 // block_n))
    acc = torch.float64 if g.dtype is torch.float64 else torch.float32
    with runtime.device_guard(g):
        _softmax_bwd_kernel[(triton.cdiv(M, block_m),)](
            g, y, target, M, M2, N, sg1, sg2, sgn, sy1, sy2, syn, sd1, sd2, sdn,
            ACC=ew.tl_dtype(acc), ONE_PASS=one_pass, LOG=log, BLOCK_M=block_m, BLOCK_N=block_n,
            **{k: v for k, v in cfg.items() if k in ("num_warps", "num_stages")})
    if target is not dx:
        dx.copy_(target)
    return dx


def _supports(grad_output, output, dim, input_dtype, *, grad_input=None, out=None):
    nd = max(grad_output.dim(), 1)
    if not -nd <= dim < nd:
        return "dim out of range (torch raises)"
    if not (grad_output.dtype == output.dtype == input_dtype) or grad_output.dtype not in FLOAT:
        return "mixed dtypes (torch's own rules)"
    if grad_output.shape != output.shape:
        return "shape mismatch (torch raises)"
    o = grad_input if grad_input is not None else out
    if o is not None:
        if o.dtype != grad_output.dtype:
            return "out dtype"
        r = ew.writable(o)
        if r is not None:
            return r
        if ew.same_storage(o, grad_output) or ew.same_storage(o, output):
            return "out overlaps an input"
    return None


def _new(g):
    return torch.empty_like(g, memory_format=torch.contiguous_format)


def _resized(o, g):
    if o.shape != g.shape:
        o.resize_(g.shape)
    return o


@implement("aten::_softmax_backward_data.default", kind="triton", dtypes=FLOAT, supports=_supports)
def softmax_backward_data(grad_output, output, dim, input_dtype):
    return softmax_backward_into(grad_output, output, dim, _new(grad_output))


@implement("aten::_softmax_backward_data.out", kind="triton", dtypes=FLOAT, supports=_supports)
def softmax_backward_data_out(grad_output, output, dim, input_dtype, *, grad_input):
    return softmax_backward_into(grad_output, output, dim, _resized(grad_input, grad_output))


@implement("aten::_log_softmax_backward_data.default", kind="triton", dtypes=FLOAT, supports=_supports)
def log_softmax_backward_data(grad_output, output, dim, input_dtype):
    return softmax_backward_into(grad_output, output, dim, _new(grad_output), log=True)


@implement("aten::_log_softmax_backward_data.out", kind="triton", dtypes=FLOAT, supports=_supports)
def log_softmax_backward_data_out(grad_output, output, dim, input_dtype, *, out):
    return softmax_backward_into(grad_output, output, dim, _resized(out, grad_output), log=True)
