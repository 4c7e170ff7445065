"""C++ ``grouped_mm`` (csrc/grouped_mm.cpp): the MoE cases of ``torch._grouped_mm`` on CPU.

    grouped_mm(a [M, K], b [G, K, N], offs int32 [G]) -> [M, N]     rows offs[g-1]:offs[g] use b[g]
    grouped_mm(a [G, M, K], b [G, K, N])              -> [G, M, N]

b may have any strides (e.g. expert weights stored [G, N, K] and passed as ``w.transpose(-2, -1)``).
Rows past offs[-1] are zero; empty groups are fine. bf16 / fp16 / fp32, fp32 accumulation; out_dtype is
a's dtype (default) or float32.

``aten::_grouped_mm`` (cpp kind) is served by :func:`grouped_mm_aten` for the modes :func:`aten_supports`
accepts: 2D x 3D with offs and 3D x 3D without, CPU tensors, a and b of one dtype (bf16 / fp16 / fp32), out_dtype
None or a's dtype (torch's rule), no bias. Same semantics as the Triton implementation: rows past offs[-1] are
zero; offs that decrease or pass the row count raise RuntimeError (clamped instead where
flaggems.ops.gemm.grouped._host_checkable says offs are not host-readable).
"""
from __future__ import annotations

import torch

from ..ops.gemm import grouped as _tri
from ..registry import implement
from ._ext import dcode, host_addressable, lib, nthreads, require_cpu

_F = frozenset({torch.float32, torch.bfloat16, torch.float16})


def _out(size, dtype, device):
    """The output torch allocates: rows padded to 16 bytes (create_grouped_gemm_output_tensor)."""
    align = 16 // (4 if dtype == torch.float32 else 2)
    ld = (size[-1] + align - 1) // align * align
    stride = (ld, 1) if len(size) == 2 else (size[1] * ld, ld, 1)
    return torch.empty_strided(size, stride, dtype=dtype, device=device)


def supports(a, b, offs=None, bias=None, out_dtype=None):
    """None if grouped_mm_cpp handles these arguments, else a short reason (for the registry)."""
    if bias is not None:
        return "bias is not supported"
    if a.dtype not in _F or b.dtype != a.dtype:
        return "dtype"
    if out_dtype is not None and out_dtype not in (a.dtype, torch.float32):
        return "out_dtype"
    if a.dim() == 2 and b.dim() == 3 and offs is not None:
        return None
    if a.dim() == 3 and b.dim() == 3 and offs is None:
        return None
    return f"only 2D x 3D with offs and 3D x 3D without offs (got {a.dim()}D x {b.dim()}D)"


def _run(a, b, offs, out_dtype, clamp_offs):
    """The C++ call on arguments :func:`supports` accepted with matching K, G and offs (int32 [G])."""
    op = "grouped_mm"
    code = dcode(a.dtype, op, "a")
    out_dtype = a.dtype if out_dtype is None else out_dtype
    G, K, N = b.shape
    if a.dim() == 2:
        M = a.shape[0]
        # rows of a may have any stride; the C++ kernel needs unit stride along K
        a2 = a if (K <= 1 or a.stride(1) == 1) else a.contiguous()
        out = _out((M, N), out_dtype, a.device)
        rows_per_group, sam = 0, a2.stride(0)
        offs = offs.contiguous()
    else:
        a2 = a.contiguous()
        M = G * a.shape[1]
        out = _out((G, a.shape[1], N), out_dtype, a.device)
        rows_per_group, sam = a.shape[1], K
    if out.numel() == 0:
        return out
    if K == 0:
        return out.zero_()
    lib().grouped_mm(a2.data_ptr(), b.data_ptr(), offs.data_ptr() if offs is not None else 0, code, M, K, G, N,
                     rows_per_group, sam, b.stride(0), b.stride(1), b.stride(2), out.data_ptr(), out.stride(-2),
                     dcode(out_dtype, op, "out"), int(clamp_offs), nthreads())
    return out


def grouped_mm_cpp(a, b, offs=None, bias=None, out_dtype=None, *, clamp_offs=False):
    """Direct entry point (no registry in front): checks the arguments, then runs the C++ kernel."""
    op = "grouped_mm"
    require_cpu(op, a=a, b=b, offs=offs)
    r = supports(a, b, offs, bias, out_dtype)
    if r is not None:
        raise ValueError(f"{op} (cpp): unsupported arguments: {r}")
    G, K, _ = b.shape
    if a.shape[-1] != K:
        raise ValueError(f"{op} (cpp): a.shape[-1] ({a.shape[-1]}) must equal b.shape[1] ({K})")
    if a.dim() == 2 and (offs.dtype != torch.int32 or offs.dim() != 1 or offs.shape[0] != G):
        raise ValueError(f"{op} (cpp): offs must be int32 [G={G}], got {offs.dtype} {tuple(offs.shape)}")
    if a.dim() == 3 and a.shape[0] != G:
        raise ValueError(f"{op} (cpp): a must be [G={G}, M, K], got {tuple(a.shape)}")
    return _run(a, b, offs, out_dtype, clamp_offs)


def grouped_mm(a, b, offs=None, out_dtype=None):
    """Convenience entry point (see module docstring)."""
    return grouped_mm_cpp(a, b, offs, None, out_dtype)


def aten_supports(a, b, offs=None, bias=None, out_dtype=None):
    """Registry predicate for ``aten::_grouped_mm`` (kind cpp): None if grouped_mm_aten takes the call, else why."""
    if not (host_addressable(a) and host_addressable(b) and (offs is None or host_addressable(offs))):
        return "cpp grouped_mm runs on host memory (cpu / fgsim tensors) only"
    if out_dtype is not None and out_dtype != a.dtype:
        return "out_dtype differs from the input dtype"
    r = supports(a, b, offs, bias, out_dtype)
    if r is not None:
        return r
    if a.shape[-1] != b.shape[1]:
        return "contraction mismatch"
    if offs is not None:
        if offs.dtype != torch.int32 or offs.dim() != 1 or offs.shape[0] != b.shape[0]:
            return "offs must be int32 [G]"
    elif a.shape[0] != b.shape[0]:
        return "batch sizes"
    return None


# offs is int32; the float dtypes are checked together (a.dtype == b.dtype) by the predicate
@implement("aten::_grouped_mm", kind="cpp", dtypes=_F | {torch.int32}, supports=aten_supports)
def grouped_mm_aten(a, b, offs=None, bias=None, out_dtype=None):
    """``aten::_grouped_mm`` on CPU (modes / dtypes per :func:`aten_supports`)."""
    # offsets the Triton launcher would not read on host are clamped in the kernel, as its kernel does
    clamp = offs is not None and not _tri._host_checkable(offs)
    try:
        return _run(a, b, offs, out_dtype, clamp)
    except ValueError as e:  # bad offs found by the kernel: RuntimeError like the Triton implementation
        raise RuntimeError(str(e)) from None
