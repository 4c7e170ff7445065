"""Arithmetic ATen ops on the pointwise engine (families declared with elementwise_family.py).

add: a + alpha*b;  sub: a - alpha*b;  rsub: b - alpha*a;  mul: a*b;  div: a/b (IEEE round-to-nearest, integers
promoted to the default float);  neg: -a;  floor_divide and div(rounding_mode="floor"): floor(a/b) with Python
semantics for integers and floats (torch's div_floor: q = (a - fmod(a, b)) / b, minus one where the remainder's
sign differs from b's, each step rounded to fp16/bf16 like torch's reduced-precision kernels);
div(rounding_mode="trunc"): trunc(a/b) (the quotient rounded to the result dtype first). Integer division by a
divisor the host cannot see is non-zero stays native (torch raises ZeroDivisionError).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..registry import implement
from .elementwise import ALL, NUMERIC
from .elementwise_family import (DEFAULT, FAMILIES, INT_TO_FLOAT, TENSOR_SCALAR, UNARY, Overloads, elementwise,
                                 elementwise_op, result_type)
from .pointwise_jit import rounded


@triton.jit
def _add_unit(a, b, c):
    return a + b


@elementwise("add", DEFAULT, arity=2, dtypes=ALL, results=NUMERIC, overloads=TENSOR_SCALAR, alpha=True,
             unit_alpha=_add_unit)
@triton.jit
def _add(a, b, c):
    # one rounding like torch's kernels (a fused multiply-add: CPU fmadd, CUDA contraction)
    if a.dtype.is_floating():
        return tl.fma(b, c, a)
    else:
        return a + b * c


@triton.jit
def _sub_unit(a, b, c):
    return a - b


def _sub_bool(a, b):
    # torch's sub_check refuses a bool operand (tensor or wrapped Python bool) whatever the result dtype
    if any(x.dtype is torch.bool if isinstance(x, torch.Tensor) else isinstance(x, bool) for x in (a, b)):
        return "bool operand (torch raises)"
    return None


@elementwise("sub", DEFAULT, arity=2, dtypes=ALL, results=NUMERIC, overloads=TENSOR_SCALAR, alpha=True,
             unit_alpha=_sub_unit, extra=_sub_bool)
@triton.jit
def _sub(a, b, c):
    if a.dtype.is_floating():
        return tl.fma(-b, c, a)  # one rounding, as add
    else:
        return a - b * c


@elementwise("rsub", DEFAULT, arity=2, dtypes=NUMERIC, results=NUMERIC,
             overloads=Overloads(("Tensor", "Scalar"), (), ()), alpha=True)
@triton.jit
def _rsub(a, b, c):
    if a.dtype.is_floating():
        return tl.fma(-a, c, b)  # one rounding, as add
    else:
        return b - a * c


# bool operands are fine for mul when promotion leaves bool: bool*bool is logical and
@elementwise("mul", DEFAULT, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR)
@triton.jit
def _mul(a, b, c):
    return a * b


@elementwise("div", INT_TO_FLOAT, arity=2, dtypes=ALL, results=NUMERIC, overloads=TENSOR_SCALAR)
@triton.jit
def _div(a, b, c):
    return _true_div(a, b)


@elementwise("neg", DEFAULT, arity=1, dtypes=NUMERIC, overloads=UNARY)
@triton.jit
def _neg(a, b, c):
    return -a


def _int_divisor_extra(a, b):
    if not result_type(a, b).is_floating_point:
        # integer division by zero must raise like torch; only a host-known non-zero divisor is safe
        if isinstance(b, torch.Tensor) or b == 0:
            return "integer tensor divisor (division-by-zero check)"
    return None


@triton.jit
def _true_div(a, b):
    # IEEE division (fp32 `/` may lower to an approximate divide on GPU)
    if a.dtype == tl.float32:
        return tl.div_rn(a, b)
    else:
        return a / b


@triton.jit
def _int_quotient(a, b):
    # `//` truncates on GPU but floors in the interpreter: q and its remainder r = a - q*b serve both modes
    q = a // b
    return q, a - q * b


@elementwise("floor_divide", DEFAULT, arity=2, dtypes=NUMERIC, extra=_int_divisor_extra,
             overloads=Overloads(("default", "Scalar"), ("out",), ("Tensor", "Scalar")))
@triton.jit
def _floor_divide(a, b, c, R):
    if a.dtype.is_floating():
        # torch's div_floor_floating, each step rounded to R as torch's fp16/bf16 kernels do; `%` on floats is
        # fmod, so exact quotients stay exact
        mod = a % b
        div = rounded(_true_div(rounded(a - mod, R), b), R)
        div = tl.where((mod != 0) & ((b < 0) != (mod < 0)), rounded(div - 1.0, R), div)
        fl = tl.floor(div)
        fl = tl.where(div - fl > 0.5, rounded(fl + 1.0, R), fl)
        # a zero quotient keeps the sign of a / b
        q = tl.where(div == 0, 0.0 * (a / b), fl)
        return tl.where(b == 0, a / b, q)
    else:
        q, r = _int_quotient(a, b)
        return tl.where((r != 0) & ((r < 0) != (b < 0)), q - 1, q)


@triton.jit
def _div_trunc(a, b, c, R):
    if a.dtype.is_floating():
        # trunc(a / b), the quotient rounded to R first (torch's fp16/bf16 kernels round it)
        q = rounded(_true_div(a, b), R)
        return tl.where(q < 0, tl.ceil(q), tl.floor(q))
    else:
        q, r = _int_quotient(a, b)
        return tl.where((r != 0) & ((r < 0) != (a < 0)), q + 1, q)


# ---- div with rounding_mode: None is true division (div), "floor" is floor_divide, "trunc" rounds toward zero
_DIV_TRUNC = elementwise_op("div_trunc", _div_trunc, DEFAULT, arity=2, dtypes=NUMERIC, results=NUMERIC,
                            extra=_int_divisor_extra)


def _mode_op(kw):
    return {None: FAMILIES["div"], "floor": FAMILIES["floor_divide"], "trunc": _DIV_TRUNC}.get(
        kw.get("rounding_mode", None))


def _mode_supports(variant):
    def supports(*args, **kw):
        op = _mode_op(kw)
        if op is None:
            return f"rounding_mode={kw.get('rounding_mode')!r} (torch raises)"
        return op.reason(args, kw, variant)
    return supports


@implement(["aten::div.Tensor_mode", "aten::div.Scalar_mode"], kind="triton", dtypes=ALL,
           supports=_mode_supports("functional"))
def div_mode(self, other, *, rounding_mode=None):
    return _mode_op({"rounding_mode": rounding_mode}).functional(self, other)


@implement(["aten::div.out_mode", "aten::div.Scalar_mode_out"], kind="triton", dtypes=ALL,
           supports=_mode_supports("out"))
def div_out_mode(self, other, *, rounding_mode=None, out):
    return _mode_op({"rounding_mode": rounding_mode}).out_variant(self, other, out=out)


@implement(["aten::div_.Tensor_mode", "aten::div_.Scalar_mode"], kind="triton", dtypes=ALL,
           supports=_mode_supports("inplace"))
def div_mode_(self, other, *, rounding_mode=None):
    return _mode_op({"rounding_mode": rounding_mode}).inplace(self, other)
