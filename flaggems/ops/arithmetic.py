"""Arithmetic ATen ops on the pointwise engine (families declared with elementwise_family.py).

add: a + alpha*b;  sub: a - alpha*b;  rsub: b - alpha*a;  mul: a*b;  div: a/b (IEEE round-to-nearest, integers
promoted to the default float);  neg: -a;  floor_divide: floor(a/b) with Python semantics for integers and
floats (torch's div_floor: q = (a - fmod(a, b)) / b, minus one where the remainder's sign differs from b's).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .elementwise import ALL, NUMERIC
from .elementwise_family import DEFAULT, INT_TO_FLOAT, TENSOR_SCALAR, UNARY, Overloads, elementwise, result_type


@triton.jit
def _add_unit(a, b, c):
    return a + b


@elementwise("add", DEFAULT, arity=2, dtypes=ALL, results=NUMERIC, overloads=TENSOR_SCALAR, alpha=True,
             unit_alpha=_add_unit)
@triton.jit
def _add(a, b, c):
    return a + b * c


@triton.jit
def _sub_unit(a, b, c):
    return a - b


@elementwise("sub", DEFAULT, arity=2, dtypes=ALL, results=NUMERIC, overloads=TENSOR_SCALAR, alpha=True,
             unit_alpha=_sub_unit)
@triton.jit
def _sub(a, b, c):
    return a - b * c


@elementwise("rsub", DEFAULT, arity=2, dtypes=NUMERIC, results=NUMERIC,
             overloads=Overloads(("Tensor", "Scalar"), (), ()), alpha=True)
@triton.jit
def _rsub(a, b, c):
    return b - a * c


# bool operands are fine for mul when promotion leaves bool: bool*bool is logical and
@elementwise("mul", DEFAULT, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR)
@triton.jit
def _mul(a, b, c):
    return a * b


@elementwise("div", INT_TO_FLOAT, arity=2, dtypes=ALL, results=NUMERIC, overloads=TENSOR_SCALAR)
@triton.jit
def _div(a, b, c):
    # div_rn: IEEE fp32 division like torch (plain `/` may lower to an approximate divide on GPU);
    # fp64 `/` is already correctly rounded
    if a.dtype == tl.float32:
        return tl.div_rn(a, b)
    else:
        return a / b


@elementwise("neg", DEFAULT, arity=1, dtypes=NUMERIC, overloads=UNARY)
@triton.jit
def _neg(a, b, c):
    return -a


def _floor_divide_extra(a, b):
    if not result_type(a, b).is_floating_point:
        # integer division by zero must raise like torch; only a host-known non-zero divisor is safe
        if isinstance(b, torch.Tensor) or b == 0:
            return "integer tensor divisor (division-by-zero check)"
    return None


@elementwise("floor_divide", DEFAULT, arity=2, dtypes=NUMERIC, extra=_floor_divide_extra,
             overloads=Overloads(("default", "Scalar"), ("out",), ("Tensor", "Scalar")))
@triton.jit
def _floor_divide(a, b, c):
    if a.dtype.is_floating():
        # torch's div_floor: via fmod (`%` on floats is fmod in Triton) so exact quotients stay exact
        mod = a % b
        div = (a - mod) / b
        div = tl.where((mod != 0) & ((b < 0) != (mod < 0)), div - 1.0, div)
        fl = tl.floor(div)
        fl = tl.where(div - fl > 0.5, fl + 1.0, fl)
        # a zero quotient keeps the sign of a / b
        q = tl.where(div == 0, 0.0 * (a / b), fl)
        return tl.where(b == 0, a / b, q)
    else:
        # `//` truncates on GPU but floors in the interpreter: this correction is right for both
        q = a // b
        r = a - q * b
        return tl.where((r != 0) & ((r < 0) != (b < 0)), q - 1, q)
