"""Concatenation and padding on the copy kernel (copy.py): cat, stack, constant_pad_nd.

cat:   out.narrow(dim, offset_k, size_k) = t_k for each input k (one copy launch per input; legacy empty 1-D
       inputs skipped; the result dtype is the inputs' promoted dtype);  stack(ts, dim) = cat([t.unsqueeze(dim)]).
constant_pad_nd: out = value everywhere, then out's interior = self (negative pads crop self).
"""
from __future__ import annotations

import torch

from ..registry import implement
from . import elementwise as ew
from .copy import copy_into
from .elementwise import ALL, identity


def _is_legacy_empty(t):
    return t.dim() == 1 and t.numel() == 0


def _cat_plan(tensors, dim):
    """(result dtype, result shape, wrapped dim, kept tensors) or a reason string."""
    if len(tensors) == 0:
        return "empty list (torch raises)"
    dt = tensors[0].dtype
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            return "non-tensor"
        if t.dtype not in ALL:
            return f"dtype {t.dtype}"
        dt = torch.promote_types(dt, t.dtype)
        if t.device != tensors[0].device:
            return "mixed devices"
        if t.dim() >= 4 and not t.is_contiguous() and (
                t.is_contiguous(memory_format=torch.channels_last) if t.dim() == 4 else
                t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d)):
            return "channels_last input"
    kept = [t for t in tensors if not _is_legacy_empty(t)]
    if not kept:
        return dt, [0], 0, []
    ref = kept[0]
    nd = ref.dim()
    if nd == 0:
        return "0-dim input (torch raises)"
    if not -nd <= dim < nd:
        return "dim out of range (torch raises)"
    d = dim % nd
    total = 0
    for t in kept:
        if t.dim() != nd or any(t.size(k) != ref.size(k) for k in range(nd) if k != d):
            return "shape mismatch (torch raises)"
        total += t.size(d)
    shape = list(ref.shape)
    shape[d] = total
    return dt, shape, d, kept


def _cat_supports(tensors, dim=0, *, out=None):
    p = _cat_plan(tensors, dim)
    if isinstance(p, str):
        return p
    if out is not None:
        if out.dtype not in ALL or not torch.can_cast(p[0], out.dtype):
            return "out dtype"
        r = ew.writable(out)
        if r is not None:
            return r
        if any(ew.same_storage(out, t) for t in tensors):
            return "out overlaps an input"
    return None


def _concat(plan, device, out=None):
    """Run a (dtype, shape, dim, kept tensors) plan into a new tensor on ``device`` or into ``out`` (resized)."""
    dt, shape, d, kept = plan
    if out is None:
        out = torch.empty(shape, dtype=dt, device=device)
    elif list(out.shape) != shape:
        out.resize_(shape)
    off = 0
    for t in kept:
        n = t.size(d)
        if n and t.numel():
            copy_into(out.narrow(d, off, n), t)
        off += n
    return out


@implement(["aten::cat.default", "aten::cat.out"], kind="triton", supports=_cat_supports)
def cat(tensors, dim=0, *, out=None):
    return _concat(_cat_plan(tensors, dim), tensors[0].device, out)


def _stack_plan(tensors, dim):
    if len(tensors) == 0:
        return "empty list (torch raises)"
    ref = tensors[0]
    for t in tensors:
        if not isinstance(t, torch.Tensor) or t.shape != ref.shape:
            return "shape mismatch (torch raises)"
    nd = ref.dim() + 1
    if not -nd <= dim < nd:
        return "dim out of range (torch raises)"
    d = dim % nd
    return _cat_plan([t.unsqueeze(d) for t in tensors], d)


def _stack_supports(tensors, dim=0, *, out=None):
    p = _stack_plan(tensors, dim)
    if isinstance(p, str):
        return p
    return _cat_supports([t.unsqueeze(p[2]) for t in tensors], p[2], out=out)


@implement(["aten::stack.default", "aten::stack.out"], kind="triton", supports=_stack_supports)
def stack(tensors, dim=0, *, out=None):
    return _concat(_stack_plan(tensors, dim), tensors[0].device, out)


# --------------------------------------------------------------------------------------------------------------
# constant_pad_nd / masked_fill

def _pad_supports(self, pad, value=0):
    if self.dtype not in ALL:
        return f"dtype {self.dtype}"
    if len(pad) % 2 or len(pad) // 2 > self.dim():
        return "pad length (torch raises)"
    for i in range(len(pad) // 2):
        d = self.dim() - 1 - i
        if self.size(d) + pad[2 * i] + pad[2 * i + 1] < 0:
            return "negative output size (torch raises)"
    if isinstance(value, complex):
        return "complex value"
    return None


@implement("aten::constant_pad_nd.default", kind="triton", supports=_pad_supports)
def constant_pad_nd(self, pad, value=0):
    shape = list(self.shape)
    src = self
    for i in range(len(pad) // 2):
        d = self.dim() - 1 - i
        shape[d] = self.size(d) + pad[2 * i] + pad[2 * i + 1]
    out = torch.empty(shape, dtype=self.dtype, device=self.device)
    if out.numel() == 0:
        return out
    inner = out
    for i in range(len(pad) // 2):
        d = self.dim() - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        keep = self.size(d) + min(lo, 0) + min(hi, 0)
        if keep <= 0:
            src = None
            break
        src = src.narrow(d, -min(lo, 0), keep)
        inner = inner.narrow(d, max(lo, 0), keep)
    if any(p > 0 for p in pad) or src is None:
        val = value if self.dtype.is_floating_point or self.dtype == torch.bool else int(value)
        ew.launch(identity, [ew.as_operand(val, self.dtype, self.device)], out, self.dtype)
    if src is not None and src.numel():
        copy_into(inner, src)
    return out
