"""Valid base calls ("seeds") for every registered ATen overload, built from its schema plus a small spec.

A :class:`Call` is source code in the language of :mod:`.inputs` (seeded builders), so it prints as a repro.
The spec for an op family names only what the schema cannot tell: shapes that must agree (mm's K), index
ranges, positive domains, the fill value. Sizes are symbols (M, N, K, B) so the empty / size-1 / odd-size
categories rebuild the same call with other sizes and every operand stays consistent.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch

from ...registry import entries, op_schema
from .inputs import NAMESPACE

SIZES = {"M": 5, "N": 7, "K": 3, "B": 2}

INT_DTYPES = (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)
FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + (torch.bool,)


class NoSeed(LookupError):
    """No base call is known for this overload (reported as a coverage gap, never silently dropped)."""


@dataclass(frozen=True)
class Call:
    op: str                                  # canonical overload, "aten::add.Tensor"
    args: Tuple[str, ...]
    kwargs: Tuple[Tuple[str, str], ...] = ()
    setup: Tuple[str, ...] = ()
    reduce_len: int = 1                      # terms summed per output element (scales atol)
    dim_of: Optional[str] = None             # argument holding the sort/topk dim (tie-tolerant index check)
    values_defined: bool = True              # False: aliased writes make the values unspecified (compare raising)

    @property
    def fn_source(self) -> str:
        ns, rest = self.op.split("::")
        base, overload = rest.split(".")
        return f"torch.ops.{ns}.{base}.{overload}"

    def source(self) -> str:
        parts = list(self.args) + [f"{k}={v}" for k, v in self.kwargs]
        return "\n".join(list(self.setup) + [f"{self.fn_source}({', '.join(parts)})"])

    def with_arg(self, name_or_pos, expr: str, schema=None) -> "Call":
        """Replace (or add) one argument, by position or by schema name."""
        if isinstance(name_or_pos, int):
            args = list(self.args)
            args[name_or_pos] = expr
            return replace(self, args=tuple(args))
        kw = dict(self.kwargs)
        if schema is not None:
            names = [a.name for a in schema.arguments]
            if name_or_pos in names:
                i = names.index(name_or_pos)
                if i < len(self.args) and not schema.arguments[i].kwarg_only:
                    return self.with_arg(i, expr)
        kw[name_or_pos] = expr
        return replace(self, kwargs=tuple(kw.items()))

    def arg(self, name: str, schema) -> Optional[str]:
        names = [a.name for a in schema.arguments]
        i = names.index(name)
        if i < len(self.args) and not schema.arguments[i].kwarg_only:
            return self.args[i]
        return dict(self.kwargs).get(name)

    def sort_dim(self) -> int:
        """The dim a sort/topk call works along (default -1)."""
        e = self.arg("dim", op_schema(self.op))
        return -1 if e is None else int(eval(e, dict(NAMESPACE)))

    def evaluate(self):
        """(fn, args, kwargs): fresh tensors every time (run the setup, evaluate each argument)."""
        ns = dict(NAMESPACE)
        for line in self.setup:
            exec(line, ns)
        fn = eval(self.fn_source, ns)
        args = [eval(a, ns) for a in self.args]
        kwargs = {k: eval(v, ns) for k, v in self.kwargs}
        return fn, args, kwargs


def dtype_src(dt: torch.dtype) -> str:
    return str(dt)            # "torch.float32"


def fill_value(dt: torch.dtype) -> str:
    if dt is torch.bool:
        return "True"
    return "2.5" if dt.is_floating_point else "3"


def scalar_value(dt: torch.dtype) -> str:
    if dt is torch.bool:
        return "True"
    return "1.5" if dt.is_floating_point else "2"


def _other_dtype(dt: torch.dtype) -> str:
    if dt is torch.float16:
        return "torch.float32"
    if dt.is_floating_point:
        return "torch.float16"
    return "torch.float32"


Template = Union[str, Callable[[torch.dtype, dict], Optional[str]]]

_T = "rand(({M}, {N}), {dt}, seed=1)"
_P = "pos(({M}, {N}), {dt}, seed=1)"
_ROW = "rand(({N},), {dt}, seed=2)"
_MASK = "mask(({M}, {N}), seed=3)"

# per op base (the in-place base "add_" uses "add"): argument name -> template; "_reduce" -> reduce length
SPECS: Dict[str, Dict[str, Template]] = {
    "log": {"self": _P}, "sqrt": {"self": _P}, "rsqrt": {"self": _P}, "reciprocal": {"self": _P},
    "_to_copy": {"dtype": lambda dt, s: _other_dtype(dt)},
    "copy_": {"src": "rand(({M}, {N}), {dt}, seed=2)"},
    "fill_": {"value": lambda dt, s: fill_value(dt)},
    "fill_.Tensor": {"value": lambda dt, s: f"torch.tensor({fill_value(dt)}, dtype={dtype_src(dt)})"},
    "add": {"other": _ROW}, "sub": {"other": _ROW}, "mul": {"other": _ROW}, "rsub": {"other": _ROW},
    "div": {"other": "pos(({N},), {dt}, seed=2)"}, "floor_divide": {"other": "pos(({N},), {dt}, seed=2)"},
    "maximum": {"other": _ROW}, "minimum": {"other": _ROW},
    "eq": {"other": _ROW}, "ne": {"other": _ROW}, "lt": {"other": _ROW}, "le": {"other": _ROW},
    "gt": {"other": _ROW}, "ge": {"other": _ROW},
    "logical_and": {"other": _ROW}, "logical_or": {"other": _ROW},
    "bitwise_and": {"other": _ROW}, "bitwise_or": {"other": _ROW}, "bitwise_xor": {"other": _ROW},
    "pow": {"exponent": lambda dt, s: "2.5" if dt.is_floating_point else "2"},
    "pow.Tensor_Tensor": {"exponent": "rand(({M}, {N}), {dt}, seed=2, low=0, high=3)"},
    "clamp": {"min": "-1", "max": "1"},
    "clamp.Tensor": {"min": "rand(({N},), {dt}, seed=2, low=-2, high=0)", "max": "rand(({N},), {dt}, seed=3, low=0, high=2)"},
    "clamp_min": {"min": "0"}, "clamp_max": {"max": "0"},
    "clamp_min.Tensor": {"min": _ROW}, "clamp_max.Tensor": {"max": _ROW},
    "where": {"condition": _MASK, "self": _T, "other": _ROW},
    "where.Scalar": {"condition": _MASK, "self": lambda dt, s: scalar_value(dt), "other": "-2"},
    "where.ScalarSelf": {"condition": _MASK, "self": lambda dt, s: scalar_value(dt)},
    "where.ScalarOther": {"condition": _MASK, "other": lambda dt, s: scalar_value(dt)},
    "masked_fill": {"mask": _MASK, "value": lambda dt, s: fill_value(dt)},
    "masked_fill.Tensor": {"mask": _MASK, "value": lambda dt, s: f"torch.tensor({fill_value(dt)}, dtype={dtype_src(dt)})"},
    # reductions
    "all": {"dim": "1"}, "any": {"dim": "1"}, "all.dims": {"dim": "[1]"}, "any.dims": {"dim": "[1]"},
    "amax": {"dim": "[1]", "_reduce": "{N}"}, "amin": {"dim": "[1]", "_reduce": "{N}"},
    "aminmax": {"dim": "1"}, "argmax": {"dim": "1"}, "argmin": {"dim": "1"},
    "max": {"dim": "1"}, "min": {"dim": "1"},
    "div": {"rounding_mode": "'floor'"},
    "mean": {"dim": "[1]", "_reduce": "{M}*{N}"}, "sum": {"dim": "[1]", "_reduce": "{M}*{N}"},
    "cumsum": {"dim": "1", "_reduce": "{N}"},
    "_softmax": {"dim": "1", "half_to_float": "False", "_reduce": "{N}"},
    "_log_softmax": {"dim": "1", "half_to_float": "False", "_reduce": "{N}"},
    "sort": {"_dim_of": "dim"}, "sort.stable": {"stable": "True"}, "sort.values_stable": {"stable": "True"},
    "topk": {"k": "min(3, {N})", "_dim_of": "dim"},
    "bincount": {"self": "rand(({M}*{N},), {dt}, seed=1, low=0, high={N})"},
    "histc": {"bins": "4", "min": "-2", "max": "2"},
    "isin": {"elements": _T, "test_elements": "rand(({K},), {dt}, seed=2)", "element": "1", "test_element": "1"},
    # matmul family
    "mm": {"self": "rand(({M}, {K}), {dt}, seed=1)", "mat2": "rand(({K}, {N}), {dt}, seed=2)", "_reduce": "{K}"},
    "bmm": {"self": "rand(({B}, {M}, {K}), {dt}, seed=1)", "mat2": "rand(({B}, {K}, {N}), {dt}, seed=2)",
            "_reduce": "{K}"},
    "addmm": {"self": "rand(({N},), {dt}, seed=3)", "mat1": "rand(({M}, {K}), {dt}, seed=1)",
              "mat2": "rand(({K}, {N}), {dt}, seed=2)", "_reduce": "{K}"},
    "addbmm": {"self": "rand(({M}, {N}), {dt}, seed=3)", "batch1": "rand(({B}, {M}, {K}), {dt}, seed=1)",
               "batch2": "rand(({B}, {K}, {N}), {dt}, seed=2)", "_reduce": "{B}*{K}"},
    "baddbmm": {"self": "rand(({B}, {M}, {N}), {dt}, seed=3)", "batch1": "rand(({B}, {M}, {K}), {dt}, seed=1)",
                "batch2": "rand(({B}, {K}, {N}), {dt}, seed=2)", "_reduce": "{K}"},
    "addmv": {"self": "rand(({M},), {dt}, seed=3)", "mat": "rand(({M}, {K}), {dt}, seed=1)",
              "vec": "rand(({K},), {dt}, seed=2)", "_reduce": "{K}"},
    "mv": {"self": "rand(({M}, {K}), {dt}, seed=1)", "vec": "rand(({K},), {dt}, seed=2)", "_reduce": "{K}"},
    "dot": {"self": "rand(({N},), {dt}, seed=1)", "tensor": "rand(({N},), {dt}, seed=2)", "_reduce": "{N}"},
    "vdot": {"self": "rand(({N},), {dt}, seed=1)", "other": "rand(({N},), {dt}, seed=2)", "_reduce": "{N}"},
    # torch's kernel wants 16-byte strides: K and N in multiples of 8
    "_grouped_mm": {"self": "rand(({M}, 8*{K}), {dt}, seed=1)", "mat2": "rand(({B}, 8*{K}, 8*{N}), {dt}, seed=2)",
                    "offs": "torch.tensor([min(2, {M}), {M}], dtype=torch.int32)", "_reduce": "8*{K}"},
    "_scaled_mm": {"self": "rand(({M}, 16), {dt}, seed=1)", "mat2": "rand(({N}, 16), {dt}, seed=2).t()",
                   "scale_a": "torch.tensor(0.5)", "scale_b": "torch.tensor(2.0)",
                   "out_dtype": "torch.float32", "_reduce": "16"},
    "_scaled_dot_product_flash_attention_for_cpu": {
        "query": "rand(({B}, 2, {M}, 8), {dt}, seed=1)", "key": "rand(({B}, 2, {N}, 8), {dt}, seed=2)",
        "value": "rand(({B}, 2, {N}, 8), {dt}, seed=3)", "_reduce": "{N}*8"},
    "_scaled_dot_product_flash_attention": {
        "query": "rand(({B}, 2, {M}, 8), {dt}, seed=1)", "key": "rand(({B}, 2, {N}, 8), {dt}, seed=2)",
        "value": "rand(({B}, 2, {N}, 8), {dt}, seed=3)", "_reduce": "{N}*8"},
    "_scaled_dot_product_efficient_attention": {
        "query": "rand(({B}, 2, {M}, 8), {dt}, seed=1)", "key": "rand(({B}, 2, {N}, 8), {dt}, seed=2)",
        "value": "rand(({B}, 2, {N}, 8), {dt}, seed=3)", "attn_bias": "None", "compute_log_sumexp": "False",
        "_reduce": "{N}*8"},
    # indexing
    "gather": {"dim": "1", "index": "idx(({M}, {K}), {N}, seed=2)"},
    "scatter": {"dim": "1", "index": "uidx_rows(({M}, {K}), {N}, seed=2)", "src": "rand(({M}, {K}), {dt}, seed=3)",
                "value": lambda dt, s: fill_value(dt), "reduce": "'add'"},
    "scatter_add": {"dim": "1", "index": "idx(({M}, {K}), {N}, seed=2)", "src": "rand(({M}, {K}), {dt}, seed=3)",
                    "_reduce": "{K}"},
    "index_select": {"dim": "0", "index": "idx(({K},), {M}, seed=2)"},
    "index": {"indices": "[idx(({K},), {M}, seed=2)]"},
    "index_put": {"indices": "[uidx({K}, {M}, seed=2)]", "values": "rand(({K}, {N}), {dt}, seed=3)"},
    "_index_put_impl_": {"indices": "[uidx({K}, {M}, seed=2)]", "values": "rand(({K}, {N}), {dt}, seed=3)"},
    "index_add": {"dim": "0", "index": "idx(({K},), {M}, seed=2)", "source": "rand(({K}, {N}), {dt}, seed=3)",
                  "_reduce": "{K}"},
    "embedding": {"weight": _T, "indices": "idx(({B}, {K}), {M}, seed=2)"},
    "cat": {"tensors": "[rand(({M}, {N}), {dt}, seed=1), rand(({K}, {N}), {dt}, seed=2)]", "dim": "0"},
    "stack": {"tensors": "[rand(({M}, {N}), {dt}, seed=1), rand(({M}, {N}), {dt}, seed=2)]", "dim": "0"},
    "constant_pad_nd": {"pad": "[1, 2]", "value": lambda dt, s: fill_value(dt)},
    # reflection needs pad < the padded dim: 1 is the widest pad every edge shape (N >= 2) allows
    "reflection_pad1d": {"padding": "[1, 1]"}, "replication_pad1d": {"padding": "[1, 2]"},
    "reflection_pad2d": {"self": "rand(({B}, {M}, {N}), {dt}, seed=1)", "padding": "[1, 1, 1, 0]"},
    "replication_pad2d": {"self": "rand(({B}, {M}, {N}), {dt}, seed=1)", "padding": "[1, 2, 0, 1]"},
    "reflection_pad3d": {"self": "rand(({B}, 2, {M}, {N}), {dt}, seed=1)", "padding": "[1, 1, 0, 1, 1, 0]"},
    "replication_pad3d": {"self": "rand(({B}, 2, {M}, {N}), {dt}, seed=1)", "padding": "[1, 2, 0, 1, 1, 0]"},
    # factories
    "arange": {"end": "{M}*{N}", "start": "-2", "dtype": "{dt}"},
    "arange.start_step": {"start": "1", "end": "{M}*{N}", "step": "2", "dtype": "{dt}"},
    "full": {"size": "({M}, {N})", "fill_value": lambda dt, s: fill_value(dt), "dtype": "{dt}"},
    "full_like": {"fill_value": lambda dt, s: fill_value(dt)},
    "ones": {"size": "({M}, {N})", "dtype": "{dt}"}, "zeros": {"size": "({M}, {N})", "dtype": "{dt}"},
    "new_full": {"size": "({M}, {N})", "fill_value": lambda dt, s: fill_value(dt)},
    "new_ones": {"size": "({M}, {N})"}, "new_zeros": {"size": "({M}, {N})"},
}

# ops whose seed is not built: said in every report (their inputs need recipes beyond a template)
NO_SEED = {
    "_scaled_mm_v2": "scale recipes/swizzles: covered by tests/ops/test_scaled_mm.py",
    "_scaled_grouped_mm": "rowwise fp8 grouped recipe: covered by tests/ops/test_scaled_mm.py",
    "_scaled_grouped_mm_v2": "scale recipes/swizzles: covered by tests/ops/test_scaled_mm.py",
}

# overloads that want dtypes other than the generic loop: only these are meaningful
DTYPES_OF = {
    "_scaled_mm": FP8_DTYPES,
}


def _spec(entry) -> Dict[str, Template]:
    base = entry.base.rstrip("_") if entry.base.endswith("_") and not entry.base.startswith("_") else entry.base
    if entry.base in ("_index_put_impl_", "copy_", "fill_", "zero_"):
        base = entry.base
    out: Dict[str, Template] = {}
    out.update(SPECS.get(base, {}))
    overload = entry.overload
    for suffix in (overload, overload.replace("_out", ""), overload.split("_")[0]):
        out.update(SPECS.get(f"{base}.{suffix}", {}))
    return out


def _render(t: Template, dt: torch.dtype, sizes: dict) -> Optional[str]:
    if callable(t):
        t = t(dt, sizes)
        if t is None:
            return None
    return t.format(dt=dtype_src(dt), **sizes)


def _is_scalar(a) -> bool:
    """A ``Scalar`` / ``Scalar?`` argument (the schema types it as ``number``)."""
    return str(a.type).rstrip("?") in ("Scalar", "number")


def _is_tensor_template(t: Template) -> bool:
    return isinstance(t, str) and any(b in t for b in ("rand(", "pos(", "idx(", "mask(", "torch.tensor("))


def _is_out_arg(a) -> bool:
    return a.kwarg_only and a.alias_info is not None and a.alias_info.is_write


def _default_for(a, dt, sizes, i) -> Optional[str]:
    """A generic argument when the spec says nothing: tensors like self, required scalars/ints/bools."""
    ty = str(a.type)
    if a.has_default_value():
        return None
    if ty == "Tensor":
        return f"rand(({sizes['M']}, {sizes['N']}), {dtype_src(dt)}, seed={i + 1})"
    if _is_scalar(a):
        return scalar_value(dt)
    if ty in ("int", "SymInt"):
        return "1"
    if ty == "bool":
        return "False"
    if ty.endswith("?"):
        return "None"
    raise NoSeed(f"no generic value for required argument {a.name}: {ty}")


FUNCTIONAL_OF = {"out": "default", "values": "default", "values_stable": "stable", "IntList_out": "dim_IntList"}


def functional_overload(qualname: str) -> Optional[str]:
    """'aten::add.out' -> 'aten::add.Tensor' style name of the functional twin of an out= overload."""
    ns, rest = qualname.split("::")
    base, overload = rest.split(".")
    packet = getattr(torch.ops.aten, base)
    names = packet.overloads()
    cands = [FUNCTIONAL_OF.get(overload)]
    if overload.endswith("_out"):
        cands.append(overload[: -len("_out")])
    if overload == "out":
        cands += ["Tensor", "default"]
    for c in cands:
        if c and c in names:
            return f"{ns}::{base}.{c}"
    return None


def build(qualname: str, dt: torch.dtype, sizes: Optional[dict] = None, outs: bool = True) -> Call:
    """The base call of ``qualname`` for dtype ``dt`` at ``sizes`` (default :data:`SIZES`).

    ``outs=False`` leaves out= buffers as 0-element placeholders instead of running the functional twin to
    shape them (for inspecting the source only).
    """
    e = entries()[qualname]
    if e.base in NO_SEED:
        raise NoSeed(NO_SEED[e.base])
    sizes = dict(SIZES if sizes is None else sizes)
    spec = _spec(e)
    args: List[str] = []
    kwargs: Dict[str, str] = {}
    out_names = []
    for i, a in enumerate(e.schema.arguments):
        if _is_out_arg(a):
            out_names.append(a.name)
            continue
        t = spec.get(a.name)
        if t is not None and _is_scalar(a) and _is_tensor_template(t):
            t = None      # the family's tensor operand, but this overload takes a Python number there
        expr = _render(t, dt, sizes) if t is not None else _default_for(a, dt, sizes, i)
        if a.kwarg_only:
            if expr is not None:
                kwargs[a.name] = expr
            continue
        if expr is None:
            # a defaulted positional argument: only kept when a later positional one is given
            args.append(None)
            continue
        args.append(expr)
    # drop trailing defaulted positionals; fill inner gaps with the schema default
    while args and args[-1] is None:
        args.pop()
    for i, x in enumerate(args):
        if x is None:
            args[i] = repr(e.schema.arguments[i].default_value)
    reduce_len = eval(_render(spec["_reduce"], dt, sizes)) if "_reduce" in spec else 1
    call = Call(qualname, tuple(args), tuple(kwargs.items()), reduce_len=max(1, int(reduce_len)),
                dim_of=spec.get("_dim_of"))
    if out_names:
        call = _with_outs(call, out_names, dt) if outs else replace(
            call, kwargs=call.kwargs + tuple((o, f"empty_out({dtype_src(dt)})") for o in out_names))
    return call


def _with_outs(call: Call, outs: List[str], dt) -> Call:
    """out= buffers shaped and typed like the functional twin's result, full of poison."""
    fq = functional_overload(call.op)
    results = None
    if fq is not None:
        schema = op_schema(fq)
        names = {a.name for a in schema.arguments}
        twin = Call(fq, call.args, tuple((k, v) for k, v in call.kwargs if k in names), call.setup)
        try:
            fn, args, kwargs = twin.evaluate()
            r = fn(*args, **kwargs)
            results = list(r) if isinstance(r, (tuple, list)) else [r]
        except Exception:
            results = None
    kw = dict(call.kwargs)
    for i, name in enumerate(outs):
        if results is not None and i < len(results):
            r = results[i]
            kw[name] = f"poisoned({tuple(r.shape)}, {dtype_src(r.dtype)})"
        else:
            kw[name] = f"empty_out({dtype_src(dt)})"
    return replace(call, kwargs=tuple(kw.items()))


def dtypes_for(qualname: str) -> Tuple[torch.dtype, ...]:
    e = entries()[qualname]
    return DTYPES_OF.get(e.base, ALL_DTYPES)
