"""Selection ATen ops on the pointwise engine: out[i] = cond[i] ? a[i] : b[i].

where(cond, a, b): a and b promoted together (two Python scalars: the default float for floats, int64 for
ints, bool for bools).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..registry import implement
from . import elementwise as ew
from .elementwise import ALL, NUMERIC


@triton.jit
def _where(a, b, c, p0):
    return tl.where(a != 0, b, c)


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
           kind="triton", dtypes=ALL, supports=_where_supports)
def where(cond, a, b):
    rt = _where_dtype(a, b)
    return ew.run(_where, [cond, a, b], ew.compute_dtype(rt), rt)


@implement(["aten::where.self_out"], kind="triton", dtypes=ALL, supports=_where_supports)
def where_out(cond, a, b, *, out):
    ew.run(_where, [cond, a, b], ew.compute_dtype(out.dtype), out.dtype, out=out)
    return out

