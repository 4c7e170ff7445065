"""Backward ATen ops of the activations (what autograd reaches in fine-tuning), on the pointwise engine.

With g the incoming gradient, x the forward input and y the forward output:

    sigmoid_backward(g, y)            = g (1 - y) y
    tanh_backward(g, y)               = g (1 - y^2)
    silu_backward(g, x)               = g s (1 + x (1 - s)),              s = sigmoid(x)
    gelu_backward(g, x, 'none')       = g (Phi(x) + x phi(x)),            Phi = (1 + erf(x/sqrt 2))/2,
                                                                          phi = exp(-x^2/2)/sqrt(2 pi)
    gelu_backward(g, x, 'tanh')       = g (0.5 (1 + tanh u) + 0.5 x sech^2(u) sqrt(2/pi) (1 + 3k x^2)),
                                                                          u = sqrt(2/pi)(x + k x^3), k = 0.044715
    softplus_backward(g, x, b, t)     = g if b x > t else g sigmoid(b x)
    threshold_backward(g, x, t)       = 0 if x <= t else g                (relu's backward, t = 0)

computed in fp32 for fp16/bf16 (torch's opmath) and rounded once; 1 + tanh and sech^2 without cancellation
(hyperbolic.py); softplus' sigmoid(b x) as 1/(1 + e^(-b x)) (torch's e^(b x)/(e^(b x) + 1) turns into NaN once
e^(b x) overflows under a large threshold). g and x must share a floating dtype, else the call stays native;
each op has its ``grad_input=`` out variant.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..registry import implement
from . import elementwise as ew
from . import hyperbolic
from .elementwise import FLOAT
from .pointwise_codegen import scalar_function


@scalar_function
@triton.jit
def _sigmoid_grad(g, y, c):
    return g * (1.0 - y) * y


@scalar_function
@triton.jit
def _tanh_grad(g, y, c):
    return g * (1.0 - y * y)


@scalar_function
@triton.jit
def _silu_grad(g, x, c):
    s = 1.0 / (1.0 + tl.exp(-x))
    return g * s * (1.0 + x * (1.0 - s))


@scalar_function
@triton.jit
def _gelu_erf_grad(g, x, c):
    cdf = 0.5 * (1.0 + tl.erf(x * 0.7071067811865476))
    pdf = tl.exp(-0.5 * x * x) * 0.3989422804014327
    return g * (cdf + x * pdf)


@scalar_function
@triton.jit
def _gelu_tanh_grad(g, x, c):
    x2 = x * x
    u = 0.7978845608028654 * (x + 0.044715 * x2 * x)
    left = 0.5 * hyperbolic.one_plus_tanh(u)
    right = 0.5 * x * hyperbolic.sech2(u) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x2)
    return g * (left + right)


@scalar_function
@triton.jit
def _softplus_grad(g, x, beta, threshold):
    z = x * beta
    return tl.where(z > threshold, g, g / (1.0 + tl.exp(-z)))


@scalar_function
@triton.jit
def _threshold_grad(g, x, t):
    # x <= t is False for NaN x: the gradient passes, as in torch
    return tl.where(x <= t, 0.0, g)


def _same_float(*ts) -> bool:
    return all(isinstance(t, torch.Tensor) for t in ts) and ts[0].dtype in FLOAT and \
        all(t.dtype == ts[0].dtype for t in ts)


def _reason(g, x, out=None, scalars=()):
    if not _same_float(g, x):
        return "grad and input dtypes differ or are not floating"
    for s in scalars:
        if not ew.is_number(s) or isinstance(s, (bool, complex)):
            return "scalar argument type"
    try:
        shape = torch.broadcast_shapes(g.shape, x.shape)
    except RuntimeError:
        return "shapes (torch raises)"
    if out is not None:
        if out.dtype != g.dtype:
            return "grad_input dtype"
        return ew.out_ok(out, shape, (g, x))
    return None


def _run(fn, g, x, out=None, extra=()):
    return ew.run(fn, [g, x, *extra], ew.compute_dtype(g.dtype), g.dtype, out=out)


# ---- sigmoid / tanh / silu ------------------------------------------------------------------------------------
def _simple(name, fn):
    @implement(f"aten::{name}.default", kind="triton", dtypes=FLOAT, supports=lambda g, x: _reason(g, x))
    def functional(g, x):
        return _run(fn, g, x)

    @implement(f"aten::{name}.grad_input", kind="triton", dtypes=FLOAT,
               supports=lambda g, x, *, grad_input: _reason(g, x, grad_input))
    def grad_input_variant(g, x, *, grad_input):
        _run(fn, g, x, grad_input)
        return grad_input

    functional.__name__ = functional.__qualname__ = name
    grad_input_variant.__name__ = grad_input_variant.__qualname__ = f"{name}_grad_input"


_simple("sigmoid_backward", _sigmoid_grad)
_simple("tanh_backward", _tanh_grad)
_simple("silu_backward", _silu_grad)


# ---- gelu -------------------------------------------------------------------------------------------------------
def _gelu_reason(g, x, approximate="none", grad_input=None):
    if approximate not in ("none", "tanh"):
        return f"approximate={approximate!r} (torch raises)"
    return _reason(g, x, grad_input)


def _gelu_fn(approximate):
    return _gelu_tanh_grad if approximate == "tanh" else _gelu_erf_grad


@implement("aten::gelu_backward.default", kind="triton", dtypes=FLOAT, supports=_gelu_reason)
def gelu_backward(g, x, *, approximate="none"):
    return _run(_gelu_fn(approximate), g, x)


@implement("aten::gelu_backward.grad_input", kind="triton", dtypes=FLOAT,
           supports=lambda g, x, *, approximate="none", grad_input: _gelu_reason(g, x, approximate, grad_input))
def gelu_backward_grad_input(g, x, *, approximate="none", grad_input):
    _run(_gelu_fn(approximate), g, x, grad_input)
    return grad_input


# ---- softplus / threshold (scalar parameters are kernel scalars) ------------------------------------------------
def _softplus_reason(g, x, beta=1, threshold=20, grad_input=None):
    return _reason(g, x, grad_input, (beta, threshold))


@implement("aten::softplus_backward.default", kind="triton", dtypes=FLOAT, supports=_softplus_reason)
def softplus_backward(g, x, beta=1, threshold=20):
    return _run(_softplus_grad, g, x, extra=(beta, threshold))


@implement("aten::softplus_backward.grad_input", kind="triton", dtypes=FLOAT,
           supports=lambda g, x, beta=1, threshold=20, *, grad_input: _softplus_reason(g, x, beta, threshold,
                                                                                      grad_input))
def softplus_backward_grad_input(g, x, beta=1, threshold=20, *, grad_input):
    _run(_softplus_grad, g, x, grad_input, (beta, threshold))
    return grad_input


def _threshold_reason(g, x, threshold, grad_input=None):
    return _reason(g, x, grad_input, (threshold,))


@implement("aten::threshold_backward.default", kind="triton", dtypes=FLOAT, supports=_threshold_reason)
def threshold_backward(g, x, threshold):
    return _run(_threshold_grad, g, x, extra=(threshold,))


@implement("aten::threshold_backward.grad_input", kind="triton", dtypes=FLOAT,
           supports=lambda g, x, threshold, *, grad_input: _threshold_reason(g, x, threshold, grad_input))
def threshold_backward_grad_input(g, x, threshold, *, grad_input):
    _run(_threshold_grad, g, x, grad_input, (threshold,))
    return grad_input
