"""Device helpers every generated pointwise kernel calls (pointwise_codegen.py writes the kernels).

For output element i of a [d0, d1, d2, d3] index space (d0 implied by n):

    offset(i) = i0*s0 + i1*s1 + i2*s2 + i3*s3   with (i0, i1, i2, i3) the row-major coordinates of i
    operand   = cvt(load(ptr + offset(i)), COMPUTE)       or a kernel scalar splat to [BLOCK]
    out[offset_o(i)] = cvt(cvt(op(a, b, c), RESULT), out dtype)

``cvt`` converts the way torch does on CPU, and only with conversions every backend lowers: casts from or to
fp8 go through fp32 unless one side already is fp32 (fp64 -> fp8 and fp8 -> fp8 exist on no GPU; Triton has
no int <-> fp8 cast), and int / fp64 -> fp16 / bf16 go through fp32 too (torch's c10::Half and c10::BFloat16
are built from a float, so torch rounds twice; a direct cast would round once and differ in rare ties).

Portability (docs/portability.md): no method calls on constexpr dtypes (dtype tests are ``==`` with the
constexpr on the left, or methods of a *tensor's* dtype), no ``not`` / ``and`` / ``or`` on Python bools, and
every integer argument may arrive as the constant 1.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def flat_index(BLOCK: tl.constexpr, IDX64: tl.constexpr):
    """The BLOCK linear output indices of this program; int64 only where an offset can pass 2**31."""
    if IDX64:
        return tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        return tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)


@triton.jit
def strided_offsets(idx, s0, s1, s2, s3, d1, d2, d3, CONTIG: tl.constexpr):
    if CONTIG:
        return idx
    else:
        i3 = idx % d3
        t = idx // d3
        i2 = t % d2
        t = t // d2
        i1 = t % d1
        i0 = t // d1
        return i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3


@triton.jit
def cvt(x, DST: tl.constexpr):
    """x converted to DST as torch converts (see the module docstring for the routes through fp32)."""
    if DST == x.dtype:
        return x
    elif DST == tl.float32:
        return x.to(tl.float32)
    elif x.dtype.is_fp8():
        return x.to(tl.float32).to(DST)
    elif (DST == tl.float8e4nv) | (DST == tl.float8e5) | (DST == tl.float8e4b8) | (DST == tl.float8e5b16):
        # a constexpr dtype is tested with `==`, constexpr on the left (Ascend's front end has no dtype methods
        # on constexprs, and tl.dtype.__eq__ is False for a constexpr on its right)
        return x.to(tl.float32).to(DST)
    elif (DST == tl.float16) | (DST == tl.bfloat16):
        if x.dtype == tl.float16:
            return x.to(DST)
        elif x.dtype == tl.bfloat16:
            return x.to(DST)
        else:
            # integers, bool and fp64: through fp32 like c10's Half/BFloat16 constructors
            return x.to(tl.float32).to(DST)
    else:
        return x.to(DST)


@triton.jit
def load_operand(ptr, val, idx, mask, s0, s1, s2, s3, d1, d2, d3,
                 SCALAR: tl.constexpr, CONTIG: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """One operand in the compute dtype: a kernel scalar splat to the block, or a strided load converted."""
    if SCALAR:
        return tl.full([BLOCK], val, COMPUTE)
    else:
        return cvt(tl.load(ptr + strided_offsets(idx, s0, s1, s2, s3, d1, d2, d3, CONTIG), mask=mask), COMPUTE)


@triton.jit
def store_result(ptr, r, idx, mask, s0, s1, s2, s3, d1, d2, d3, CONTIG: tl.constexpr):
    """r rounded once to the output's element type and stored through the output's strides."""
    tl.store(ptr + strided_offsets(idx, s0, s1, s2, s3, d1, d2, d3, CONTIG), cvt(r, ptr.dtype.element_ty),
             mask=mask)


@triton.jit
def rounded(x, R: tl.constexpr):
    """x rounded to dtype R and back: torch computes some fp16/bf16 ops step by step, rounding each step."""
    if R == x.dtype:
        return x
    else:
        return cvt(cvt(x, R), x.dtype)


@triton.jit
def isnan(x):
    return x != x


@triton.jit
def identity(a, b, c):
    """The scalar function of copies, casts and fills: the conversion happens on load/store."""
    return a
