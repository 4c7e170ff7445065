"""Clamp-type ATen ops on the pointwise engine: bounds and elementwise extremes, NaN-propagating like torch.

clamp(x, lo, hi) = min(max(x, lo), hi);  clamp_min(x, lo) = max(x, lo);  clamp_max(x, hi) = min(x, hi);
maximum(a, b) / minimum(a, b) elementwise.  A NaN in any operand makes the result NaN (a + b [+ c] is NaN
then); bounds may be Python numbers or tensors, and are promoted with x like torch (clamp's result dtype is
result_type(x, lo, hi)); a Python bound that overflows the result dtype stays native (torch raises).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..registry import implement
from . import elementwise as ew
from .pointwise_codegen import scalar_function
from .scalar_checks import overflow_reason, overflows
from .elementwise import NUMERIC, isnan
from .elementwise_family import DEFAULT, Overloads, elementwise


@triton.jit
def _nan_or(r, a, b):
    # tl.maximum / tl.minimum drop NaNs; torch propagates them (a + b is NaN then)
    if a.dtype.is_floating():
        r = tl.where(isnan(a) | isnan(b), a + b, r)
    return r


@elementwise("maximum", DEFAULT, arity=2, dtypes=NUMERIC, overloads=Overloads(inplace=()))
@triton.jit
def _maximum(a, b, c):
    return _nan_or(tl.maximum(a, b), a, b)


@elementwise("minimum", DEFAULT, arity=2, dtypes=NUMERIC, overloads=Overloads(inplace=()))
@triton.jit
def _minimum(a, b, c):
    return _nan_or(tl.minimum(a, b), a, b)


@scalar_function
@triton.jit
def _clamp_both(a, b, c):
    r = tl.minimum(tl.maximum(a, b), c)
    if a.dtype.is_floating():
        r = tl.where(isnan(a) | isnan(b) | isnan(c), a + b + c, r)
    return r


def _clamp_dtype(x, lo, hi):
    rt = x.dtype
    for b in (lo, hi):
        if b is not None:
            rt = torch.result_type(torch.empty((1,) * max(1, x.dim()), dtype=rt) if x.dim() else
                                   torch.empty((), dtype=rt), b)
    return rt


def _clamp_supports(x, lo=None, hi=None, *, out=None):
    if lo is None and hi is None:
        return "clamp without bounds"  # torch raises: let it
    for b in (lo, hi):
        if b is not None and not (ew.is_number(b) or isinstance(b, torch.Tensor)) or isinstance(b, complex):
            return "bound type"
    try:
        rt = _clamp_dtype(x, lo, hi)
    except Exception:
        return "type promotion"
    if rt not in NUMERIC:
        return f"dtype {rt}"
    for b in (lo, hi):
        # a Python bound is converted to the result dtype with torch's overflow check (int8 and 300 raise)
        if ew.is_number(b) and overflows(b, rt):
            return overflow_reason(b, rt)
    if out is not None:
        if out.dtype != rt:
            return "out dtype"
        return ew.out_ok(out, torch.broadcast_shapes(x.shape, *[ew.shape_of(b) for b in (lo, hi) if b is not None]),
                         (x, lo, hi))
    return None


def _clamp(x, lo, hi, out=None, inplace=False):
    rt = x.dtype if inplace else _clamp_dtype(x, lo, hi)
    ct = ew.compute_dtype(_clamp_dtype(x, lo, hi))
    if lo is not None and hi is not None:
        return ew.run(_clamp_both, [x, lo, hi], ct, rt, out=x if inplace else out)
    # one bound: clamp_min is maximum's scalar function, clamp_max minimum's
    if lo is not None:
        return ew.run(_maximum, [x, lo], ct, rt, out=x if inplace else out)
    return ew.run(_minimum, [x, hi], ct, rt, out=x if inplace else out)


def _clamp_inplace_supports(x, lo=None, hi=None):
    r = _clamp_supports(x, lo, hi)
    if r:
        return r
    if not torch.can_cast(_clamp_dtype(x, lo, hi), x.dtype):
        return "in-place dtype"
    bounds = tuple(b for b in (lo, hi) if isinstance(b, torch.Tensor))
    try:
        shape = torch.broadcast_shapes(x.shape, *[b.shape for b in bounds])
    except RuntimeError:
        return "bounds do not broadcast with self (torch raises)"
    # self must hold the broadcast result, as for every in-place op of the pointwise family
    return ew.out_ok(x, shape, bounds)


@implement(["aten::clamp.default", "aten::clamp.Tensor"], kind="triton", dtypes=NUMERIC, supports=_clamp_supports)
def clamp(x, min=None, max=None):
    return _clamp(x, min, max)


@implement(["aten::clamp.out", "aten::clamp.Tensor_out"], kind="triton", dtypes=NUMERIC, supports=_clamp_supports)
def clamp_out(x, min=None, max=None, *, out):
    _clamp(x, min, max, out=out)
    return out


@implement(["aten::clamp_.default", "aten::clamp_.Tensor"], kind="triton", dtypes=NUMERIC,
           supports=_clamp_inplace_supports)
def clamp_(x, min=None, max=None):
    _clamp(x, min, max, inplace=True)
    return x


@implement(["aten::clamp_min.default", "aten::clamp_min.Tensor"], kind="triton", dtypes=NUMERIC,
           supports=lambda x, lo: _clamp_supports(x, lo, None))
def clamp_min(x, min):
    return _clamp(x, min, None)


@implement(["aten::clamp_max.default", "aten::clamp_max.Tensor"], kind="triton", dtypes=NUMERIC,
           supports=lambda x, hi: _clamp_supports(x, None, hi))
def clamp_max(x, max):
    return _clamp(x, None, max)


@implement(["aten::clamp_min_.default", "aten::clamp_min_.Tensor"], kind="triton", dtypes=NUMERIC,
           supports=lambda x, lo: _clamp_inplace_supports(x, lo, None))
def clamp_min_(x, min):
    _clamp(x, min, None, inplace=True)
    return x


@implement(["aten::clamp_max_.default", "aten::clamp_max_.Tensor"], kind="triton", dtypes=NUMERIC,
           supports=lambda x, hi: _clamp_inplace_supports(x, None, hi))
def clamp_max_(x, max):
    _clamp(x, None, max, inplace=True)
    return x
