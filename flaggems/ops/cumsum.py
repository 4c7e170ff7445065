"""cumsum: y[m, n] = sum_{k <= n} x[m, k] along one dim, rows scanned block by block with a carried prefix.

Rows are read and written as x[m1, m2, n] through strides (rows.rows_layout); the input is cast to the
result dtype first and accumulated in int64 (integers) or the float type torch's kernel uses on that device.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew
from .copy import contiguous_copy, copy_into
from .elementwise import ALL, FLOAT, INT
from .rows import rows_layout


# TILE = BLOCK_M * BLOCK_N elements per program. 64-bit accumulators (int64 / fp64) hold two registers per
# element: 4096 of them in 4 warps spilled 688 B on sm_90 (AOT gate), so they get twice the warps (16 per thread).
_DEFAULT = {"TILE": 4096, "BLOCK_N": 1024, "num_warps": 4}
_WIDE = {"TILE": 4096, "BLOCK_N": 1024, "num_warps": 8}


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


def _wrap_dim(dim, ndim, kind=IndexError):
    w = max(ndim, 1)
    if not -w <= dim < w:
        raise kind(f"Dimension out of range (expected to be in range of [{-w}, {w - 1}], but got {dim})")
    return dim % w


def _cumsum_dtype(self, dtype):
    if dtype is not None:
        return dtype
    return torch.int64 if self.dtype in INT or self.dtype == torch.bool else self.dtype


def _cumsum_supports(self, dim, *, dtype=None, out=None):
    if self.dtype not in ALL:
        return f"dtype {self.dtype}"
    od = _cumsum_dtype(self, dtype)
    if od not in FLOAT | INT:
        return f"result dtype {od}"
    if not -max(self.dim(), 1) <= dim < max(self.dim(), 1):
        return "dim out of range (torch raises)"
    if out is not None:
        if out.dtype != od:
            return "out dtype"
        if ew.same_storage(out, self) and not (out.data_ptr() == self.data_ptr() and out.stride() == self.stride()):
            return "out overlaps self"
        r = ew.writable(out)
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
        x = contiguous_copy(x)
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
        # torch's CPU kernel accumulates fp32 in double, its GPU kernels in float: follow the torch of the device
        # the kernels run on (asked of the runtime, not of the tensor: the AOT gate plans a GPU on CPU tensors)
        acc = torch.float64 if od == torch.float64 or (od == torch.float32 and runtime.interpreting()) \
            else torch.float32
    else:
        acc = torch.int64
    if runtime.interpreting():
        # the interpreter pays per program: large tiles
        cfg = {"TILE": 16384, "BLOCK_N": 4096}
    else:
        cfg = runtime.launch_config("cumsum", acc, _WIDE if acc.itemsize == 8 else _DEFAULT)
    block_n = max(16, min(runtime.next_pow2(N), cfg["BLOCK_N"]))
    block_m = max(1, min(runtime.next_pow2(M), cfg["TILE"] // block_n))
    with runtime.device_guard(x):
        _cumsum_kernel[(triton.cdiv(M, block_m),)](x, target, M, M2, N, sx1, sx2, sxn, sy1, sy2, syn,
                                                   ACC=ew.tl_dtype(acc), BLOCK_M=block_m, BLOCK_N=block_n,
                                                   **{k: v for k, v in cfg.items() if k in ("num_warps",)})
    if target is not y:
        copy_into(y, target)
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
