"""Comparison ATen ops on the pointwise engine (families declared with elementwise_family.py).

eq / ne / lt / le / gt / ge: bool(a OP b), compared in the promoted dtype's opmath type (so an int tensor
against 0.5 compares in float).
isin(x, T)[i] = OR_j (x[i] == T[j]) (``invert``: its negation), compared in the promoted dtype (fp16/bf16
widened to fp32, exact): a blocked all-pairs compare on rank-6 addressing (addressing.py), so T is capped.
"""
from __future__ import annotations

from numbers import Number

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from . import elementwise as ew
from .addressing import MAX_RANK, block_size, program_coords
from .copy import contiguous_copy
from .elementwise import ALL, FLOAT, INT
from .elementwise_family import ALWAYS_BOOL, TENSOR_SCALAR_OUTS, elementwise


@elementwise("eq", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _eq(a, b, c):
    return a == b


@elementwise("ne", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _ne(a, b, c):
    return a != b


@elementwise("lt", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _lt(a, b, c):
    return a < b


@elementwise("le", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _le(a, b, c):
    return a <= b


@elementwise("gt", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _gt(a, b, c):
    return a > b


@elementwise("ge", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _ge(a, b, c):
    return a >= b


# ---- isin -------------------------------------------------------------------------------------------------------
@triton.jit
def _isin_kernel(x_ptr, t_ptr, out_ptr, N, M, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5,
                 CMP: tl.constexpr, INVERT: tl.constexpr, BLOCK: tl.constexpr, TBLOCK: tl.constexpr):
    o, mask, c0, c1, c2, c3, c4, c5 = program_coords(tl.program_id(0), N, d1, d2, d3, d4, d5, BLOCK)
    x = tl.load(x_ptr + (c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4 + c5 * s5), mask=mask, other=0).to(CMP)
    found = tl.zeros([BLOCK], tl.int32)
    for start in range(0, M, TBLOCK):
        j = start + tl.arange(0, TBLOCK)
        t = tl.load(t_ptr + j, mask=j < M, other=0).to(CMP)
        hit = (x[:, None] == t[None, :]) & (j < M)[None, :]
        found = tl.maximum(found, tl.max(hit.to(tl.int32), axis=1))
    if INVERT:
        found = 1 - found
    tl.store(out_ptr + o, found.to(tl.int1), mask=mask)


_ISIN_MAX_TEST = 1 << 16


def _isin_supports(elements, test_elements, *, assume_unique=False, invert=False, out=None):
    for x in (elements, test_elements):
        if isinstance(x, torch.Tensor):
            if x.dtype not in FLOAT | INT:
                return f"dtype {x.dtype}"
        elif isinstance(x, bool) or not isinstance(x, Number) or isinstance(x, complex):
            return "scalar type"
    if isinstance(elements, torch.Tensor) and elements.dim() > MAX_RANK:
        return f"rank > {MAX_RANK}"
    m = test_elements.numel() if isinstance(test_elements, torch.Tensor) else 1
    if m > _ISIN_MAX_TEST:
        return "test set larger than 65536 (all-pairs kernel)"
    if out is not None:
        return "out variant"
    return None


def _scalar_tensor(v, dtype, device):
    # torch casts the Python number to the compared dtype, wrapping integers (int32 vs 2**32 + 1 compares 1)
    if not dtype.is_floating_point and isinstance(v, int):
        v = ew.wrap_int(v, dtype)
    return torch.full((), v, dtype=dtype, device=device)


def _isin_core(elements, test_elements, invert):
    ref = elements if isinstance(elements, torch.Tensor) else test_elements
    device = ref.device
    cmp = torch.result_type(elements, test_elements)
    if cmp in (torch.float16, torch.bfloat16):
        cmp = torch.float32  # exact: both sides are widened
    e = elements if isinstance(elements, torch.Tensor) else _scalar_tensor(elements, cmp, device)
    t = test_elements if isinstance(test_elements, torch.Tensor) else _scalar_tensor(test_elements, cmp, device)
    if t.device != device:
        t = t.to(device)
    if not t.is_contiguous():
        t = contiguous_copy(t)
    out = torch.empty(e.shape, dtype=torch.bool, device=device)
    n, m = e.numel(), t.numel()
    if n == 0:
        return out
    pad = MAX_RANK - e.dim()
    shape = [1] * pad + list(e.shape)
    st = [0] * pad + list(e.stride())
    block = min(block_size(n), 4096 if runtime.interpreting() else 256)
    tblock = max(16, min(runtime.next_pow2(m), 64 if not runtime.interpreting() else 1024))
    with runtime.device_guard(out):
        _isin_kernel[(triton.cdiv(n, block),)](e, t, out, n, m, *shape[1:], *st, CMP=ew.tl_dtype(cmp),
                                               INVERT=invert, BLOCK=block, TBLOCK=tblock)
    return out


@implement(["aten::isin.Tensor_Tensor", "aten::isin.Tensor_Scalar", "aten::isin.Scalar_Tensor"], kind="triton",
           supports=_isin_supports)
def isin(elements, test_elements, *, assume_unique=False, invert=False):
    return _isin_core(elements, test_elements, invert)
