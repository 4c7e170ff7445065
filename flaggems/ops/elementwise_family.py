"""Elementwise family maker: one declaration gives an op's functional, ``.out`` and in-place ATen overloads.

In the style of torch._refs' ``_make_elementwise_unary_reference`` / ``_make_elementwise_binary_reference``: an
op is declared by its scalar function ``f(a, b, c)`` (a ``@triton.jit`` function on operands already in the
compute dtype; operands an op does not have repeat ``a``), its type-promotion kind, the dtypes it serves and an
optional extra predicate::

    @elementwise("eq", ALWAYS_BOOL, arity=2, dtypes=ALL, overloads=TENSOR_SCALAR_OUTS)
    @triton.jit
    def _eq(a, b, c):
        return a == b

    out[i] = f(a[i], b[i]) computed in ``compute``, rounded to the result dtype, then to out's dtype.

Type promotion (kinds named after torch._prims_common.ELEMENTWISE_TYPE_PROMOTION_KIND; opmath(t) is fp32 for
fp16/bf16 and t otherwise):

    DEFAULT       result = torch.result_type(operands)                      compute = opmath(result)
    INT_TO_FLOAT  result = DEFAULT's, integer/bool -> the default float     compute = opmath(result)
    ALWAYS_BOOL   result = bool                                             compute = opmath(DEFAULT's result)
    INTEGRAL      result = DEFAULT's, which must be integer or bool         compute = result

Overloads: ``functional`` overloads of ``name``, ``out`` overloads of ``name`` (out= keyword), ``inplace``
overloads of ``name_``; ``alpha=True`` adds torch's ``alpha`` scalar (the third operand ``c``, so an fp64 op
gets an fp64 alpha; ``unit_alpha`` is the scalar function used when alpha == 1). ``out_cast=True`` lets a
unary op write an out= / in-place tensor of any dtype its result casts to (torch's float ops such as exp and
sqrt, and logical_not); other unary ops need out's dtype to be the result's.

The supports predicate, in this order (the first failing check is the reason the call goes native):
operands are tensors or numbers; every tensor operand's dtype is in ``dtypes``; the promotion succeeds; the
result dtype is in ``results`` and the compute dtype is one the engine has; alpha is a number torch accepts
for that result (no float alpha for integers, no bool alpha for non-bool results, no alpha overflowing the
result dtype: torch raises, so the native kernel says so); ``extra(*operands)``; out= must hold the result
dtype exactly (unary without ``out_cast``) or one it casts to, and an in-place self likewise; out / self must
be writable without resizing or partial overlap (``out_ok``).

Each declared op is kept in ``FAMILIES`` by name with its scalar functions, and its scalar functions are
registered with the kernel generator (pointwise_codegen.py) under the op's name (``<name>_unit`` for
``unit_alpha``), which names the generated kernels ``pointwise_<name>_<operands>``.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch

from ..registry import implement
from . import elementwise as ew
from . import pointwise_codegen as codegen
from .scalar_checks import overflow_reason, overflows


class Promotion(enum.Enum):
    DEFAULT = "default"
    INT_TO_FLOAT = "int_to_float"
    ALWAYS_BOOL = "always_bool"
    INTEGRAL = "integral"


DEFAULT, INT_TO_FLOAT, ALWAYS_BOOL, INTEGRAL = Promotion


def result_type(*operands) -> torch.dtype:
    """torch.result_type of one or two operands (a single operand keeps its dtype)."""
    return torch.result_type(*operands) if len(operands) == 2 else operands[0].dtype


def promote(kind: Promotion, *operands) -> Tuple[torch.dtype, torch.dtype]:
    """(result dtype, compute dtype) of ``operands`` under ``kind``; raises where torch's promotion fails."""
    rt = result_type(*operands)
    if kind is ALWAYS_BOOL:
        return torch.bool, ew.compute_dtype(rt)
    if kind is INT_TO_FLOAT and not (rt.is_floating_point or rt.is_complex):
        rt = torch.get_default_dtype()
    if kind is INTEGRAL and rt not in ew.INT | ew.BOOL:
        raise TypeError("bitwise ops need integer or bool operands")
    return rt, ew.compute_dtype(rt)


@dataclass(frozen=True)
class Overloads:
    functional: Tuple[str, ...] = ("default",)
    out: Tuple[str, ...] = ("out",)
    inplace: Tuple[str, ...] = ("default",)


UNARY = Overloads()
TENSOR_SCALAR = Overloads(("Tensor", "Scalar"), ("out",), ("Tensor", "Scalar"))
TENSOR_SCALAR_OUTS = Overloads(("Tensor", "Scalar"), ("Tensor_out", "Scalar_out"), ("Tensor", "Scalar"))
# bitwise ops also take a Python number first (bitwise_and(5, t))
SCALAR_TENSOR_OUTS = Overloads(("Tensor", "Scalar", "Scalar_Tensor"), ("Tensor_out", "Scalar_out", "Scalar_Tensor_out"),
                               ("Tensor", "Scalar"))


@dataclass(frozen=True)
class ElementwiseOp:
    """One declared op: its name, scalar function(s) and the rules its overloads follow."""
    name: str
    scalar: Callable                    # the @triton.jit scalar function
    promotion: Promotion
    arity: int
    dtypes: frozenset
    results: frozenset
    overloads: Overloads
    alpha: bool = False
    unit_alpha: Optional[Callable] = None
    extra: Optional[Callable] = None
    out_cast: bool = False

    def scalar_for(self, alpha) -> Callable:
        return self.unit_alpha if (self.unit_alpha is not None and alpha == 1) else self.scalar

    # ---- the supports predicate of each variant
    def reason(self, args, kw, variant: str) -> Optional[str]:
        ops = args[:self.arity]
        for x in ops:
            if not isinstance(x, torch.Tensor) and not ew.is_number(x):
                return "non-tensor operand"
            if isinstance(x, torch.Tensor) and x.dtype not in self.dtypes:
                return f"dtype {x.dtype}"
        try:
            rt, ct = promote(self.promotion, *ops)
        except Exception:
            return "type promotion"
        if rt not in self.results or ct not in ew.ALL:
            return f"result dtype {rt}"
        if self.alpha:
            r = _alpha_reason(self._alpha(args, kw), rt)
            if r:
                return r
        if self.extra is not None:
            r = self.extra(*ops)
            if r:
                return r
        if variant == "out":
            out = kw.get("out")
            if out is None or not self._holds(rt, out.dtype):
                return "out dtype"
            return ew.out_ok(out, torch.broadcast_shapes(*[ew.shape_of(x) for x in ops]), ops)
        if variant == "inplace":
            a, rest = ops[0], ops[1:]
            if not self._holds(rt, a.dtype):
                return "in-place dtype" if self.arity == 1 else "in-place result dtype"
            return ew.out_ok(a, torch.broadcast_shapes(a.shape, *[ew.shape_of(x) for x in rest]), rest)
        return None

    def _holds(self, rt, dt) -> bool:
        # most unary ops write their own dtype only; binary ops and torch's unary float ops take any dtype the
        # result casts to (computed in the result dtype, then cast: TensorIterator's cast_common_dtype_to_outputs)
        return dt == rt if (self.arity == 1 and not self.out_cast) else torch.can_cast(rt, dt)

    def _alpha(self, args, kw):
        rest = args[self.arity:]
        return kw.get("alpha", rest[0] if rest and not isinstance(rest[0], torch.Tensor) else 1)

    # ---- the implementations
    def _run(self, args, kw, out=None):
        ops = list(args[:self.arity])
        rt, ct = promote(self.promotion, *ops)
        alpha = self._alpha(args, kw) if self.alpha else 1
        fn = self.scalar_for(alpha)
        if fn is not self.unit_alpha and self.alpha:
            ops.append(alpha)
        return ew.run(fn, ops, ct, rt, out=out)

    def functional(self, *args, **kw):
        return self._run(args, kw)

    def out_variant(self, *args, out, **kw):
        self._run(args, kw, out=out)
        return out

    def inplace(self, *args, **kw):
        self._run(args, kw, out=args[0])
        return args[0]


def _alpha_reason(alpha, rt: torch.dtype) -> Optional[str]:
    """Why torch refuses ``alpha`` for result dtype ``rt`` (it raises: the native kernel says so), else None."""
    if isinstance(alpha, (complex, torch.Tensor)) or not ew.is_number(alpha):
        return "alpha type"
    if isinstance(alpha, bool):
        return None if rt is torch.bool else "boolean alpha with a non-bool result (torch raises)"
    if isinstance(alpha, float) and not (rt.is_floating_point or rt.is_complex):
        return "floating alpha with integral inputs (torch raises)"
    if overflows(alpha, rt):
        return "alpha " + overflow_reason(alpha, rt)
    return None


FAMILIES: Dict[str, ElementwiseOp] = {}


def _bind(op: ElementwiseOp, variant: str, fn_name: str, module: str):
    method = {"functional": op.functional, "out": op.out_variant, "inplace": op.inplace}[variant]

    def impl(*args, **kw):
        return method(*args, **kw)

    def supports(*args, **kw):
        return op.reason(args, kw, variant)

    # named like the ATen overload they serve, in the declaring module (for `python -m flaggems ops --where`)
    impl.__name__ = impl.__qualname__ = fn_name
    impl.__module__ = module
    return impl, supports


def elementwise_op(name: str, scalar, promotion: Promotion, *, arity: int, dtypes, results=ew.ALL,
                   extra: Optional[Callable] = None, out_cast: bool = False) -> ElementwiseOp:
    """An op variant with the family's promotion / supports / run logic but no ATen overloads of its own (e.g.
    div's rounding modes, served by hand-written overloads); its scalar function is registered as ``name``."""
    codegen.register(scalar, name)
    return ElementwiseOp(name, scalar, promotion, arity, frozenset(dtypes), frozenset(results), Overloads((), (), ()),
                         extra=extra, out_cast=out_cast)


def elementwise(name: str, promotion: Promotion, *, arity: int, dtypes, results=ew.ALL,
                overloads: Overloads = UNARY, alpha: bool = False, unit_alpha: Optional[Callable] = None,
                extra: Optional[Callable] = None, out_cast: bool = False):
    """Decorator over a scalar function: declare ``name``'s overloads (see the module docstring)."""
    def deco(scalar):
        if name in FAMILIES:
            raise ValueError(f"elementwise op {name!r} declared twice")
        op = ElementwiseOp(name, scalar, promotion, arity, frozenset(dtypes), frozenset(results), overloads,
                           alpha, unit_alpha, extra, out_cast)
        codegen.register(scalar, name)
        if unit_alpha is not None:
            codegen.register(unit_alpha, f"{name}_unit")
        FAMILIES[name] = op
        module = scalar.fn.__module__
        for variant, base, suffix in (("functional", name, ""), ("out", name, "_out"), ("inplace", f"{name}_", "")):
            names = [f"aten::{base}.{o}" for o in getattr(overloads, variant)]
            if names:
                impl, supports = _bind(op, variant, f"{base}{suffix}", module)
                # operands may be Python numbers in any position (torch.add(2, t) reaches add.Tensor that way)
                implement(names, kind="triton", dtypes=op.dtypes, supports=supports, numbers=True)(impl)
        return scalar
    return deco
