"""The adversarial categories: each turns an op's valid base call into hostile variants.

Every generator takes (overload, dtype) and yields ``(label, Call)``; the label says what was done in words
and the call's source is the repro. Categories and what they probe:

- ``valid``        the base call itself, for every dtype (integer/bool inputs to float-only ops included);
- ``dim``          out-of-range dims (``ndim`` and ``-ndim-1``);
- ``scalar``       Python scalars that overflow an integer/half dtype, or are float/NaN where an int is needed;
- ``nonfinite``    NaN, +Inf, -Inf in each float operand and Python scalar; alpha=0 / beta=0 with a NaN operand;
- ``empty``        each size symbol set to 0;
- ``zero_stride``  an operand expanded from one row (stride 0);
- ``sizes``        every size 1, and odd sizes past typical block sizes;
- ``noncontig``    column-major and strided (offset, every-other-element) operands;
- ``overlap``      in-place on an expanded self, out= expanded, out= the same tensor as an input, out= partly
                   overlapping an input, out= of 0 elements (resized);
- ``device``       a ``meta`` operand mixed with CPU ones, a 0-dim operand where a tensor is taken;
- ``mixed_dtype``  a second operand of another dtype, an out= / in-place target that cannot hold the result.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch

from ...registry import entries
from .calls import SIZES, Call, build, dtype_src

CATEGORIES = ("valid", "dim", "scalar", "nonfinite", "empty", "zero_stride", "sizes", "noncontig", "overlap",
              "device", "mixed_dtype")

Gen = Iterator[Tuple[str, Call]]


def _schema(q):
    return entries()[q].schema


def _tensor_args(q) -> List[Tuple[int, str, bool]]:
    """(position, name, kwarg_only) of each plain Tensor operand (not out=)."""
    out = []
    for i, a in enumerate(_schema(q).arguments):
        if str(a.type) in ("Tensor", "Tensor?") and not (a.alias_info is not None and a.alias_info.is_write
                                                         and a.kwarg_only):
            out.append((i, a.name, a.kwarg_only))
    return out


def _out_args(q) -> List[str]:
    return [a.name for a in _schema(q).arguments if a.kwarg_only and a.alias_info is not None
            and a.alias_info.is_write]


def _inplace(q) -> bool:
    a = _schema(q).arguments
    return bool(a) and a[0].alias_info is not None and a[0].alias_info.is_write and not a[0].kwarg_only


def _get(call: Call, q, name) -> Optional[str]:
    try:
        return call.arg(name, _schema(q))
    except ValueError:
        return None


def _set(call: Call, q, name, expr) -> Call:
    return call.with_arg(name, expr, _schema(q))


def _present_tensors(call: Call, q):
    for pos, name, _ in _tensor_args(q):
        e = _get(call, q, name)
        if e is not None and e != "None":
            yield name, e


def _is_index(expr: str) -> bool:
    """An index / mask / offsets operand (never given float values)."""
    return any(k in expr for k in ("idx", "mask(", "torch.int", "offs"))


def _is_float_operand(expr: str, dt) -> bool:
    return not _is_index(expr) and dt.is_floating_point


# ----------------------------------------------------------------------------------------------------------------

def valid(q, dt) -> Gen:
    yield "base call", build(q, dt)


def dim(q, dt) -> Gen:
    base = build(q, dt)
    names = [a.name for a in _schema(q).arguments if a.name == "dim"]
    if not names:
        return
    expr = _get(base, q, "dim")
    fn, args, kwargs = base.evaluate()
    ref = next((x for x in list(args) + list(kwargs.values()) if isinstance(x, torch.Tensor)), None)
    if ref is None and args and isinstance(args[0], (list, tuple)) and args[0]:
        ref = args[0][0]
    if ref is None:
        return
    nd = max(1, ref.dim()) + (1 if entries()[q].base == "stack" else 0)
    listy = expr is not None and expr.startswith("[") or str(next(a.type for a in _schema(q).arguments
                                                                  if a.name == "dim")).startswith("List")
    for d in (nd, -nd - 1):
        v = f"[{d}]" if listy else str(d)
        yield f"dim={v} on a {nd}-d operand", _set(base, q, "dim", v)


_OVERFLOW = {torch.int8: 300, torch.uint8: -1, torch.int16: 70000, torch.int32: 2 ** 31 + 5,
             torch.int64: 2 ** 63, torch.float16: 1e6, torch.bool: 2}


def scalar(q, dt) -> Gen:
    base = build(q, dt)
    from .calls import _is_scalar

    names = [a.name for a in _schema(q).arguments if _is_scalar(a)]
    for name in names:
        cur = _get(base, q, name)
        if entries()[q].base == "arange" and dt in (torch.int32, torch.int64, torch.float16):
            continue    # arange's scalars set the length: 2**31 elements would only test the allocator
        if dt in _OVERFLOW:
            yield f"{name}={_OVERFLOW[dt]} overflows {dtype_src(dt)}", _set(base, q, name, repr(_OVERFLOW[dt]))
        if not dt.is_floating_point:
            yield f"{name}=0.5 (float) for {dtype_src(dt)}", _set(base, q, name, "0.5")
            yield f"{name}=nan for {dtype_src(dt)}", _set(base, q, name, "nan")
        if cur is None and name in ("alpha", "beta") and dt.is_floating_point:
            yield f"{name}=True (bool) for {dtype_src(dt)}", _set(base, q, name, "True")


def nonfinite(q, dt) -> Gen:
    if not dt.is_floating_point:
        return
    base = build(q, dt)
    from .calls import _is_scalar

    for name, e in _present_tensors(base, q):
        if not _is_float_operand(e, dt) or e.startswith("["):
            continue
        for v, where in (("nan", "first"), ("inf", "middle"), ("-inf", "last")):
            yield f"{v} at the {where} element of {name}", _set(base, q, name, f"with_value({e}, {v}, {where!r})")
    for a in _schema(q).arguments:
        if _is_scalar(a) and a.name not in ("alpha", "beta"):
            for v in ("nan", "inf", "-inf"):
                yield f"{a.name}={v}", _set(base, q, a.name, v)
    names = [a.name for a in _schema(q).arguments]
    tensors = dict(_present_tensors(base, q))
    # alpha == 0 ignores the product and beta == 0 ignores self (torch's documented rule), NaN included
    if "alpha" in names:
        prod = [n for n in tensors if n != "self" and not _is_index(tensors[n])]
        if prod:
            n0 = prod[0]
            yield f"alpha=0 with NaN in {n0}", _set(_set(base, q, n0, f"with_value({tensors[n0]}, nan, 'all')"),
                                                    q, "alpha", "0")
    if "beta" in names and "self" in tensors:
        yield "beta=0 with NaN in self", _set(_set(base, q, "self", f"with_value({tensors['self']}, nan, 'all')"),
                                              q, "beta", "0")


def _used_sizes(q, dt) -> List[str]:
    probe = build(q, dt, {k: 1000 + i for i, k in enumerate(SIZES)}, outs=False)   # source only, never run
    src = probe.source()
    return [k for i, k in enumerate(SIZES) if str(1000 + i) in src]


def empty(q, dt) -> Gen:
    for k in _used_sizes(q, dt):
        yield f"{k}=0", build(q, dt, dict(SIZES, **{k: 0}))


def sizes(q, dt) -> Gen:
    if _used_sizes(q, dt):
        yield "all sizes 1", build(q, dt, {k: 1 for k in SIZES})
        yield "odd sizes past block edges (M=17, N=129, K=33, B=3)", build(q, dt, dict(M=17, N=129, K=33, B=3))


def zero_stride(q, dt) -> Gen:
    base = build(q, dt)
    for name, e in _present_tensors(base, q):
        if e.startswith("["):
            continue
        yield f"{name} expanded (stride 0 along dim 0)", _set(base, q, name, f"expanded({e})")


def noncontig(q, dt) -> Gen:
    base = build(q, dt)
    tensors = [(n, e) for n, e in _present_tensors(base, q) if not e.startswith("[")]
    for name, e in tensors:
        yield f"{name} column-major", _set(base, q, name, f"transposed({e})")
    if tensors:
        c = base
        for name, e in tensors:
            c = _set(c, q, name, f"strided({e})")
        for o in _out_args(q):
            c = _set(c, q, o, f"strided({_get(base, q, o)})")
        yield "every operand strided (offset 1, step 2)", c


def overlap(q, dt) -> Gen:
    base = build(q, dt)
    tensors = [(n, e) for n, e in _present_tensors(base, q) if not e.startswith("[")]
    _, args, kwargs = base.evaluate()
    by_name = dict(zip([a.name for a in _schema(q).arguments], args)) | kwargs
    # where torch does not refuse an overlap, which aliased write lands last is unspecified: then only
    # "raises or not" is compared (values_defined=False)
    if _inplace(q) and tensors:
        name, e = tensors[0]
        yield "in-place on an expanded (self-overlapping) self", replace(_set(base, q, name, f"expanded({e})"),
                                                                          values_defined=False)
        for other, oe in tensors[1:]:
            t = by_name.get(other)
            if not isinstance(t, torch.Tensor) or t.dtype != by_name[name].dtype:
                continue
            # one buffer: self is elements 1.., the other operand elements 0.. (shifted by one element)
            setup = (f"_self, _other = {e}, {oe}",
                     "_buf = torch.zeros(_self.numel() + 1, dtype=_self.dtype)",
                     "_buf[1:] = _self.reshape(-1)",
                     "_self = _buf[1:].view(_self.shape)",
                     "_other = _buf[:_other.numel()].view(_other.shape)")
            c = replace(base, setup=base.setup + setup, values_defined=False)
            yield f"in-place: {other} partly overlaps self", _set(_set(c, q, name, "_self"), q, other, "_other")
    for o in _out_args(q)[:1]:
        oe = _get(base, q, o)
        if oe.startswith("empty_out("):
            continue      # the functional twin could not say the result's shape: nothing to overlap with
        yield f"{o}= expanded (self-overlapping)", replace(_set(base, q, o, f"expanded({oe})"), values_defined=False)
        yield f"{o}= of 0 elements (resized by the op)", _set(base, q, o, f"empty_out({oe}.dtype)")
        if not tensors:
            continue
        name, e = tensors[0]
        t, out = by_name.get(name), by_name.get(o)
        if not isinstance(t, torch.Tensor) or not isinstance(out, torch.Tensor):
            continue
        if t.dtype == out.dtype and tuple(t.shape) == tuple(out.shape):
            c = replace(base, setup=base.setup + (f"_x = {e}",))
            yield f"{o}= is {name} itself", _set(_set(c, q, name, "_x"), q, o, "_x")
        if t.dtype == out.dtype:
            setup = (f"_x, _out = {e}, {oe}",
                     "_buf = torch.zeros(max(_x.numel(), _out.numel()) + 1, dtype=_x.dtype)",
                     "_buf[:_x.numel()] = _x.reshape(-1)",
                     "_x = _buf[:_x.numel()].view(_x.shape)",
                     "_out = _buf[1:_out.numel() + 1].view(_out.shape)")
            c = replace(base, setup=base.setup + setup, values_defined=False)
            yield f"{o}= partly overlaps {name} (shifted by one element)", _set(_set(c, q, name, "_x"), q, o, "_out")


def device(q, dt) -> Gen:
    base = build(q, dt)
    tensors = [(n, e) for n, e in _present_tensors(base, q) if not e.startswith("[")]
    for i, (name, e) in enumerate(tensors):
        yield f"{name} on the meta device", _set(base, q, name, f"meta({e})")
        if i > 0:
            yield f"{name} a 0-dim tensor", _set(base, q, name, f"{e}.reshape(-1)[0].clone()")
            yield f"{name} a 0-dim meta tensor", _set(base, q, name, f"meta({e}.reshape(-1)[0].clone())")


def _another(dt):
    if dt is torch.float32:
        return torch.bfloat16
    if dt.is_floating_point:
        return torch.float32
    if dt is torch.bool:
        return torch.int32
    return torch.float32


def mixed_dtype(q, dt) -> Gen:
    base = build(q, dt)
    tensors = [(n, e) for n, e in _present_tensors(base, q) if not e.startswith("[")]
    for name, e in tensors[1:]:
        if _is_index(e):
            continue
        od = _another(dt)
        yield f"{name} as {dtype_src(od)}", _set(base, q, name, f"{e}.to({dtype_src(od)})")
    if tensors and _inplace(q):
        name, e = tensors[0]
        if dt.is_floating_point:
            yield f"in-place into an int32 {name}", _set(base, q, name, f"{e}.to(torch.int32)")
    for o in _out_args(q)[:1]:
        oe = _get(base, q, o)
        target = torch.int32 if dt.is_floating_point else torch.bool
        yield f"{o}= of {dtype_src(target)}", _set(base, q, o, f"{oe}.to({dtype_src(target)})")
        if dt is torch.float32:
            yield f"{o}= of torch.float16 (a narrower float)", _set(base, q, o, f"{oe}.to(torch.float16)")


GENERATORS: Dict[str, Callable[..., Gen]] = {
    "valid": valid, "dim": dim, "scalar": scalar, "nonfinite": nonfinite, "empty": empty,
    "zero_stride": zero_stride, "sizes": sizes, "noncontig": noncontig, "overlap": overlap, "device": device,
    "mixed_dtype": mixed_dtype,
}

# dtypes each category runs at (the full dtype sweep is the "valid" category's job)
CATEGORY_DTYPES = {
    "valid": None,   # every dtype of calls.dtypes_for
    "dim": (torch.float32,),
    "scalar": (torch.int8, torch.uint8, torch.int32, torch.int64, torch.bool, torch.float16),
    "nonfinite": (torch.float32, torch.bfloat16, torch.float16),
    "empty": (torch.float32, torch.int32),
    "zero_stride": (torch.float32, torch.int32),
    "sizes": (torch.float32, torch.bfloat16),
    "noncontig": (torch.float32, torch.int32),
    "overlap": (torch.float32, torch.int32),
    "device": (torch.float32,),
    "mixed_dtype": (torch.float32, torch.int32, torch.bfloat16),
}
