"""Math-function ATen ops on the pointwise engine (families declared with elementwise_family.py).

exp: e^a;  log: ln a;  sqrt: a^(1/2) (correctly rounded in fp32);  rsqrt: 1/sqrt(a);  reciprocal: 1/a;
sin, cos;  tanh: 1 - 2/(e^(2a) + 1) (exact limits at +-inf, no libdevice);  abs: |a|;
pow(x, e) for a scalar exponent: e in {0, 1, 2, 3, 0.5, -0.5, -1, -2} as torch special-cases them (x*x, x*x*x,
sqrt, 1/sqrt, ...), integer e by its sign and parity, general e = sign * 2^(e*log2|x|) with C pow's edge cases.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..registry import implement
from . import elementwise as ew
from .pointwise_codegen import scalar_function
from .elementwise import FLOAT, INT, NUMERIC, identity
from .elementwise_family import DEFAULT, UNARY, elementwise


@elementwise("exp", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY)
@triton.jit
def _exp(a, b, c):
    return tl.exp(a)


@elementwise("log", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY)
@triton.jit
def _log(a, b, c):
    return tl.log(a)


@elementwise("sqrt", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY)
@triton.jit
def _sqrt(a, b, c):
    return tl.sqrt_rn(a) if a.dtype == tl.float32 else tl.sqrt(a)


@elementwise("rsqrt", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY)
@triton.jit
def _rsqrt(a, b, c):
    return 1.0 / tl.sqrt(a)


@elementwise("reciprocal", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY)
@triton.jit
def _reciprocal(a, b, c):
    return 1.0 / a


@elementwise("sin", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY)
@triton.jit
def _sin(a, b, c):
    return tl.sin(a)


@elementwise("cos", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY)
@triton.jit
def _cos(a, b, c):
    return tl.cos(a)


@elementwise("tanh", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY)
@triton.jit
def _tanh(a, b, c):
    return 1.0 - 2.0 / (tl.exp(2.0 * a) + 1.0)


@elementwise("abs", DEFAULT, arity=1, dtypes=NUMERIC, overloads=UNARY)
@triton.jit
def _abs(a, b, c):
    if a.dtype.is_floating():
        return tl.abs(a)
    else:
        return tl.where(a < 0, -a, a)


# ---- pow(Tensor, Scalar) ---------------------------------------------------------------------------------------
@scalar_function
@triton.jit
def _square(a, b, c):
    return a * a


@scalar_function
@triton.jit
def _cube(a, b, c):
    return a * a * a


@scalar_function
@triton.jit
def _rsqrt_pow(a, b, c):
    return 1.0 / (tl.sqrt_rn(a) if a.dtype == tl.float32 else tl.sqrt(a))


@scalar_function
@triton.jit
def _inv_square(a, b, c):
    return 1.0 / (a * a)


@scalar_function
@triton.jit
def _pow_general(a, b, c):
    # b holds the exponent as a scalar operand, c its parity flag (1.0 for odd integers)
    mag = tl.exp2(b * tl.log2(tl.abs(a)))
    is_int = b == tl.floor(b)
    neg = a < 0
    r = tl.where(neg & (c != 0), -mag, mag)
    r = tl.where(neg & (~is_int), float("nan"), r)
    # C pow: (-inf)^e is +-inf for e > 0 and +-0 for e < 0, the sign set by odd integer e
    sgn = tl.where(c != 0, -1.0, 1.0)
    r = tl.where(a == -float("inf"), tl.where(b > 0, sgn * float("inf"), sgn * 0.0), r)
    return tl.where(b == 0, 1.0, r)


def _pow_dtype(x, e):
    return torch.result_type(x, e)


def _pow_supports(x, e, *, out=None):
    if not ew.is_number(e) or isinstance(e, (complex, bool)) or not math.isfinite(e):
        return "exponent type"
    rt = _pow_dtype(x, e)
    if rt not in FLOAT:
        if not (rt in INT and isinstance(e, int) and 0 <= e <= 3):
            return f"dtype {rt}"
    if out is not None and (out.dtype != rt or ew.out_ok(out, x.shape, (x,))):
        return "out"
    return None


def _pow(x, e, out=None):
    rt = _pow_dtype(x, e)
    ct = ew.compute_dtype(rt)
    # torch special-cases these exponents (e.g. +-0.5 are sqrt / rsqrt, so (-0.0) ** -0.5 is -inf)
    special = {2: _square, 3: _cube, 1: identity, 0.5: _sqrt, -0.5: _rsqrt_pow, -1: _reciprocal,
               -2: _inv_square}
    if e in special and not isinstance(e, bool):
        return ew.run(special[e], [x], ct, rt, out=out)
    if e == 0:
        return ew.run(identity, [1], ct, rt, shape=x.shape, out=out, like=x) if out is not None else \
            torch.ones_like(x, dtype=rt)
    odd = 1.0 if (float(e).is_integer() and int(e) % 2 == 1) else 0.0
    return ew.run(_pow_general, [x, float(e), odd], ct, rt, out=out)


@implement("aten::pow.Tensor_Scalar", kind="triton", dtypes=NUMERIC, supports=_pow_supports)
def pow_tensor_scalar(x, e):
    return _pow(x, e)


@implement("aten::pow.Tensor_Scalar_out", kind="triton", dtypes=NUMERIC, supports=_pow_supports)
def pow_tensor_scalar_out(x, e, *, out):
    return _pow(x, e, out=out)
