"""Selection ATen ops on the pointwise engine: out[i] = cond[i] ? a[i] : b[i].

where(cond, a, b): a and b promoted together (two Python scalars: the default float for floats, int64 for
ints, bool for bools);  masked_fill(x, mask, v) = where(mask, v, x) in x's dtype (v a number or a 0-dim tensor).
A Python value torch refuses for the dtype (scalar_checks.py: 300 into int8; masked_fill also 1e10 into fp16)
stays native, so torch raises.
"""
from __future__ import annotations

from numbers import Number

import torch
import triton
import triton.language as tl

from ..registry import implement
from . import elementwise as ew
from ..runtime.checks import values_checkable
from .pointwise_codegen import scalar_function
from .scalar_checks import overflow_reason, overflows, where_overflows
from .elementwise import ALL, NUMERIC


@scalar_function
@triton.jit
def _where(a, b, c):
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
    for v in (a, b):
        # torch converts a Python scalar to the result dtype with an overflow check (int8 and 300 raise)
        if ew.is_number(v) and (isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)) and \
                where_overflows(v, rt):
            return overflow_reason(v, rt)
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


# ---- masked_fill -----------------------------------------------------------------------------------------------
def _masked_fill_supports(self, mask, value, inplace=False):
    if self.dtype not in ALL:
        return f"dtype {self.dtype}"
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        return "mask dtype (torch raises)"
    if isinstance(value, torch.Tensor):
        if value.dim() != 0:
            return "value tensor not 0-dim (torch raises)"
        if value.is_complex():
            return "complex value"
        # torch converts value.item() with the overflow check (host values only: no device sync here)
        if values_checkable(value) and overflows(value.item(), self.dtype):
            return overflow_reason(value.item(), self.dtype)
    elif isinstance(value, complex) or not isinstance(value, Number):
        return "value type"
    elif overflows(value, self.dtype):
        return overflow_reason(value, self.dtype)
    if mask.device != self.device and mask.dim() > 0:
        return "mask on another device"
    try:
        shape = torch.broadcast_shapes(self.shape, mask.shape)
    except RuntimeError:
        return "shape (torch raises)"
    if inplace:
        if tuple(shape) != tuple(self.shape):
            return "mask does not broadcast to self (torch raises)"
        return ew.out_ok(self, self.shape, (mask,))
    return None


def _masked_fill_run(out, self, mask, value):
    if isinstance(value, torch.Tensor):
        v = value.to(device=out.device, dtype=out.dtype)
    else:
        if out.dtype == torch.bool:
            value = bool(value)
        elif not out.dtype.is_floating_point:
            value = int(value)
        v = ew.as_operand(value, out.dtype, out.device)
    if out.numel():
        # computed in out's own dtype: a pure selection, nothing to widen
        ew.launch(_where, [mask, v, self], out, out.dtype)
    return out


@implement(["aten::masked_fill.Scalar", "aten::masked_fill.Tensor"], kind="triton", supports=_masked_fill_supports)
def masked_fill(self, mask, value):
    shape = torch.broadcast_shapes(self.shape, mask.shape)
    out = torch.empty_like(self) if tuple(shape) == tuple(self.shape) else \
        torch.empty(shape, dtype=self.dtype, device=self.device)
    return _masked_fill_run(out, self, mask, value)


@implement(["aten::masked_fill_.Scalar", "aten::masked_fill_.Tensor"], kind="triton",
           supports=lambda self, mask, value: _masked_fill_supports(self, mask, value, inplace=True))
def masked_fill_(self, mask, value):
    return _masked_fill_run(self, self, mask, value)
