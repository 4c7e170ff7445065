"""Comparison ATen ops on the pointwise engine (families declared with elementwise_family.py).

eq / ne / lt / le / gt / ge: bool(a OP b), compared in the promoted dtype's opmath type (so an int tensor
against 0.5 compares in float).
"""
from __future__ import annotations

import triton
import triton.language as tl  # noqa: F401  (the interpreter patches it in each jit function's module)

from .elementwise import ALL
from .elementwise_family import ALWAYS_BOOL, TENSOR_SCALAR_OUTS, elementwise


@elementwise("eq", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _eq(a, b, c, p0):
    return a == b


@elementwise("ne", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _ne(a, b, c, p0):
    return a != b


@elementwise("lt", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _lt(a, b, c, p0):
    return a < b


@elementwise("le", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _le(a, b, c, p0):
    return a <= b


@elementwise("gt", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _gt(a, b, c, p0):
    return a > b


@elementwise("ge", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
@triton.jit
def _ge(a, b, c, p0):
    return a >= b

