"""tril / triu: the lower / upper triangle of the last two dims, the rest zeroed.

    tril: out[..., i, j] = x[..., i, j] if j - i <= diagonal else 0
    triu: out[..., i, j] = x[..., i, j] if j - i >= diagonal else 0

One program per BLOCK elements of the [B, R, C] view (B = product of the leading dims); any strides for x and
out (read and written in place, so ``x.tril_()`` on a transposed view works). Every dtype torch takes (bool
included). Needed on devices where flaggems is the only kernel library: SDPA's math path builds its causal mask
with ``tril`` (issue 12).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..registry import implement
from .addressing import block_size
from .elementwise import ALL


@triton.jit
def _tri_kernel(x_ptr, o_ptr, N, R, C, sxb, sxr, sxc, sob, sor, soc, diagonal,
                LOWER: tl.constexpr, BLOCK: tl.constexpr):
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = e < N
    c = e % C
    r = (e // C) % R
    b = e // (C * R)
    keep = (c - r <= diagonal) if LOWER else (c - r >= diagonal)
    x = tl.load(x_ptr + b * sxb + r * sxr + c * sxc, mask=mask & keep, other=0)
    tl.store(o_ptr + b * sob + r * sor + c * soc, x, mask=mask)


def _brc(t):
    """(B, R, C, stride_b, stride_r, stride_c) of t's [..., R, C] as a 3-D view, or None if the leading dims do
    not collapse to one stride."""
    R, C = t.shape[-2:]
    lead = t.shape[:-2]
    if not lead:
        return 1, R, C, 0, t.stride(-2), t.stride(-1)
    B = 1
    for s in lead:
        B *= s
    try:
        v = t.view(B, R, C) if t.numel() else None
    except RuntimeError:
        return None
    if v is None:
        return B, R, C, 0, t.stride(-2), t.stride(-1)
    return B, R, C, v.stride(0), v.stride(1), v.stride(2)


def _run(x, out, diagonal, lower):
    if x.numel() == 0:
        return out
    xs = _brc(x)
    if xs is None:
        x = x.contiguous()
        xs = _brc(x)
    os_ = _brc(out)
    target = out
    if os_ is None:
        target = torch.empty(out.shape, dtype=out.dtype, device=out.device)
        os_ = _brc(target)
    B, R, C, sxb, sxr, sxc = xs
    _, _, _, sob, sor, soc = os_
    n = B * R * C
    block = block_size(n)
    # overlapping rows/cols in x and out (in place on the same storage) are fine: each element is read and
    # written by the same lane
    with runtime.device_guard(x):
        _tri_kernel[(triton.cdiv(n, block),)](x, target, n, R, C, sxb, sxr, sxc, sob, sor, soc, int(diagonal),
                                              LOWER=lower, BLOCK=block)
    if target is not out:
        out.copy_(target)
    return out


def _supports(x, diagonal=0, *, out=None):
    if x.dim() < 2:
        return "input must have at least 2 dims (torch raises)"
    if out is not None and (out.dtype != x.dtype or tuple(out.shape) != tuple(x.shape)):
        return "out dtype/shape (torch resizes or raises)"
    if out is not None and out.numel() > 1 and torch._debug_has_internal_overlap(out) == 1:
        return "out has internal overlap"
    if out is not None and out.data_ptr() != x.data_ptr() and torch._C._overlaps(out, x):
        return "out partially overlaps the input"
    return None


def _inplace_supports(x, diagonal=0):
    r = _supports(x, diagonal)
    # torch writes an expanded (self-overlapping) self in its own element order: leave those to it, as the
    # pointwise in-place ops do (flaggems/ops/elementwise.py out_ok)
    if r is None and x.numel() > 1 and torch._debug_has_internal_overlap(x) == 1:
        return "self has internal overlap"
    return r


def _functional(lower):
    def fn(x, diagonal=0):
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        return _run(x, out, diagonal, lower)
    return fn


def _inplace(lower):
    def fn(x, diagonal=0):
        return _run(x, x, diagonal, lower)
    return fn


def _out(lower):
    def fn(x, diagonal=0, *, out):
        return _run(x, out, diagonal, lower)
    return fn


tril = implement("aten::tril.default", kind="triton", dtypes=ALL, supports=_supports)(_functional(True))
triu = implement("aten::triu.default", kind="triton", dtypes=ALL, supports=_supports)(_functional(False))
tril_ = implement("aten::tril_.default", kind="triton", dtypes=ALL, supports=_inplace_supports)(_inplace(True))
triu_ = implement("aten::triu_.default", kind="triton", dtypes=ALL, supports=_inplace_supports)(_inplace(False))
tril_out = implement("aten::tril.out", kind="triton", dtypes=ALL, supports=_supports)(_out(True))
triu_out = implement("aten::triu.out", kind="triton", dtypes=ALL, supports=_supports)(_out(False))
