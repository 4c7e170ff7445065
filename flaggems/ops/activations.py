"""Activation ATen ops on the pointwise engine (families declared with elementwise_family.py).

sigmoid: 1/(1 + e^-a);  silu: a/(1 + e^-a);  relu: max(a, 0) (NaN stays NaN);
gelu: 0.5*a*(1 + erf(a/sqrt(2))), or with approximate='tanh' 0.5*a*(1 + tanh(sqrt(2/pi)*(a + 0.044715*a^3)));
softplus: a if beta*a > threshold else log1p(e^(beta*a))/beta.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..registry import implement
from . import elementwise as ew
from . import hyperbolic
from .pointwise_codegen import scalar_function
from .elementwise import FLOAT, NUMERIC, isnan
from .elementwise_family import DEFAULT, UNARY, Overloads, elementwise


@elementwise("sigmoid", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY, out_cast=True)
@triton.jit
def _sigmoid(a, b, c):
    return 1.0 / (1.0 + tl.exp(-a))


@elementwise("silu", DEFAULT, arity=1, dtypes=FLOAT, overloads=UNARY)
@triton.jit
def _silu(a, b, c):
    return a / (1.0 + tl.exp(-a))


@elementwise("relu", DEFAULT, arity=1, dtypes=NUMERIC, overloads=Overloads(out=()))
@triton.jit
def _relu(a, b, c):
    r = tl.where(a > 0, a, 0)
    if a.dtype.is_floating():
        r = tl.where(isnan(a), a, r)
    return r


# ---- gelu ------------------------------------------------------------------------------------------------------
@scalar_function
@triton.jit
def _gelu_erf(a, b, c):
    return 0.5 * a * (1.0 + tl.erf(a * 0.7071067811865476))


@scalar_function
@triton.jit
def _gelu_tanh(a, b, c):
    inner = 0.7978845608028654 * (a + 0.044715 * a * a * a)
    # 1 + tanh without cancellation for inner << 0 (the old 2 - 2/(e^(2 inner) + 1) lost it there)
    return 0.5 * a * hyperbolic.one_plus_tanh(inner)


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
    return ew.run(_gelu_tanh if approximate == "tanh" else _gelu_erf, [x], ew.compute_dtype(x.dtype), x.dtype)


@implement("aten::gelu.out", kind="triton", dtypes=FLOAT, supports=_gelu_supports)
def gelu_out(x, *, approximate="none", out):
    ew.run(_gelu_tanh if approximate == "tanh" else _gelu_erf, [x], ew.compute_dtype(x.dtype), x.dtype, out=out)
    return out


# ---- softplus --------------------------------------------------------------------------------------------------
@triton.jit
def _log1p_exp(z):
    # log1p(e) with e = exp(z), without log1p: log(u) - ((u - 1) - e) / u recovers the bits lost in 1 + e
    e = tl.exp(z)
    u = 1.0 + e
    r = tl.log(u) - ((u - 1.0) - e) / u
    return tl.where(u == 1.0, e, r)


@scalar_function
@triton.jit
def _softplus(a, b, c):
    # b carries beta, c carries threshold (scalar operands)
    z = a * b
    return tl.where(z > c, a, _log1p_exp(z) / b)


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
    return ew.run(_softplus, [x, float(beta), float(threshold)], ew.compute_dtype(x.dtype), x.dtype)


@implement("aten::softplus.out", kind="triton", dtypes=FLOAT, supports=_softplus_supports)
def softplus_out(x, beta=1, threshold=20, *, out):
    ew.run(_softplus, [x, float(beta), float(threshold)], ew.compute_dtype(x.dtype), x.dtype, out=out)
    return out
