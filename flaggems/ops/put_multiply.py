"""dst[dst_off(o) + idx[idx_off(o)] * ddim] *= val[o]: the put of scatter(reduce="multiply") (take_put.py's walk).

No backend has an atomic multiply, so each lane runs a compare-and-swap loop on the destination's bits: read
old, swap in old * v if the word still holds old, else retry with the value found. Lanes that are done (or
masked: out-of-range index, past N) keep swapping a word's last seen value for itself, which never changes memory,
so every lane can take part in the same vector CAS (``tl.atomic_cas`` has no mask); they address dst's first
element, so dst must not be empty. Duplicate indices multiply in an unspecified order (like torch on CUDA); fp16 /
bf16 / int8 / int16 / uint8 destinations go through take_put.accum_buffer's fp32 / int32 copy (products of small
integers wrap like the narrow type once truncated; half types are rounded once at the end, torch's CPU kernel
rounds after every product).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import runtime
from .addressing import block_size, geometry, program_coords
from .take_put import launch_check, load_index


@triton.jit
def _put_mul_kernel(dst_ptr, bits_ptr, src_ptr, idx_ptr, rec_ptr, N, n_bound, ddim, err_kind, err_dim,
                    d1, d2, d3, d4, d5,
                    sd0, sd1, sd2, sd3, sd4, sd5, ss0, ss1, ss2, ss3, ss4, ss5, si0, si1, si2, si3, si4, si5,
                    WRAP: tl.constexpr, CHECK: tl.constexpr, BLOCK: tl.constexpr):
    o, mask, c0, c1, c2, c3, c4, c5 = program_coords(tl.program_id(0), N, d1, d2, d3, d4, d5, BLOCK)
    i, ok = load_index(idx_ptr, rec_ptr, o, mask, c0, c1, c2, c3, c4, c5, si0, si1, si2, si3, si4, si5, n_bound,
                       err_kind, err_dim, WRAP, CHECK)
    ok = mask & ok
    v = tl.load(src_ptr + (c0 * ss0 + c1 * ss1 + c2 * ss2 + c3 * ss3 + c4 * ss4 + c5 * ss5), mask=ok, other=1)
    v = v.to(dst_ptr.dtype.element_ty)
    off = tl.where(ok, c0 * sd0 + c1 * sd1 + c2 * sd2 + c3 * sd3 + c4 * sd4 + c5 * sd5 + i * ddim, 0)
    bits = bits_ptr + off
    old = tl.load(bits)
    pending = ok
    while tl.max(pending.to(tl.int32), axis=0) > 0:
        prod = old.to(dst_ptr.dtype.element_ty, bitcast=True) * v
        new = tl.where(pending, prod.to(bits_ptr.dtype.element_ty, bitcast=True), old)
        seen = tl.atomic_cas(bits, old, new)
        pending = pending & (seen != old)
        old = seen


def put_multiply(dst, src, idx, shape, dst_strides, src_strides, idx_strides, ddim, n_bound, bounds):
    """dst (an ATOMIC-dtype tensor, non-empty) *= src over ``shape`` at the indexed positions; out-of-range
    indices are skipped and reported against ``bounds`` (index_errors.py)."""
    n = math.prod(shape)
    if n == 0:
        return dst
    geo = geometry(shape, [dst_strides, src_strides, idx_strides])
    assert geo is not None, "supports() keeps the iteration rank <= 6"
    dims, (sd, ss, si) = geo
    chk, rec, kind, edim = launch_check(dst.device, bounds)
    # the CAS runs on the destination's bits: the same storage viewed as an integer of its width
    bits = dst.view(torch.int32 if dst.element_size() == 4 else torch.int64)
    block = block_size(n)
    with runtime.device_guard(dst):
        _put_mul_kernel[(triton.cdiv(n, block),)](
            dst, bits, src, idx, rec if chk else idx, n, n_bound, ddim, kind, edim,
            *dims, *sd, *ss, *si, WRAP=False, CHECK=chk is not None, BLOCK=block)
    if chk is not None:
        chk.finish(bounds.error)
    return dst
