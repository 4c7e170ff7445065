"""More pointwise ATen ops on the generic engine (elementwise.py).

Comparisons  eq/ne/lt/le/gt/ge: bool(a OP b), compared in the promoted dtype.
Bitwise      and/or/xor/not on integers and bools; logical_not/and/or: bool results.
Clamp        clamp(x, lo, hi) = min(max(x, lo), hi), NaN in x propagates; clamp_min / clamp_max.
Math         abs, sqrt, cos, sin, tanh, log, reciprocal, relu, gelu (erf / tanh), softplus
             (x if beta*x > threshold else log1p(exp(beta*x))/beta), pow(x, e) (integer e by repeated
             multiplication, general e = sign * exp2(e*log2|x|)), maximum/minimum (NaN-propagating),
             floor_divide (floor(a/b), Python semantics for integers and floats).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..registry import implement
from . import elementwise as ew
from .pointwise_ops import FLOAT, INT, NUMERIC, _alloc, _result_dtype

BOOL = frozenset({torch.bool})
ALL = NUMERIC | BOOL


# ---- scalar functions ----------------------------------------------------------------------------------------
@triton.jit
def _eq(a, b, c, p0):
    return a == b


@triton.jit
def _ne(a, b, c, p0):
    return a != b


@triton.jit
def _lt(a, b, c, p0):
    return a < b


@triton.jit
def _le(a, b, c, p0):
    return a <= b


@triton.jit
def _gt(a, b, c, p0):
    return a > b


@triton.jit
def _ge(a, b, c, p0):
    return a >= b


@triton.jit
def _band(a, b, c, p0):
    return a & b


@triton.jit
def _bor(a, b, c, p0):
    return a | b


@triton.jit
def _bxor(a, b, c, p0):
    return a ^ b


@triton.jit
def _bnot(a, b, c, p0):
    if a.dtype == tl.int1:
        return a == 0
    else:
        return ~a


@triton.jit
def _lnot(a, b, c, p0):
    return a == 0


@triton.jit
def _land(a, b, c, p0):
    return (a != 0) & (b != 0)


@triton.jit
def _lor(a, b, c, p0):
    return (a != 0) | (b != 0)


@triton.jit
def _isnan(x):
    return x != x


@triton.jit
def _clamp_both(a, b, c, p0):
    r = tl.minimum(tl.maximum(a, b), c)
    if a.dtype.is_floating():
        r = tl.where(_isnan(a) | _isnan(b) | _isnan(c), a + b + c, r)
    return r


@triton.jit
def _clamp_lo(a, b, c, p0):
    r = tl.maximum(a, b)
    if a.dtype.is_floating():
        r = tl.where(_isnan(a) | _isnan(b), a + b, r)
    return r


@triton.jit
def _clamp_hi(a, b, c, p0):
    r = tl.minimum(a, b)
    if a.dtype.is_floating():
        r = tl.where(_isnan(a) | _isnan(b), a + b, r)
    return r


@triton.jit
def _abs(a, b, c, p0):
    if a.dtype.is_floating():
        return tl.abs(a)
    else:
        return tl.where(a < 0, -a, a)


@triton.jit
def _sqrt(a, b, c, p0):
    return tl.sqrt_rn(a) if a.dtype == tl.float32 else tl.sqrt(a)


@triton.jit
def _cos(a, b, c, p0):
    return tl.cos(a)


@triton.jit
def _sin(a, b, c, p0):
    return tl.sin(a)


@triton.jit
def _tanh(a, b, c, p0):
    # tanh(x) = 1 - 2/(exp(2x)+1): exact limits at +-inf, no libdevice needed
    return 1.0 - 2.0 / (tl.exp(2.0 * a) + 1.0)


@triton.jit
def _log(a, b, c, p0):
    return tl.log(a)


@triton.jit
def _reciprocal(a, b, c, p0):
    return 1.0 / a


@triton.jit
def _relu(a, b, c, p0):
    r = tl.where(a > 0, a, 0)
    if a.dtype.is_floating():
        r = tl.where(_isnan(a), a, r)
    return r


@triton.jit
def _gelu_erf(a, b, c, p0):
    return 0.5 * a * (1.0 + tl.erf(a * 0.7071067811865476))


@triton.jit
def _gelu_tanh(a, b, c, p0):
    inner = 0.7978845608028654 * (a + 0.044715 * a * a * a)
    return 0.5 * a * (2.0 - 2.0 / (tl.exp(2.0 * inner) + 1.0))


@triton.jit
def _log1p_exp(z):
    # log1p(e) with e = exp(z), without log1p: log(u) - ((u - 1) - e) / u recovers the bits lost in 1 + e
    e = tl.exp(z)
    u = 1.0 + e
    r = tl.log(u) - ((u - 1.0) - e) / u
    return tl.where(u == 1.0, e, r)


@triton.jit
def _softplus(a, b, c, p0):
    # b carries beta, c carries threshold (scalar operands)
    z = a * b
    return tl.where(z > c, a, _log1p_exp(z) / b)


@triton.jit
def _square(a, b, c, p0):
    return a * a


@triton.jit
def _cube(a, b, c, p0):
    return a * a * a


@triton.jit
def _identity(a, b, c, p0):
    return a


@triton.jit
def _rsqrt_pow(a, b, c, p0):
    return 1.0 / (tl.sqrt_rn(a) if a.dtype == tl.float32 else tl.sqrt(a))


@triton.jit
def _inv_square(a, b, c, p0):
    return 1.0 / (a * a)


@triton.jit
def _pow_general(a, b, c, p0):
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


@triton.jit
def _maximum(a, b, c, p0):
    r = tl.maximum(a, b)
    if a.dtype.is_floating():
        r = tl.where(_isnan(a) | _isnan(b), a + b, r)
    return r


@triton.jit
def _minimum(a, b, c, p0):
    r = tl.minimum(a, b)
    if a.dtype.is_floating():
        r = tl.where(_isnan(a) | _isnan(b), a + b, r)
    return r


@triton.jit
def _floor_divide(a, b, c, p0):
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


# ---- host side -----------------------------------------------------------------------------------------------
def _run_into(op, operands, compute, out_dtype, shape=None, out=None, p0=0.0, like=None):
    device = ew.device_of(*[x for x in operands if isinstance(x, torch.Tensor)] or [like])
    if shape is None:
        shape = torch.broadcast_shapes(*[ew.shape_of(x) for x in operands])
    ops = [ew.as_operand(x, compute, device) for x in operands]
    if out is None:
        out = _alloc(shape, out_dtype, device, [x for x in operands if isinstance(x, torch.Tensor)])
    return ew.launch(op, ops, out, compute, p0)


def _binary_family(names, op, *, dtypes, result, compute=None, extra=None):
    """Register functional / out / in-place overloads of a two-operand op.

    ``result(a, b)`` gives the output dtype; ``compute(a, b)`` the dtype operands are compared/combined in.
    """
    compute = compute or (lambda a, b: ew.compute_dtype(_result_dtype(a, b)))

    def supports_fn(a, b, *, out=None):
        for x in (a, b):
            if not isinstance(x, torch.Tensor) and not ew.is_number(x):
                return "non-tensor operand"
            if isinstance(x, torch.Tensor) and x.dtype not in dtypes:
                return f"dtype {x.dtype}"
        try:
            rt, ct = result(a, b), compute(a, b)
        except Exception:
            return "type promotion"
        if rt not in ALL or ct not in ALL:
            return f"result dtype {rt}"
        if extra is not None:
            r = extra(a, b)
            if r:
                return r
        if out is not None:
            if out.dtype != rt and not torch.can_cast(rt, out.dtype):
                return "out dtype"
            return ew.out_ok(out, torch.broadcast_shapes(ew.shape_of(a), ew.shape_of(b)), (a, b))
        return None

    def supports_inplace(a, b):
        r = supports_fn(a, b)
        if r:
            return r
        if not torch.can_cast(result(a, b), a.dtype):
            return "in-place result dtype"
        return ew.out_ok(a, torch.broadcast_shapes(a.shape, ew.shape_of(b)), (b,))

    def functional(a, b):
        return _run_into(op, [a, b], compute(a, b), result(a, b))

    def out_fn(a, b, *, out):
        _run_into(op, [a, b], compute(a, b), out.dtype, out=out)
        return out

    def inplace(a, b):
        _run_into(op, [a, b], compute(a, b), a.dtype, out=a)
        return a

    for kind, fn, sup in (("functional", functional, supports_fn), ("out", out_fn, supports_fn),
                          ("inplace", inplace, supports_inplace)):
        ns = names.get(kind)
        if ns:
            implement(ns, kind="triton", dtypes=dtypes, supports=sup)(fn)


def _cmp_compute(a, b):
    return ew.compute_dtype(_result_dtype(a, b))


for _name, _op in (("eq", _eq), ("ne", _ne), ("lt", _lt), ("le", _le), ("gt", _gt), ("ge", _ge)):
    _binary_family({"functional": [f"aten::{_name}.Tensor", f"aten::{_name}.Scalar"],
                    "out": [f"aten::{_name}.Tensor_out", f"aten::{_name}.Scalar_out"],
                    "inplace": [f"aten::{_name}_.Tensor", f"aten::{_name}_.Scalar"]},
                   _op, dtypes=ALL, result=lambda a, b: torch.bool, compute=_cmp_compute)

_INTB = INT | BOOL


def _bit_result(a, b):
    rt = _result_dtype(a, b)
    if rt not in _INTB:
        raise TypeError("bitwise ops need integer or bool operands")
    return rt


for _name, _op in (("bitwise_and", _band), ("bitwise_or", _bor), ("bitwise_xor", _bxor)):
    _binary_family({"functional": [f"aten::{_name}.Tensor", f"aten::{_name}.Scalar"],
                    "out": [f"aten::{_name}.Tensor_out", f"aten::{_name}.Scalar_out"],
                    "inplace": [f"aten::{_name}_.Tensor", f"aten::{_name}_.Scalar"]},
                   _op, dtypes=_INTB, result=_bit_result, compute=_bit_result)

for _name, _op in (("logical_and", _land), ("logical_or", _lor)):
    _binary_family({"functional": [f"aten::{_name}.default"], "out": [f"aten::{_name}.out"],
                    "inplace": [f"aten::{_name}_.default"]},
                   _op, dtypes=ALL, result=lambda a, b: torch.bool, compute=_cmp_compute)

_binary_family({"functional": ["aten::maximum.default"], "out": ["aten::maximum.out"]}, _maximum,
               dtypes=NUMERIC, result=_result_dtype)
_binary_family({"functional": ["aten::minimum.default"], "out": ["aten::minimum.out"]}, _minimum,
               dtypes=NUMERIC, result=_result_dtype)


def _fdiv_supports_extra(a, b, **kw):
    rt = _result_dtype(a, b)
    if not rt.is_floating_point:
        # integer division by zero must raise like torch; only a host-known non-zero divisor is safe
        if isinstance(b, torch.Tensor) or b == 0:
            return "integer tensor divisor (division-by-zero check)"
    return None


_binary_family({"functional": ["aten::floor_divide.default", "aten::floor_divide.Scalar"],
                "out": ["aten::floor_divide.out"],
                "inplace": ["aten::floor_divide_.Tensor", "aten::floor_divide_.Scalar"]},
               _floor_divide, dtypes=NUMERIC, result=_result_dtype, extra=_fdiv_supports_extra)


# ---- unary ---------------------------------------------------------------------------------------------------
def _unary_family(base, op, *, dtypes, result=lambda x: x.dtype, inplace=True, out=True, extra=None):
    def supports_fn(x, *rest, **kw):
        if x.dtype not in dtypes:
            return f"dtype {x.dtype}"
        if extra is not None:
            r = extra(x, *rest, **{k: v for k, v in kw.items() if k != "out"})
            if r:
                return r
        o = kw.get("out")
        if o is not None:
            if o.dtype != result(x):
                return "out dtype"
            return ew.out_ok(o, x.shape, (x,))
        return None

    def supports_inplace(x, *rest, **kw):
        r = supports_fn(x, *rest, **kw)
        return r or (None if result(x) == x.dtype else "in-place dtype") or ew.out_ok(x, x.shape)

    def functional(x):
        return _run_into(op, [x], ew.compute_dtype(result(x)) if result(x) != torch.bool else x.dtype, result(x))

    def out_fn(x, *, out):
        _run_into(op, [x], ew.compute_dtype(out.dtype) if out.dtype != torch.bool else x.dtype, out.dtype, out=out)
        return out

    def inplace_fn(x):
        _run_into(op, [x], ew.compute_dtype(x.dtype) if x.dtype != torch.bool else x.dtype, x.dtype, out=x)
        return x

    implement([f"aten::{base}.default"], kind="triton", dtypes=dtypes, supports=supports_fn)(functional)
    if out:
        implement([f"aten::{base}.out"], kind="triton", dtypes=dtypes, supports=supports_fn)(out_fn)
    if inplace:
        implement([f"aten::{base}_.default"], kind="triton", dtypes=dtypes, supports=supports_inplace)(inplace_fn)


_unary_family("abs", _abs, dtypes=NUMERIC)
for _base, _op in (("sqrt", _sqrt), ("cos", _cos), ("sin", _sin), ("tanh", _tanh), ("log", _log),
                   ("reciprocal", _reciprocal)):
    _unary_family(_base, _op, dtypes=FLOAT)
_unary_family("relu", _relu, dtypes=NUMERIC, out=False)
_unary_family("bitwise_not", _bnot, dtypes=_INTB)
_unary_family("logical_not", _lnot, dtypes=ALL, result=lambda x: torch.bool)


# ---- gelu / softplus / pow / clamp ------------------------------------------------------------------------------
def _gelu_supports(x, *, approximate="none", out=None):
    if x.dtype not in FLOAT:
        return f"dtype {x.dtype}"
    if approximate not in ("none", "tanh"):
        return f"approximate={approximate!r}"
    if out is not None and (out.dtype != x.dtype or ew.out_ok(out, x.shape, (x,))):
        return "out"
    return None


@implement("aten::gelu.default", kind="triton", dtypes=FLOAT, supports=_gelu_supports)
def gelu(x, *, approximate="none"):
    return _run_into(_gelu_tanh if approximate == "tanh" else _gelu_erf, [x], ew.compute_dtype(x.dtype), x.dtype)


@implement("aten::gelu.out", kind="triton", dtypes=FLOAT, supports=_gelu_supports)
def gelu_out(x, *, approximate="none", out):
    _run_into(_gelu_tanh if approximate == "tanh" else _gelu_erf, [x], ew.compute_dtype(x.dtype), x.dtype, out=out)
    return out


def _softplus_supports(x, beta=1, threshold=20, *, out=None):
    if x.dtype not in FLOAT:
        return f"dtype {x.dtype}"
    if isinstance(beta, complex) or isinstance(threshold, complex):
        return "complex parameters"
    if out is not None and (out.dtype != x.dtype or ew.out_ok(out, x.shape, (x,))):
        return "out"
    return None


@implement("aten::softplus.default", kind="triton", dtypes=FLOAT, supports=_softplus_supports)
def softplus(x, beta=1, threshold=20):
    return _run_into(_softplus, [x, float(beta), float(threshold)], ew.compute_dtype(x.dtype), x.dtype)


@implement("aten::softplus.out", kind="triton", dtypes=FLOAT, supports=_softplus_supports)
def softplus_out(x, beta=1, threshold=20, *, out):
    _run_into(_softplus, [x, float(beta), float(threshold)], ew.compute_dtype(x.dtype), x.dtype, out=out)
    return out


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
    special = {2: _square, 3: _cube, 1: _identity, 0.5: _sqrt, -0.5: _rsqrt_pow, -1: _reciprocal,
               -2: _inv_square}
    if e in special and not isinstance(e, bool):
        return _run_into(special[e], [x], ct, rt, out=out)
    if e == 0:
        return _run_into(_identity, [1], ct, rt, shape=x.shape, out=out, like=x) if out is not None else \
            torch.ones_like(x, dtype=rt)
    odd = 1.0 if (float(e).is_integer() and int(e) % 2 == 1) else 0.0
    return _run_into(_pow_general, [x, float(e), odd], ct, rt, out=out)


@implement("aten::pow.Tensor_Scalar", kind="triton", dtypes=NUMERIC, supports=_pow_supports)
def pow_tensor_scalar(x, e):
    return _pow(x, e)


@implement("aten::pow.Tensor_Scalar_out", kind="triton", dtypes=NUMERIC, supports=_pow_supports)
def pow_tensor_scalar_out(x, e, *, out):
    return _pow(x, e, out=out)


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
        return _run_into(_clamp_both, [x, lo, hi], ct, rt, out=x if inplace else out)
    if lo is not None:
        return _run_into(_clamp_lo, [x, lo], ct, rt, out=x if inplace else out)
    return _run_into(_clamp_hi, [x, hi], ct, rt, out=x if inplace else out)


def _clamp_inplace_supports(x, lo=None, hi=None):
    r = _clamp_supports(x, lo, hi)
    if r:
        return r
    if not torch.can_cast(_clamp_dtype(x, lo, hi), x.dtype):
        return "in-place dtype"
    return ew.out_ok(x, x.shape, tuple(b for b in (lo, hi) if isinstance(b, torch.Tensor)))


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

