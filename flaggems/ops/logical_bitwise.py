"""Logical and bitwise ATen ops on the pointwise engine (families declared with elementwise_family.py).

logical_and / logical_or: bool((a != 0) AND / OR (b != 0));  logical_not: bool(a == 0).
bitwise_and / or / xor: a & b, a | b, a ^ b on integers and bools (in the promoted dtype; either side may be a
Python number, the other wraps to the tensor's dtype like torch);
bitwise_not: ~a (logical not for bool).
"""
from __future__ import annotations

import triton
import triton.language as tl

from .elementwise import ALL, BOOL, INT
from .elementwise_family import ALWAYS_BOOL, INTEGRAL, SCALAR_TENSOR_OUTS, UNARY, elementwise


@elementwise("logical_and", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=UNARY)
@triton.jit
def _logical_and(a, b, c):
    return (a != 0) & (b != 0)


@elementwise("logical_or", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=UNARY)
@triton.jit
def _logical_or(a, b, c):
    return (a != 0) | (b != 0)


# torch writes logical_not into out= / self of any dtype (0 / 1)
@elementwise("logical_not", ALWAYS_BOOL, arity=1, dtypes=ALL, overloads=UNARY, out_cast=True)
@triton.jit
def _logical_not(a, b, c):
    return a == 0


@elementwise("bitwise_and", INTEGRAL, arity=2, dtypes=INT | BOOL, overloads=SCALAR_TENSOR_OUTS)
@triton.jit
def _bitwise_and(a, b, c):
    return a & b


@elementwise("bitwise_or", INTEGRAL, arity=2, dtypes=INT | BOOL, overloads=SCALAR_TENSOR_OUTS)
@triton.jit
def _bitwise_or(a, b, c):
    return a | b


@elementwise("bitwise_xor", INTEGRAL, arity=2, dtypes=INT | BOOL, overloads=SCALAR_TENSOR_OUTS)
@triton.jit
def _bitwise_xor(a, b, c):
    return a ^ b


@elementwise("bitwise_not", INTEGRAL, arity=1, dtypes=INT | BOOL, overloads=UNARY)
@triton.jit
def _bitwise_not(a, b, c):
    if a.dtype == tl.int1:
        return a == 0
    else:
        return ~a
