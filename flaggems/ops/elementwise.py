"""Generic pointwise engine: out[i] = f(a[i], b[i], ...) with torch's broadcasting and type promotion.

Each scalar function f (a ``@triton.jit`` function of up to four operands, registered by name) runs in a
kernel generated for it and its operand count (pointwise_codegen.py, device helpers in pointwise_jit.py).
Operands are addressed through up to four coalesced strides each, so broadcast, transposed and sliced inputs
and outputs are read and written in place without copies. Python numbers are passed as kernel scalars (a
``tl.constexpr`` flag says which operand is one; fp64 scalars as 0-dim tensors, since Triton types a Python
float as fp32); 0-dim tensors are read as stride-0 operands. Indices are int32 unless an index or an element
offset can pass 2**31.

Type promotion is torch's (``torch.result_type``); arithmetic runs in the op's compute dtype (fp32 for
fp16/bf16, like torch's opmath), the result is rounded to the result dtype and then to out's dtype (the same
thing unless out= is wider: torch computes in the result dtype and casts).

``run`` is the host entry every pointwise op goes through: broadcast shape, operands, an output allocated in
the layout torch's TensorIterator would choose, one launch. The op families (functional / out / in-place
overloads from one scalar function) are declared with elementwise_family.py.
"""
from __future__ import annotations

import math
import struct
from numbers import Number
from typing import Optional, Sequence

import torch
import triton
import triton.language as tl

from .. import runtime
from . import pointwise_codegen as codegen
from .pointwise_jit import cvt, identity, isnan  # noqa: F401  (the op modules' shared scalar helpers)

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


codegen.register(identity)


def tl_dtype(dt: torch.dtype):
    return _TL[dt]


def compute_dtype(dt: torch.dtype) -> torch.dtype:
    """torch's opmath type: half types compute in fp32."""
    return torch.float32 if dt in (torch.float16, torch.bfloat16) else dt


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


def _max_offset(shape, strides) -> int:
    return sum((d - 1) * abs(st) for d, st in zip(shape, strides))


_ZERO_STRIDES = (0, 0, 0, 0)
_INT32_END = 2 ** 31 - 1
_FLAGS = {n: (tuple(f"{x}_SCALAR" for x in "ABCD"[:n]), ("O_CONTIG",) + tuple(f"{x}_CONTIG" for x in "ABCD"[:n]))
          for n in range(1, codegen.MAX_OPERANDS + 1)}


def launch(op, operands: Sequence, out: torch.Tensor, compute: torch.dtype,
           result: Optional[torch.dtype] = None) -> torch.Tensor:
    """Run scalar function ``op`` over ``operands`` (tensors already broadcastable to ``out``, or Python numbers)
    into ``out``: computed in ``compute``, rounded to ``result`` (default: out's dtype), then to out's dtype."""
    n = out.numel()
    if n == 0:
        return out
    result = out.dtype if result is None else result
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
        launch(op, ops, tmp, compute, result)
        out.copy_(tmp)
        return out
    pad = MAX_RANK - len(cshape)
    cshape = [1] * pad + cshape
    cstrides = [[0] * pad + st for st in cstrides]

    n_in = len(operands)
    scalar_names, contig_names = _FLAGS[n_in]
    flags = {contig_names[0]: _is_contig(cshape, cstrides[0])}
    ptrs, vals, strides = [], [], list(cstrides[0])
    ti = 0
    for k, x in enumerate(operands):
        if isinstance(x, torch.Tensor):
            ti += 1
            ptrs.append(tensors[ti - 1])
            vals.append(0)
            strides += cstrides[ti]
            flags[scalar_names[k]] = False
            flags[contig_names[k + 1]] = _is_contig(cshape, cstrides[ti])
        else:
            ptrs.append(out)  # never dereferenced: the operand is a kernel scalar
            vals.append(x)
            strides += _ZERO_STRIDES
            flags[scalar_names[k]] = True
            flags[contig_names[k + 1]] = False

    cfg = runtime.config("pointwise", _DEFAULT, out.dtype)
    block = min(cfg["BLOCK"], runtime.next_pow2(n))
    grid = triton.cdiv(n, block)
    # int32 index arithmetic unless an index (padded to whole blocks) or an element offset can pass 2**31
    idx64 = grid * block > _INT32_END or any(_max_offset(cshape, st) > _INT32_END for st in cstrides)
    opts = {k: v for k, v in cfg.items() if k in ("num_warps", "num_stages")}
    kernel = codegen.kernel(op, n_in)
    with runtime.device_guard(out):
        kernel[(grid,)](out, *ptrs, *vals, *strides, cshape[1], cshape[2], cshape[3], n,
                        COMPUTE=tl_dtype(compute), RESULT=tl_dtype(result), **flags, IDX64=idx64, BLOCK=block,
                        **opts)
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


def wrap_int(x: int, dtype: torch.dtype) -> int:
    """``x`` cast to integer ``dtype`` with two's-complement wraparound, as torch casts a Python int operand."""
    if dtype is torch.bool:
        return int(x != 0)
    bits = torch.iinfo(dtype).bits
    x %= 1 << bits
    return x - (1 << bits) if torch.iinfo(dtype).min < 0 and x >= 1 << (bits - 1) else x


def to_fp32(x) -> float:
    """``x`` rounded once to fp32, the type Triton gives a Python float argument (+-inf past fp32's range)."""
    if isinstance(x, int) and not -2 ** 24 <= x <= 2 ** 24:
        return float(torch.tensor(x, dtype=torch.int64).to(torch.float32))   # one rounding, like torch
    x = float(x)
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def as_operand(x, compute: torch.dtype, device):
    """A Python number as the kernel scalar torch would compute with, or a 0-dim tensor where Triton's scalar
    types cannot hold it (fp64: a Python float argument is fp32)."""
    if isinstance(x, torch.Tensor):
        if x.device != device:
            # a 0-dim CPU tensor next to an accelerator tensor (torch allows it for scalars)
            return x.to(device)
        return x
    if isinstance(x, bool):
        x = int(x)
    if not compute.is_floating_point:
        # torch casts an integer operand to the compute dtype, wrapping (int8 tensor + 300 adds 44)
        return wrap_int(int(x), compute)
    if compute is torch.float64:
        return torch.tensor(x, dtype=compute, device=device)
    return to_fp32(x)


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


def run(op, operands: Sequence, compute: torch.dtype, result: Optional[torch.dtype] = None, *, out=None,
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
    if out is None:
        out = alloc(shape, result, device, tensors)
    return launch(op, ops, out, compute, result)
