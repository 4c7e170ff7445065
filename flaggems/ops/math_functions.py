"""Math-function ATen ops on the pointwise engine (families declared with elementwise_family.py).

exp: e^a;  log: ln a;  sqrt: a^(1/2) (correctly rounded in fp32);  rsqrt: 1/sqrt(a);  reciprocal: 1/a;
sin, cos;  tanh: hyperbolic.py (no libdevice, no cancellation near 0);  abs: |a|;
pow(x, e) for a scalar exponent: e in {0, 1, 2, 3, 0.5, -0.5, -1, -2} as torch special-cases them (x*x, x*x*x,
sqrt, 1/sqrt, ...), general e (and tensor exponents, pow.Scalar's tensor exponent) = sign * 2^(e*log2|x|) with
C pow's edge cases: in float-float for fp32/fp16/bf16 (powf.py), in fp64 for fp64.
exp, log, sqrt, rsqrt, reciprocal, sin, cos, tanh write out= of any dtype their result casts to, like torch.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..registry import implement
from . import elementwise as ew
from . import hyperbolic
from .pointwise_codegen import scalar_function
from .pointwise_jit import rounded
from .powf import pow_special, powf
from .elementwise import BOOL, FLOAT, INT, NUMERIC, identity
from .elementwise_family import DEFAULT, UNARY, elementwise


@elementwise("exp", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY, out_cast=True)
@triton.jit
def _exp(a, b, c):
    return tl.exp(a)


@elementwise("log", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY, out_cast=True)
@triton.jit
def _log(a, b, c):
    return tl.log(a)


@elementwise("sqrt", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY, out_cast=True)
@triton.jit
def _sqrt(a, b, c):
    return tl.sqrt_rn(a) if a.dtype == tl.float32 else tl.sqrt(a)


@elementwise("rsqrt", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY, out_cast=True)
@triton.jit
def _rsqrt(a, b, c):
    return 1.0 / tl.sqrt(a)


@elementwise("reciprocal", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY, out_cast=True)
@triton.jit
def _reciprocal(a, b, c):
    return 1.0 / a


@elementwise("sin", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY, out_cast=True)
@triton.jit
def _sin(a, b, c):
    return tl.sin(a)


@elementwise("cos", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY, out_cast=True)
@triton.jit
def _cos(a, b, c):
    return tl.cos(a)


@elementwise("tanh", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY, out_cast=True)
@triton.jit
def _tanh(a, b, c):
    return hyperbolic.tanh(a)


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
def _cube(a, R):
    # torch's bf16 kernel multiplies in bf16 (x*x rounded before the second product); fp16 / fp32 round once
    if R == tl.bfloat16:
        return rounded(a * a, R) * a
    else:
        return a * a * a


@scalar_function
@triton.jit
def _rsqrt_pow(a, b, c):
    return 1.0 / (tl.sqrt_rn(a) if a.dtype == tl.float32 else tl.sqrt(a))


@scalar_function
@triton.jit
def _inv_square(a, R):
    if R == tl.bfloat16:
        return 1.0 / rounded(a * a, R)  # as _cube: bf16 products rounded
    else:
        return 1.0 / (a * a)


@scalar_function
@triton.jit
def _pow_general(a, b):
    # C pow (std::pow, what torch calls); fp32 (and fp16/bf16 in fp32) without libdevice, accurate for large |b|
    if a.dtype == tl.float64:
        return pow_special(a, b, tl.exp2(b * tl.log2(tl.abs(a))), tl.zeros_like(b))
    else:
        return powf(a, b, tl.zeros_like(b))  # an fp32 exponent: no low part


@scalar_function
@triton.jit
def _pow_scalar_exponent(a, bh, bl):
    # a Python exponent held as bh + bl (fp32 hi / lo parts of the double): rounding 100.001 to fp32 alone moves
    # x^e by ~8 ulp where |e log2 x| nears 128, and torch's CPU kernel keeps the exponent in double
    if a.dtype == tl.float64:
        return pow_special(a, bh, tl.exp2(bh * tl.log2(tl.abs(a))), bl)
    else:
        return powf(a, bh, bl)


def _exponent_ok(e) -> bool:
    return ew.is_number(e) and not isinstance(e, (complex, bool))


def _pow_supports(x, e, *, out=None):
    if not _exponent_ok(e) or not math.isfinite(e):
        return "exponent type"
    rt = torch.result_type(x, e)
    if rt not in FLOAT:
        if not (rt in INT and isinstance(e, int) and 0 <= e <= 3):
            return f"dtype {rt}"
    if out is not None and (out.dtype != rt or ew.out_ok(out, x.shape, (x,))):
        return "out"
    return None


def _pow_inplace_supports(x, e):
    r = _pow_supports(x, e)
    if r:
        return r
    if torch.result_type(x, e) != x.dtype:
        return "in-place result dtype (torch raises)"
    return ew.out_ok(x, x.shape)


# torch special-cases these exponents before converting it to the tensor dtype (+-0.5 are sqrt / rsqrt, so
# (-0.0) ** -0.5 is -inf) ...
_ROOTS = {0.5: _sqrt, -0.5: _rsqrt_pow, -1: _reciprocal}
# ... and these after
_POWERS = {2: _square, 3: _cube, 1: identity, -2: _inv_square}


def _pow(x, e, out=None):
    rt = torch.result_type(x, e)
    ct = ew.compute_dtype(rt)
    if e in _ROOTS:
        return ew.run(_ROOTS[e], [x], ct, rt, out=out)
    if rt in (torch.float16, torch.bfloat16):
        # torch converts the exponent to the tensor's dtype first (4.2 is 4.1875 in bf16; 2.001 is 2)
        e = float(torch.tensor(e, dtype=rt))
    if e in _POWERS:
        return ew.run(_POWERS[e], [x], ct, rt, out=out)
    if e == 0:
        if out is None:
            out = ew.alloc(x.shape, rt, x.device, [x])
        return ew.run(identity, [1], ct, rt, shape=x.shape, out=out, like=x)
    e = float(e)
    if ct == torch.float64:
        return ew.run(_pow_scalar_exponent, [x, e, 0.0], ct, rt, out=out)
    hi = float(torch.tensor(e, dtype=torch.float32))  # the double exponent as fp32 hi + lo
    lo = e - hi if math.isfinite(hi) else 0.0  # past fp32's range hi is +-inf: pow's y = +-inf cases
    return ew.run(_pow_scalar_exponent, [x, hi, lo], ct, rt, out=out)


@implement("aten::pow.Tensor_Scalar", kind="triton", dtypes=NUMERIC, supports=_pow_supports)
def pow_tensor_scalar(x, e):
    return _pow(x, e)


@implement("aten::pow.Tensor_Scalar_out", kind="triton", dtypes=NUMERIC, supports=_pow_supports)
def pow_tensor_scalar_out(x, e, *, out):
    return _pow(x, e, out=out)


@implement("aten::pow_.Scalar", kind="triton", dtypes=NUMERIC, supports=_pow_inplace_supports)
def pow_scalar_(x, e):
    return _pow(x, e, out=x)


# ---- pow with a tensor exponent (std::pow per element; integer results stay native: torch raises on negative
# exponents, which only a device-side check could see)
def _pow_tensor_dtype(base, exp):
    return torch.result_type(base, exp)


def _pow_tensor_supports(base, exp, *, out=None, inplace=False):
    for v in (base, exp):
        if not isinstance(v, torch.Tensor) and not _exponent_ok(v):
            return "operand type"
        if isinstance(v, torch.Tensor) and v.dtype not in NUMERIC | BOOL:
            return f"dtype {v.dtype}"
    try:
        rt = _pow_tensor_dtype(base, exp)
    except RuntimeError:
        return "type promotion"
    if rt not in FLOAT:
        return f"integer result {rt}"
    shape = torch.broadcast_shapes(ew.shape_of(base), ew.shape_of(exp))
    if inplace:
        if rt != base.dtype:
            return "in-place result dtype (torch raises)"
        return ew.out_ok(base, base.shape, (exp,)) or (None if tuple(shape) == tuple(base.shape) else "shape")
    if out is not None:
        if out.dtype != rt:
            return "out dtype"
        return ew.out_ok(out, shape, (base, exp))
    return None


def _pow_tensor(base, exp, out=None):
    rt = _pow_tensor_dtype(base, exp)
    return ew.run(_pow_general, [base, exp], ew.compute_dtype(rt), rt, out=out)


@implement(["aten::pow.Tensor_Tensor", "aten::pow.Scalar"], kind="triton", dtypes=NUMERIC | BOOL,
           supports=_pow_tensor_supports)
def pow_tensor_tensor(base, exp):
    return _pow_tensor(base, exp)


@implement(["aten::pow.Tensor_Tensor_out", "aten::pow.Scalar_out"], kind="triton", dtypes=NUMERIC | BOOL,
           supports=_pow_tensor_supports)
def pow_tensor_tensor_out(base, exp, *, out):
    return _pow_tensor(base, exp, out=out)


@implement("aten::pow_.Tensor", kind="triton", dtypes=NUMERIC | BOOL,
           supports=lambda base, exp: _pow_tensor_supports(base, exp, inplace=True))
def pow_tensor_(base, exp):
    return _pow_tensor(base, exp, out=base)
