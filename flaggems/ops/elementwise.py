"""Generic pointwise engine: out[i] = OP(a[i], b[i], c[i], p0) with torch's broadcasting and type promotion.

One Triton kernel serves every pointwise op: the op itself is a ``@triton.jit`` function passed as a
constexpr, operands are addressed through up to four (coalesced) strides each, so broadcast, transposed and
sliced inputs and outputs are read and written in place without copies. Python numbers are passed as kernel
scalars (a ``tl.constexpr`` flag says which operand is one); 0-dim tensors are read as stride-0 operands.

Type promotion is torch's (``torch.result_type``); arithmetic runs in the op's compute dtype (fp32 for
fp16/bf16, like torch's opmath), the result is rounded once to the output dtype on store.

``run`` is the host entry every pointwise op goes through: broadcast shape, operands, an output allocated in
the layout torch's TensorIterator would choose, one launch. The op families (functional / out / in-place
overloads from one scalar function) are declared with elementwise_family.py.
"""
from __future__ import annotations

from numbers import Number
from typing import Optional, Sequence

import torch
import triton
import triton.language as tl

from .. import runtime

MAX_RANK = 4
_DEFAULT = {"BLOCK": 1024}

FLOAT = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
INT = frozenset({torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64})
BOOL = frozenset({torch.bool})
NUMERIC = FLOAT | INT
ALL = NUMERIC | BOOL

_TL = {
    torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float32: tl.float32,
    torch.float64: tl.float64, torch.int8: tl.int8, torch.uint8: tl.uint8, torch.int16: tl.int16,
    torch.int32: tl.int32, torch.int64: tl.int64, torch.bool: tl.int1,
}
for _t, _l in (("float8_e4m3fn", "float8e4nv"), ("float8_e5m2", "float8e5"), ("float8_e4m3fnuz", "float8e4b8"),
               ("float8_e5m2fnuz", "float8e5b16")):
    if hasattr(torch, _t) and hasattr(tl, _l):
        _TL[getattr(torch, _t)] = getattr(tl, _l)


def tl_dtype(dt: torch.dtype):
    return _TL[dt]


def compute_dtype(dt: torch.dtype) -> torch.dtype:
    """torch's opmath type: half types compute in fp32."""
    return torch.float32 if dt in (torch.float16, torch.bfloat16) else dt


@triton.jit
def _offsets(idx, s0, s1, s2, s3, d1, d2, d3, CONTIG: tl.constexpr):
    if CONTIG:
        return idx
    i3 = idx % d3
    t = idx // d3
    i2 = t % d2
    t = t // d2
    i1 = t % d1
    i0 = t // d1
    return i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3


@triton.jit
def cvt(x, DST: tl.constexpr):
    """x.to(DST), routing fp8 <-> integer/bool through fp32 (Triton has no direct cast; torch goes via float)."""
    if x.dtype.is_fp8() and not DST.is_floating():
        return x.to(tl.float32).to(DST)
    elif DST.is_fp8() and not x.dtype.is_floating():
        return x.to(tl.float32).to(DST)
    else:
        return x.to(DST)


@triton.jit
def isnan(x):
    return x != x


@triton.jit
def identity(a, b, c, p0):
    """The scalar function of copies, casts and fills: the conversion happens on load/store."""
    return a


@triton.jit
def _operand(ptr, val, idx, mask, s0, s1, s2, s3, d1, d2, d3,
             SCALAR: tl.constexpr, CONTIG: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    if SCALAR:
        return tl.full([BLOCK], val, COMPUTE)
    else:
        return cvt(tl.load(ptr + _offsets(idx, s0, s1, s2, s3, d1, d2, d3, CONTIG), mask=mask), COMPUTE)


@triton.jit
def pointwise_kernel(
    out_ptr, a_ptr, b_ptr, c_ptr, a_val, b_val, c_val, p0,
    so0, so1, so2, so3, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3, sc0, sc1, sc2, sc3,
    d1, d2, d3, n,
    OP: tl.constexpr, N_IN: tl.constexpr, COMPUTE: tl.constexpr,
    A_SCALAR: tl.constexpr, B_SCALAR: tl.constexpr, C_SCALAR: tl.constexpr,
    O_CONTIG: tl.constexpr, A_CONTIG: tl.constexpr, B_CONTIG: tl.constexpr, C_CONTIG: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    # int64 indices: numel may pass 2**31
    idx = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < n
    a = _operand(a_ptr, a_val, idx, mask, sa0, sa1, sa2, sa3, d1, d2, d3, A_SCALAR, A_CONTIG, COMPUTE, BLOCK)
    b = a
    if N_IN >= 2:
        b = _operand(b_ptr, b_val, idx, mask, sb0, sb1, sb2, sb3, d1, d2, d3, B_SCALAR, B_CONTIG, COMPUTE, BLOCK)
    c = a
    if N_IN >= 3:
        c = _operand(c_ptr, c_val, idx, mask, sc0, sc1, sc2, sc3, d1, d2, d3, C_SCALAR, C_CONTIG, COMPUTE, BLOCK)
    r = OP(a, b, c, p0)
    o = _offsets(idx, so0, so1, so2, so3, d1, d2, d3, O_CONTIG)
    tl.store(out_ptr + o, cvt(r, out_ptr.dtype.element_ty), mask=mask)


def coalesce(shape: Sequence[int], strides_list: Sequence[Sequence[int]]):
    """Drop size-1 dims and merge dims that are contiguous with each other in every operand."""
    dims = [i for i, s in enumerate(shape) if s != 1]
    shape = [shape[i] for i in dims]
    strides_list = [[st[i] for i in dims] for st in strides_list]
    if not shape:
        return [1], [[0] for _ in strides_list]
    out_shape = [shape[0]]
    out_strides = [[st[0]] for st in strides_list]
    for i in range(1, len(shape)):
        if all(os_[-1] == st[i] * shape[i] for os_, st in zip(out_strides, strides_list)):
            out_shape[-1] *= shape[i]
            for os_, st in zip(out_strides, strides_list):
                os_[-1] = st[i]
        else:
            out_shape.append(shape[i])
            for os_, st in zip(out_strides, strides_list):
                os_.append(st[i])
    return out_shape, out_strides


def _is_contig(shape, strides) -> bool:
    expect = 1
    for s, st in zip(reversed(shape), reversed(strides)):
        if s != 1 and st != expect:
            return False
        expect *= s
    return True


def launch(op, operands: Sequence, out: torch.Tensor, compute: torch.dtype, p0=0.0) -> torch.Tensor:
    """Run ``op`` over ``operands`` (tensors already broadcastable to ``out``, or Python numbers) into ``out``."""
    n = out.numel()
    if n == 0:
        return out
    shape = list(out.shape)
    tensors = []
    for x in operands:
        if isinstance(x, torch.Tensor):
            tensors.append(x.expand(shape) if list(x.shape) != shape else x)
    strides_list = [list(out.stride())] + [list(t.stride()) for t in tensors]
    cshape, cstrides = coalesce(shape, strides_list)
    if len(cshape) > MAX_RANK:
        # rare: more than 4 non-mergeable dims; materialise operands and write through a contiguous buffer
        tmp = torch.empty(shape, dtype=out.dtype, device=out.device)
        ops = [x.expand(shape).contiguous() if isinstance(x, torch.Tensor) else x for x in operands]
        launch(op, ops, tmp, compute, p0)
        out.copy_(tmp)
        return out
    pad = MAX_RANK - len(cshape)
    cshape = [1] * pad + cshape
    cstrides = [[0] * pad + st for st in cstrides]
    contig = [_is_contig(cshape, st) for st in cstrides]

    ptrs, vals, strides, scalar_flags, contig_flags = [], [], [], [], []
    ti = 0
    for x in operands:
        if isinstance(x, torch.Tensor):
            ptrs.append(tensors[ti])
            vals.append(0)
            strides.append(cstrides[1 + ti])
            scalar_flags.append(False)
            contig_flags.append(contig[1 + ti])
            ti += 1
        else:
            ptrs.append(out)  # never dereferenced: the operand is a scalar
            vals.append(x)
            strides.append([0, 0, 0, 0])
            scalar_flags.append(True)
            contig_flags.append(False)
    n_in = len(operands)
    while len(ptrs) < 3:
        ptrs.append(out)
        vals.append(0)
        strides.append([0, 0, 0, 0])
        scalar_flags.append(True)
        contig_flags.append(False)

    cfg = runtime.config("pointwise", _DEFAULT)
    block = min(cfg["BLOCK"], runtime.next_pow2(n))
    grid = (triton.cdiv(n, block),)
    opts = {k: v for k, v in cfg.items() if k in ("num_warps", "num_stages")}
    with runtime.device_guard(out):
        pointwise_kernel[grid](
            out, ptrs[0], ptrs[1], ptrs[2], vals[0], vals[1], vals[2], p0,
            *cstrides[0], *strides[0], *strides[1], *strides[2],
            cshape[1], cshape[2], cshape[3], n,
            OP=op, N_IN=n_in, COMPUTE=tl_dtype(compute),
            A_SCALAR=scalar_flags[0], B_SCALAR=scalar_flags[1], C_SCALAR=scalar_flags[2],
            O_CONTIG=contig[0], A_CONTIG=contig_flags[0], B_CONTIG=contig_flags[1], C_CONTIG=contig_flags[2],
            BLOCK=block, **opts,
        )
    return out


# --------------------------------------------------------------------------------------------------------------
# host-side helpers shared by the op modules

def shape_of(x):
    return x.shape if isinstance(x, torch.Tensor) else ()


def device_of(*xs):
    for x in xs:
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            return x.device
    for x in xs:
        if isinstance(x, torch.Tensor):
            return x.device
    raise TypeError("pointwise op needs at least one tensor operand")


def as_operand(x, compute: torch.dtype, device):
    """A Python number stays a kernel scalar where the kernel's scalar type can hold it exactly enough."""
    if isinstance(x, torch.Tensor):
        if x.device != device:
            # a 0-dim CPU tensor next to an accelerator tensor (torch allows it for scalars)
            return x.to(device)
        return x
    if isinstance(x, bool):
        x = int(x)
    if compute in (torch.float64, torch.int64) or (isinstance(x, int) and not -2**31 <= x < 2**31):
        # Triton types Python floats as fp32 and ints as i32/i64: keep fp64/int64 maths exact via a tensor
        return torch.tensor(x, dtype=compute, device=device)
    return float(x) if compute.is_floating_point else int(x)


def out_ok(out: torch.Tensor, shape, inputs=()) -> Optional[str]:
    """Reason an out= / in-place tensor cannot be written directly (None if it can)."""
    if tuple(out.shape) != tuple(shape):
        return "out shape differs (resize)"
    # 1 = overlap (torch raises: let the native kernel say so); 2 = too hard to tell, which torch writes anyway
    if out.numel() > 1 and torch._debug_has_internal_overlap(out) == 1:
        return "out has internal overlap"
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.numel() > 0 and x is not out and x.device == out.device:
            if x.untyped_storage().data_ptr() == out.untyped_storage().data_ptr():
                same = (x.data_ptr() == out.data_ptr() and x.stride() == out.stride()
                        and x.shape == out.shape)
                if not same:
                    return "out partially overlaps an input"
    return None


def same_storage(a, b) -> bool:
    """Both are non-empty tensors over one storage (they may overlap)."""
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.numel() > 0 and b.numel() > 0
            and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())


def writable(t) -> Optional[str]:
    """Reason a destination cannot be written element by element (None if it can)."""
    if t.numel() > 1 and torch._debug_has_internal_overlap(t) != 0:
        return "destination has internal overlap"
    return None


def is_number(x) -> bool:
    return isinstance(x, Number) and not isinstance(x, torch.Tensor)


def _non_overlapping_dense(x) -> bool:
    # a permutation of a contiguous tensor: sorting strides gives contiguous strides
    dims = sorted(range(x.dim()), key=lambda d: x.stride(d), reverse=True)
    expect = 1
    for d in reversed(dims):
        if x.size(d) != 1 and x.stride(d) != expect:
            return False
        expect *= x.size(d)
    return True


def _permuted_dense(x) -> bool:
    return isinstance(x, torch.Tensor) and x.is_contiguous() is False and x.numel() > 0 and \
        torch._debug_has_internal_overlap(x) == 0 and _non_overlapping_dense(x)


def alloc(shape, dtype: torch.dtype, device, operands) -> torch.Tensor:
    """The output of a pointwise op: it follows the layout of a full-size permuted operand, as TensorIterator does."""
    for x in operands:
        if isinstance(x, torch.Tensor) and tuple(x.shape) == tuple(shape) and _permuted_dense(x):
            return torch.empty_like(x, dtype=dtype)
    return torch.empty(shape, dtype=dtype, device=device)


def run(op, operands: Sequence, compute: torch.dtype, result: Optional[torch.dtype] = None, *, out=None, p0=0.0,
        shape=None, like=None) -> torch.Tensor:
    """``op`` over ``operands`` (tensors and Python numbers, broadcast together) computed in ``compute``.

    Writes ``out`` when given, else a new tensor of dtype ``result``; ``shape`` and ``like`` (a tensor giving
    the device) serve calls whose operands are all Python numbers.
    """
    tensors = [x for x in operands if isinstance(x, torch.Tensor)]
    device = device_of(*(tensors or [like]))
    if shape is None:
        shape = torch.broadcast_shapes(*[shape_of(x) for x in operands])
    ops = [as_operand(x, compute, device) for x in operands]
    if isinstance(p0, float) and not compute.is_floating_point:
        p0 = int(p0)
    if out is None:
        out = alloc(shape, result, device, tensors)
    return launch(op, ops, out, compute, p0)
