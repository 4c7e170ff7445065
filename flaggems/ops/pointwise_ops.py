"""Pointwise ATen ops on the generic engine (see elementwise.py).

add/sub: a + alpha*b, a - alpha*b; mul: a*b; div: a/b (IEEE round-to-nearest division);
neg: -a; exp: e^a; rsqrt: 1/sqrt(a); sigmoid: 1/(1+e^-a); silu: a/(1+e^-a); where: c ? a : b.
Functional, ``.out`` and in-place overloads share one host function per op.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..registry import implement
from . import elementwise as ew

FLOAT = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
INT = frozenset({torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64})
NUMERIC = FLOAT | INT


# ---- the scalar functions (operands already in the compute dtype)
@triton.jit
def _add(a, b, c, p0):
    return a + b * p0


@triton.jit
def _add1(a, b, c, p0):
    return a + b


@triton.jit
def _sub(a, b, c, p0):
    return a - b * p0


@triton.jit
def _sub1(a, b, c, p0):
    return a - b


@triton.jit
def _mul(a, b, c, p0):
    return a * b


@triton.jit
def _div(a, b, c, p0):
    # div_rn: IEEE fp32 division like torch (plain `/` may lower to an approximate divide on GPU);
    # fp64 `/` is already correctly rounded
    if a.dtype == tl.float32:
        return tl.div_rn(a, b)
    else:
        return a / b


@triton.jit
def _neg(a, b, c, p0):
    return -a


@triton.jit
def _exp(a, b, c, p0):
    return tl.exp(a)


@triton.jit
def _rsqrt(a, b, c, p0):
    return 1.0 / tl.sqrt(a)


@triton.jit
def _sigmoid(a, b, c, p0):
    return 1.0 / (1.0 + tl.exp(-a))


@triton.jit
def _silu(a, b, c, p0):
    return a / (1.0 + tl.exp(-a))


@triton.jit
def _where(a, b, c, p0):
    return tl.where(a != 0, b, c)


# ---- host side
def _result_dtype(*xs, true_div=False):
    rt = torch.result_type(*xs) if len(xs) == 2 else xs[0].dtype
    if true_div and not (rt.is_floating_point or rt.is_complex):
        rt = torch.get_default_dtype()
    return rt


def _dense(x) -> bool:
    return isinstance(x, torch.Tensor) and x.is_contiguous() is False and x.numel() > 0 and \
        torch._debug_has_internal_overlap(x) == 0 and _non_overlapping_dense(x)


def _non_overlapping_dense(x) -> bool:
    # a permutation of a contiguous tensor: sorting strides gives contiguous strides
    dims = sorted(range(x.dim()), key=lambda d: x.stride(d), reverse=True)
    expect = 1
    for d in reversed(dims):
        if x.size(d) != 1 and x.stride(d) != expect:
            return False
        expect *= x.size(d)
    return True


def _alloc(shape, rt, device, operands):
    # follow the layout of a full-size permuted operand, as TensorIterator does
    for x in operands:
        if isinstance(x, torch.Tensor) and tuple(x.shape) == tuple(shape) and _dense(x):
            return torch.empty_like(x, dtype=rt)
    return torch.empty(shape, dtype=rt, device=device)


def _run(op, operands, rt, out=None, p0=0.0):
    device = ew.device_of(*operands)
    compute = ew.compute_dtype(rt)
    shape = torch.broadcast_shapes(*[ew.shape_of(x) for x in operands])
    ops = [ew.as_operand(x, compute, device) for x in operands]
    if isinstance(p0, float) and not compute.is_floating_point:
        p0 = int(p0)
    if out is None:
        out = _alloc(shape, rt, device, operands)
    return ew.launch(op, ops, out, compute, p0)


def _supports_binary(true_div=False, inplace=False, with_out=False, bool_ok=False):
    def supports(a, b, *rest, **kw):
        for x in (a, b):
            if not isinstance(x, torch.Tensor) and not ew.is_number(x):
                return "non-tensor operand"
        try:
            rt = _result_dtype(a, b, true_div=true_div)
        except Exception:
            return "type promotion"
        if rt not in NUMERIC and not (rt is torch.bool and bool_ok):
            return f"result dtype {rt}"
        alpha = kw.get("alpha", rest[0] if rest and not isinstance(rest[0], torch.Tensor) else 1)
        if isinstance(alpha, (complex, torch.Tensor)):
            return "alpha type"
        if inplace:
            if not torch.can_cast(rt, a.dtype) or a.dtype not in NUMERIC | ({torch.bool} if bool_ok else set()):
                return "in-place result dtype"
            return ew.out_ok(a, torch.broadcast_shapes(a.shape, ew.shape_of(b)), (b,))
        if with_out:
            out = kw.get("out")
            if out is None or out.dtype not in NUMERIC | ({torch.bool} if bool_ok else set()) \
                    or not torch.can_cast(rt, out.dtype):
                return "out dtype"
            return ew.out_ok(out, torch.broadcast_shapes(ew.shape_of(a), ew.shape_of(b)), (a, b))
        return None
    return supports


def _make_binary(base, op, op_alpha1=None, true_div=False, has_alpha=False, bool_ok=False):
    def functional(a, b, alpha=1):
        rt = _result_dtype(a, b, true_div=true_div)
        fn = op_alpha1 if (op_alpha1 is not None and alpha == 1) else op
        return _run(fn, [a, b], rt, p0=float(alpha) if has_alpha else 0.0)

    def out_variant(a, b, alpha=1, *, out):
        rt = _result_dtype(a, b, true_div=true_div)
        fn = op_alpha1 if (op_alpha1 is not None and alpha == 1) else op
        # compute in the promoted type, round once into out's dtype (torch's out= semantics)
        _run(fn, [a, b], rt, out=out, p0=float(alpha) if has_alpha else 0.0)
        return out

    def inplace(a, b, alpha=1):
        fn = op_alpha1 if (op_alpha1 is not None and alpha == 1) else op
        rt = _result_dtype(a, b, true_div=true_div)
        _run(fn, [a, b], rt, out=a, p0=float(alpha) if has_alpha else 0.0)
        return a

    # bool operands are fine when promotion leaves bool (mul only: bool*bool is logical and) or lifts them
    dts = NUMERIC | {torch.bool}
    names_f = [f"aten::{base}.Tensor", f"aten::{base}.Scalar"]
    implement(names_f, kind="triton", dtypes=dts, supports=_supports_binary(true_div, bool_ok=bool_ok))(functional)
    implement([f"aten::{base}.out"], kind="triton", dtypes=dts,
              supports=_supports_binary(true_div, with_out=True, bool_ok=bool_ok))(out_variant)
    implement([f"aten::{base}_.Tensor", f"aten::{base}_.Scalar"], kind="triton", dtypes=dts,
              supports=_supports_binary(true_div, inplace=True, bool_ok=bool_ok))(inplace)


_make_binary("add", _add, _add1, has_alpha=True)
_make_binary("sub", _sub, _sub1, has_alpha=True)
_make_binary("mul", _mul, bool_ok=True)


@triton.jit
def _rsub(a, b, c, p0):
    return b - a * p0


def _rsub_supports(a, b, alpha=1):
    return _supports_binary()(a, b, alpha=alpha)


@implement(["aten::rsub.Tensor", "aten::rsub.Scalar"], kind="triton", dtypes=NUMERIC, supports=_rsub_supports)
def rsub(a, b, alpha=1):
    """other - alpha * self"""
    return _run(_rsub, [a, b], _result_dtype(a, b), p0=float(alpha))
_make_binary("div", _div, true_div=True)


# ---- unary
def _supports_unary(inplace=False, with_out=False, floats_only=True):
    allowed = FLOAT if floats_only else NUMERIC

    def supports(a, *rest, **kw):
        if a.dtype not in allowed:
            return f"dtype {a.dtype}"
        if inplace:
            return ew.out_ok(a, a.shape)
        if with_out:
            out = kw.get("out")
            if out is None or out.dtype != a.dtype:
                return "out dtype"
            return ew.out_ok(out, a.shape, (a,))
        return None
    return supports


def _make_unary(base, op, floats_only=True, has_inplace=True):
    allowed = FLOAT if floats_only else NUMERIC

    def functional(a):
        return _run(op, [a], a.dtype)

    def out_variant(a, *, out):
        _run(op, [a], a.dtype, out=out)
        return out

    def inplace(a):
        _run(op, [a], a.dtype, out=a)
        return a

    implement([f"aten::{base}.default"], kind="triton", dtypes=allowed,
              supports=_supports_unary(floats_only=floats_only))(functional)
    implement([f"aten::{base}.out"], kind="triton", dtypes=allowed,
              supports=_supports_unary(with_out=True, floats_only=floats_only))(out_variant)
    if has_inplace:
        implement([f"aten::{base}_.default"], kind="triton", dtypes=allowed,
                  supports=_supports_unary(inplace=True, floats_only=floats_only))(inplace)


_make_unary("neg", _neg, floats_only=False)
_make_unary("exp", _exp)
_make_unary("rsqrt", _rsqrt)
_make_unary("sigmoid", _sigmoid)
_make_unary("silu", _silu)


# ---- where
def _where_dtype(a, b):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.result_type(a, b)
    # two Python scalars: torch gives the default dtype for floats, int64 for ints, bool for bools
    return torch.result_type(torch.tensor(a), b) if not isinstance(a, float) else torch.result_type(
        torch.tensor(a, dtype=torch.get_default_dtype()), b)


def _where_supports(cond, a, b, **kw):
    if not isinstance(cond, torch.Tensor) or cond.dtype is not torch.bool:
        return "condition must be a bool tensor"
    try:
        rt = _where_dtype(a, b)
    except Exception:
        return "type promotion"
    if rt not in NUMERIC | {torch.bool}:
        return f"result dtype {rt}"
    out = kw.get("out")
    if out is not None:
        if out.dtype != rt:
            return "out dtype"
        return ew.out_ok(out, torch.broadcast_shapes(cond.shape, ew.shape_of(a), ew.shape_of(b)), (cond, a, b))
    return None


@implement(["aten::where.self", "aten::where.ScalarSelf", "aten::where.ScalarOther", "aten::where.Scalar"],
           kind="triton", dtypes=NUMERIC | {torch.bool}, supports=_where_supports)
def where(cond, a, b):
    return _run(_where, [cond, a, b], _where_dtype(a, b))


@implement(["aten::where.self_out"], kind="triton", dtypes=NUMERIC | {torch.bool}, supports=_where_supports)
def where_out(cond, a, b, *, out):
    _run(_where, [cond, a, b], out.dtype, out=out)
    return out
