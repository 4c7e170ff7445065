"""Copies, casts and fills on the pointwise engine: dst[i] = convert(src[i]) and dst[i] = value.

copy_ broadcasts src to dst's shape and converts straight to dst's dtype (one rounding, e4m3fn saturating
like torch), writing dst through its strides; _to_copy / clone allocate like torch (preserve layout) and copy;
fill_ / fill / zero_ and the factories (full, zeros, ones, *_like, new_*) write a constant; a Python value that
torch refuses for the dtype (300 into int8, NaN / inf into an integer dtype: scalar_checks.py) stays native, so
torch raises. Cross-device copies, complex, and dtypes Triton cannot address (float8_e8m0fnu, float4_e2m1fn_x2)
stay native.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import runtime
from ..formats import FP8_DTYPES
from ..registry import implement
from . import elementwise as ew
from .elementwise import identity
from .scalar_checks import fill_overflows, overflow_reason

_NOT_KERNEL = {getattr(torch, n) for n in ("float8_e8m0fnu", "float4_e2m1fn_x2") if hasattr(torch, n)}
FP8 = frozenset(FP8_DTYPES - _NOT_KERNEL)
COPYABLE = ew.ALL | FP8


def _plain_layout(t: torch.Tensor) -> bool:
    return t.layout == torch.strided and not t.is_complex() and not t.is_quantized


def _copy_supports(dst, src, non_blocking=False):
    if not isinstance(src, torch.Tensor):
        return "non-tensor source"
    if src.device != dst.device:
        return "cross-device copy"
    if dst.dtype not in COPYABLE or src.dtype not in COPYABLE:
        return f"dtype {src.dtype}->{dst.dtype}"
    if not (_plain_layout(dst) and _plain_layout(src)):
        return "layout"
    try:
        torch.broadcast_shapes(src.shape, dst.shape)
    except RuntimeError:
        return "shape"
    if torch.broadcast_shapes(src.shape, dst.shape) != dst.shape:
        return "shape"
    if src.is_neg() or src.is_conj():
        return "lazy neg/conj view"
    return ew.out_ok(dst, dst.shape, (src,))


def copy_into(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    # compute in dst's dtype: the load converts once, straight from src's dtype (no double rounding)
    return ew.launch(identity, [src], dst, dst.dtype)


def contiguous_copy(x: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of ``x`` (whatever x's layout, unlike clone's preserve_format)."""
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    return copy_into(out, x) if x.numel() else out


@implement("aten::copy_.default", kind="triton", dtypes=COPYABLE, supports=_copy_supports)
def copy_(dst, src, non_blocking=False):
    if dst.numel() == 0 or (dst.data_ptr() == src.data_ptr() and dst.dtype == src.dtype
                            and dst.stride() == src.stride() and dst.shape == src.shape):
        return dst
    return copy_into(dst, src)


def _to_copy_supports(x, *, dtype=None, layout=None, device=None, pin_memory=None, non_blocking=False,
                      memory_format=None):
    if device is not None and torch.device(device) != x.device:
        return "device change"
    if layout not in (None, torch.strided) or pin_memory:
        return "layout / pinned memory"
    dt = dtype or x.dtype
    if dt not in COPYABLE or x.dtype not in COPYABLE:
        return f"dtype {x.dtype}->{dt}"
    if not _plain_layout(x) or x.is_neg() or x.is_conj():
        return "layout"
    return None


def _empty_like(x, dtype, memory_format):
    mf = memory_format if memory_format is not None else torch.preserve_format
    return torch.empty_like(x, dtype=dtype, memory_format=mf)


@implement("aten::_to_copy.default", kind="triton", dtypes=COPYABLE, supports=_to_copy_supports)
def _to_copy(x, *, dtype=None, layout=None, device=None, pin_memory=None, non_blocking=False, memory_format=None):
    out = _empty_like(x, dtype or x.dtype, memory_format)
    return copy_into(out, x) if x.numel() else out


def _clone_supports(x, *, memory_format=None):
    if x.dtype not in COPYABLE or not _plain_layout(x) or x.is_neg() or x.is_conj():
        return f"dtype/layout {x.dtype}"
    return None


@implement("aten::clone.default", kind="triton", dtypes=COPYABLE, supports=_clone_supports)
def clone(x, *, memory_format=None):
    out = _empty_like(x, x.dtype, memory_format)
    return copy_into(out, x) if x.numel() else out


# ---- fills ---------------------------------------------------------------------------------------------------
def _fill_value(value, dtype):
    """A Python scalar as the kernel scalar for ``dtype`` (checked against overflow by the supports predicates)."""
    if dtype is torch.bool:
        return bool(value)
    if dtype.is_floating_point:
        return float(value)
    return int(value)  # a float truncates toward zero, as c10's conversion does


def fill(out: torch.Tensor, value) -> torch.Tensor:
    if out.numel() == 0:
        return out
    if isinstance(value, torch.Tensor):
        # fill_.Tensor casts its 0-dim value like a copy (torch checks no overflow there): read it in the kernel,
        # with no host sync
        if value.device != out.device:
            value = value.to(out.device)
        return ew.launch(identity, [value], out, out.dtype)
    v = _fill_value(value, out.dtype)
    if out.dtype in FP8 or out.dtype is torch.bool:
        compute = torch.float32 if out.dtype in FP8 else torch.bool
    else:
        compute = out.dtype
    return ew.launch(identity, [ew.as_operand(v, compute, out.device)], out, compute)


def _value_reason(value, dtype, numel):
    """None if torch fills ``numel`` elements of ``dtype`` with ``value``; else the reason it raises (the native
    kernel says so)."""
    if isinstance(value, complex) or (isinstance(value, torch.Tensor) and (value.dim() != 0 or value.is_complex())):
        return "value type"
    if not isinstance(value, torch.Tensor) and not ew.is_number(value):
        return "value type"
    if not isinstance(value, torch.Tensor) and fill_overflows(value, dtype, numel):
        return overflow_reason(value, dtype)
    return None


def _fill_supports(x, value):
    if x.dtype not in COPYABLE or not _plain_layout(x):
        return f"dtype {x.dtype}"
    r = _value_reason(value, x.dtype, x.numel())
    if r:
        return r
    if isinstance(value, torch.Tensor) and value.device != x.device and value.device.type != "cpu":
        return "value device"
    return ew.out_ok(x, x.shape)


@implement(["aten::fill_.Scalar", "aten::fill_.Tensor"], kind="triton", dtypes=COPYABLE, supports=_fill_supports)
def fill_(x, value):
    return fill(x, value)


@implement(["aten::fill.Scalar", "aten::fill.Tensor"], kind="triton", dtypes=COPYABLE, supports=_fill_supports)
def fill_functional(x, value):
    return fill(torch.empty_like(x), value)


def _fill_out_supports(x, value, *, out):
    if out.dtype != x.dtype:
        return "out dtype"
    return _fill_supports(x, value) or ew.out_ok(out, x.shape)


@implement(["aten::fill.Scalar_out", "aten::fill.Tensor_out"], kind="triton", dtypes=COPYABLE,
           supports=_fill_out_supports)
def fill_out(x, value, *, out):
    return fill(out, value)


@implement("aten::zero_.default", kind="triton", dtypes=COPYABLE, supports=lambda x: _fill_supports(x, 0))
def zero_(x):
    return fill(x, 0)


def _factory_dtype(value, dtype):
    if dtype is not None:
        return dtype
    if isinstance(value, bool):
        return torch.bool
    if isinstance(value, int):
        return torch.int64
    if isinstance(value, float):
        return torch.get_default_dtype()
    return None


def _factory_supports(size, fill_value=0, *, dtype=None, layout=None, device=None, pin_memory=None, **kw):
    dt = _factory_dtype(fill_value, dtype)
    if dt not in COPYABLE:
        return f"dtype {dt}"
    try:
        numel = math.prod(size)
    except TypeError:
        return "size type"
    r = _value_reason(fill_value, dt, numel)
    if r:
        return r
    if layout not in (None, torch.strided) or pin_memory:
        return "layout / pinned memory"
    return None


@implement("aten::full.default", kind="triton", dtypes=COPYABLE, supports=_factory_supports)
def full(size, fill_value, *, dtype=None, layout=None, device=None, pin_memory=None):
    out = torch.empty(size, dtype=_factory_dtype(fill_value, dtype), device=device)
    return fill(out, fill_value)


def _scalar_tensor_supports(s, *, dtype=None, layout=None, device=None, pin_memory=None):
    return _factory_supports((), s, dtype=dtype or torch.get_default_dtype(), layout=layout, device=device,
                             pin_memory=pin_memory) if not isinstance(s, complex) else "complex value"


# torch.where / masked_fill with a Python number wrap it with scalar_tensor (default dtype unless given)
@implement("aten::scalar_tensor.default", kind="triton", dtypes=COPYABLE, supports=_scalar_tensor_supports)
def scalar_tensor(s, *, dtype=None, layout=None, device=None, pin_memory=None):
    return fill(torch.empty((), dtype=dtype or torch.get_default_dtype(), device=device), s)


def _zeros_ones_supports(size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return _factory_supports(size, 0.0, dtype=dtype, layout=layout, device=device, pin_memory=pin_memory)


@implement("aten::zeros.default", kind="triton", dtypes=COPYABLE, supports=_zeros_ones_supports)
def zeros(size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return fill(torch.empty(size, dtype=dtype or torch.get_default_dtype(), device=device), 0)


@implement("aten::ones.default", kind="triton", dtypes=COPYABLE, supports=_zeros_ones_supports)
def ones(size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return fill(torch.empty(size, dtype=dtype or torch.get_default_dtype(), device=device), 1)


def _like_supports(x, *args, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    dt = dtype or x.dtype
    if dt not in COPYABLE or (device is not None and torch.device(device) != x.device):
        return f"dtype/device {dt}"
    if layout not in (None, torch.strided) or pin_memory or not _plain_layout(x):
        return "layout"
    if args and (isinstance(args[0], torch.Tensor) or _value_reason(args[0], dt, x.numel())):
        return "value type" if isinstance(args[0], torch.Tensor) else _value_reason(args[0], dt, x.numel())
    return None


def _like(x, value, dtype, memory_format):
    out = _empty_like(x, dtype or x.dtype, memory_format)
    return fill(out, value)


@implement("aten::full_like.default", kind="triton", dtypes=COPYABLE, supports=_like_supports)
def full_like(x, fill_value, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return _like(x, fill_value, dtype, memory_format)


@implement("aten::zeros_like.default", kind="triton", dtypes=COPYABLE, supports=_like_supports)
def zeros_like(x, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return _like(x, 0, dtype, memory_format)


@implement("aten::ones_like.default", kind="triton", dtypes=COPYABLE, supports=_like_supports)
def ones_like(x, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return _like(x, 1, dtype, memory_format)


def _new_supports(x, size, *args, dtype=None, layout=None, device=None, pin_memory=None):
    dt = dtype or x.dtype
    if dt not in COPYABLE or (device is not None and torch.device(device) != x.device):
        return f"dtype/device {dt}"
    if layout not in (None, torch.strided) or pin_memory:
        return "layout"
    if args:
        try:
            numel = math.prod(size)
        except TypeError:
            return "size type"
        return _value_reason(args[0], dt, numel)
    return None


def _new(x, size, value, dtype):
    out = torch.empty(size, dtype=dtype or x.dtype, device=x.device)
    return fill(out, value)


@implement("aten::new_full.default", kind="triton", dtypes=COPYABLE, supports=_new_supports)
def new_full(x, size, fill_value, *, dtype=None, layout=None, device=None, pin_memory=None):
    return _new(x, size, fill_value, dtype)


@implement("aten::new_zeros.default", kind="triton", dtypes=COPYABLE, supports=_new_supports)
def new_zeros(x, size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return _new(x, size, 0, dtype)


@implement("aten::new_ones.default", kind="triton", dtypes=COPYABLE, supports=_new_supports)
def new_ones(x, size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return _new(x, size, 1, dtype)


# ---- arange: out[i] = start + i * step ---------------------------------------------------------------------------
@triton.jit
def _arange_kernel(out_ptr, start, step, bounds_ptr, n, FLOAT: tl.constexpr, BLOCK: tl.constexpr):
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    if FLOAT:
        # computed in fp64 like torch's CPU kernel (start/step read from a fp64 buffer: Triton would type a
        # Python float argument as fp32), rounded once to the output dtype
        v = tl.load(bounds_ptr) + idx.to(tl.float64) * tl.load(bounds_ptr + 1)
    else:
        v = start + idx * step
    tl.store(out_ptr + idx, v.to(out_ptr.dtype.element_ty), mask=idx < n)


_ARANGE_DTYPES = ew.NUMERIC


def _arange_args(args):
    if len(args) == 1:
        return 0, args[0], 1
    if len(args) == 2:
        return args[0], args[1], 1
    return args[0], args[1], args[2]


def _arange_supports(*args, dtype=None, layout=None, device=None, pin_memory=None):
    if any(not ew.is_number(a) or isinstance(a, (complex, bool)) for a in args):
        return "argument type"
    if layout not in (None, torch.strided) or pin_memory:
        return "layout"
    start, end, step = _arange_args(args)
    dt = dtype or (torch.get_default_dtype() if any(isinstance(a, float) for a in args) else torch.int64)
    if dt not in _ARANGE_DTYPES:
        return f"dtype {dt}"
    if step == 0 or (end - start) / step < 0 or not all(math.isfinite(float(a)) for a in args):
        return "invalid range"  # torch raises the proper error
    if not dt.is_floating_point and any(isinstance(a, float) for a in args):
        return "float bounds with an integer dtype"
    return None


@implement(["aten::arange.default", "aten::arange.start", "aten::arange.start_step"], kind="triton",
           dtypes=_ARANGE_DTYPES, supports=_arange_supports)
def arange(*args, dtype=None, layout=None, device=None, pin_memory=None):
    start, end, step = _arange_args(args)
    any_float = any(isinstance(a, float) for a in args)
    dt = dtype or (torch.get_default_dtype() if any_float else torch.int64)
    n = int(math.ceil((end - start) / step)) if any_float else -((start - end) // step)
    out = torch.empty(max(n, 0), dtype=dt, device=device)
    if n > 0:
        block = min(4096, runtime.next_pow2(n))
        is_float = dt.is_floating_point
        bounds = torch.tensor([float(start), float(step)], dtype=torch.float64, device=device) if is_float else out
        _arange_kernel[(triton.cdiv(n, block),)](out, 0 if is_float else int(start), 0 if is_float else int(step),
                                                 bounds, n, FLOAT=is_float, BLOCK=block)
    return out
